"""``convnet distill``: a student trained from a teacher run, with the train CLI's features."""
import json

import pytest

from convnet.cli.main import main
from convnet.data.datasets import mnist as mnist_mod
from convnet.training import Trainer

TEACHER = ["--model", "lenet5", "--limit-train", "256", "--limit-test", "100", "--batch-size",
           "32", "--no-progress", "--workers", "0", "--epochs", "1", "--augment", "crop,flip"]
STUDENT = ["--model", "lenet5", "--model-option", "pooling=max", "--batch-size", "32",
           "--no-progress", "--workers", "0"]
KEYS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def teacher(tmp_path):
    out = tmp_path / "teacher"
    assert main(["train", *TEACHER, "--seed", "3", "--out", str(out)]) == 0
    return out


def distill(teacher, out, *extra, code=0):
    assert main(["distill", "--teacher", str(teacher), *STUDENT, "--out", str(out), *extra]) == code
    return out


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


def history(out):
    return [[h[k] for k in KEYS] for h in metrics(out)["history"]]


def test_distill_writes_a_run_with_teacher_and_student_accuracy(tmp_path, teacher, capsys):
    out = distill(teacher, tmp_path / "student", "--epochs", "1", "--temperature", "3",
                  "--alpha", "0.7")
    printed = capsys.readouterr().out
    assert "teacher: " in printed and "temperature 3.0, alpha 0.7" in printed
    for name in ("config.json", "checkpoint.safetensors", "model.safetensors", "curves.png"):
        assert (out / name).is_file()
    m, cfg = metrics(out), json.loads((out / "config.json").read_text())
    # the teacher's data settings, the student's model
    assert cfg["augment"] == "crop,flip" and cfg["limit_train"] == 256 and cfg["limit_test"] == 100
    assert cfg["model"] == "lenet5" and cfg["model_options"] == {"pooling": "max"}
    d = m["distillation"]
    assert (d["temperature"], d["alpha"], d["teacher_model"]) == (3.0, 0.7, "lenet5")
    assert d["teacher"] == str(teacher.resolve()) and d["split_seed"] == 3
    # the validation images are the teacher's (its seed 3), whatever the student's seed
    assert m["validation"] == metrics(teacher)["validation"]
    # both accuracies are on the same 100 test images: each agrees with `convnet evaluate`
    assert main(["evaluate", str(teacher), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(m["teacher_test_accuracy"])
    assert d["teacher_test_accuracy"] == m["teacher_test_accuracy"]
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(m["test_accuracy"])
    assert f"student {m['test_accuracy']:.4f}" in printed


def test_alpha_zero_trains_exactly_as_convnet_train(tmp_path, teacher):
    # with no weight on the teacher, distill is `convnet train` on the teacher's data
    dis = distill(teacher, tmp_path / "d", "--epochs", "1", "--alpha", "0", "--seed", "3")
    plain = tmp_path / "t"
    assert main(["train", *STUDENT, "--limit-train", "256", "--limit-test", "100", "--augment",
                 "crop,flip", "--epochs", "1", "--seed", "3", "--out", str(plain)]) == 0
    assert history(dis) == history(plain)
    assert metrics(dis)["test_accuracy"] == metrics(plain)["test_accuracy"]
    soft = distill(teacher, tmp_path / "s", "--epochs", "1", "--seed", "3")
    assert history(soft)[0][0] != history(dis)[0][0]  # the teacher changes the loss


def test_interrupted_distill_resumes_exactly(tmp_path, teacher, monkeypatch, capsys):
    full = distill(teacher, tmp_path / "full", "--epochs", "3")
    calls = {"n": 0}
    original = Trainer.train_epoch

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    part = distill(teacher, tmp_path / "part", "--epochs", "3", code=130)
    assert f"convnet distill --out {part} --resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert len(history(part)) == 1
    assert main(["distill", "--out", str(part), "--resume", "--no-progress"]) == 0
    assert history(part) == history(full)
    assert metrics(part)["test_accuracy"] == metrics(full)["test_accuracy"]


def test_resume_with_more_epochs_and_resume_errors(tmp_path, teacher, capsys):
    full = distill(teacher, tmp_path / "full", "--epochs", "2", "--scheduler", "none")
    part = distill(teacher, tmp_path / "part", "--epochs", "1", "--scheduler", "none")
    assert main(["distill", "--out", str(part), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert history(part) == history(full)
    capsys.readouterr()
    assert main(["distill", "--out", str(part), "--resume", "--alpha", "0.5"]) == 2
    assert "--alpha 0.5 differs from the saved run's 0.9" in capsys.readouterr().err
    assert main(["distill", "--out", str(part), "--resume", "--lr", "0.5"]) == 2
    assert "--lr differ" in capsys.readouterr().err
    assert main(["distill", "--out", str(teacher), "--resume"]) == 2
    assert "is a `convnet train` run, not a distillation" in capsys.readouterr().err
    # a retrained teacher is not the one the run started with
    assert main(["train", *TEACHER, "--seed", "4", "--out", str(teacher), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["distill", "--out", str(part), "--resume", "--epochs", "3"]) == 2
    assert "teacher's weights" in capsys.readouterr().err


def test_bad_teachers_and_options_are_explained(tmp_path, capsys):
    def err(*argv):
        assert main(["distill", *argv]) == 2
        return capsys.readouterr().err

    assert "--teacher RUN is required" in err("--model", "lenet5")
    assert "no such run folder" in err("--teacher", str(tmp_path / "nope"), "--model", "lenet5")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in err("--teacher", str(tmp_path / "empty"), "--model", "lenet5")
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "config.json").write_text(json.dumps({"model": "unet", "task": "segment"}))
    assert "distillation needs a classification run" in err("--teacher", str(seg), "--model", "lenet5")
    det = tmp_path / "det"
    det.mkdir()
    (det / "config.json").write_text(json.dumps({"model": "retinanet_tiny", "task": "detect"}))
    assert "a --task detect run" in err("--teacher", str(det), "--model", "lenet5")
    nowts = tmp_path / "nowts"
    nowts.mkdir()
    (nowts / "config.json").write_text(json.dumps({"model": "lenet5", "task": "classify"}))
    assert "no model.safetensors" in err("--teacher", str(nowts), "--model", "lenet5")
    assert "--model is required" in err("--teacher", str(nowts))
    assert "--temperature must be a positive" in err("--teacher", str(nowts), "--model", "lenet5",
                                                     "--temperature", "0")
    assert "--alpha must be in [0, 1]" in err("--teacher", str(nowts), "--model", "lenet5",
                                              "--alpha", "1.5")
    assert "--resume: no checkpoint" in err("--out", str(tmp_path / "none"), "--resume")
