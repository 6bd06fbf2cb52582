"""`convnet search` and `convnet train --arch`: a tiny search end to end, and its errors."""
import json

import pytest

from convnet.cli.main import main
from convnet.cli.search_cmd import parse_count, parse_duration, pareto_front
from convnet.nas import load_arch

TINY = ["--dataset", "mnist-bundled", "--train-limit", "256", "--epochs", "0.25",
        "--batch-size", "32"]


def test_parse_budget_and_counts():
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90 and parse_duration("45") == 45 and parse_duration("1.5h") == 5400
    for bad in ("soon", "10x", "0s", "m"):
        with pytest.raises(ValueError, match="budget"):
            parse_duration(bad)
    assert parse_count("100k", "--max-params") == 100_000 and parse_count("1.5M", "-") == 1_500_000
    with pytest.raises(ValueError, match="--max-params"):
        parse_count("lots", "--max-params")


def test_pareto_front():
    pts = [(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (40, 0.9), (5, 0.2)]
    assert pareto_front(pts) == [5, 0, 1, 4]


def test_search_writes_results_plot_best_and_retrains(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["search", "--space", "small-cnn", "--strategy", "random", "--budget", "12s",
                 "--max-params", "20k", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| rank |" in printed and "best: val accuracy" in printed
    res = json.loads((out / "results.json").read_text())
    evs = res["evaluations"]
    assert len(evs) >= 2 and res["status"] == "budget spent"
    assert res["elapsed_s"] <= 12 + 3  # the search stops before the budget, give or take a step
    assert all(e["params"] <= 20_000 for e in evs)  # the constraint filtered before training
    best = max(evs, key=lambda e: e["score"])
    assert res["best"]["n"] == best["n"]
    assert set(res["pareto_front"]) <= {e["n"] for e in evs} and best["n"] in res["pareto_front"]
    assert res["command"].startswith("convnet search --space small-cnn")
    assert (out / "search.png").stat().st_size > 10_000
    assert "| 1 |" in (out / "leaderboard.md").read_text()
    rec = load_arch(out / "best.json")
    assert rec["space"] == "small-cnn" and rec["arch"] == best["arch"]
    run = tmp_path / "r"
    assert main(["train", "--arch", str(out / "best.json"), "--dataset", "mnist-bundled",
                 "--epochs", "1", "--limit-train", "300", "--limit-test", "100", "--workers",
                 "0", "--no-progress", "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["arch"]["arch"] == best["arch"] and cfg["model"] == "nas-small-cnn"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["parameters"] == best["params"]
    assert main(["evaluate", str(run)]) == 0  # a searched run reloads like any other
    assert main(["search", *TINY, "--budget", "5s", "--out", str(out)]) == 2
    assert "already holds a search" in capsys.readouterr().err


def test_shared_and_darts_estimates_run(tmp_path):
    out = tmp_path / "w"
    assert main(["search", "--space", "cell", "--space-option", "C=4", "--estimate", "shared",
                 "--strategy", "evolution", "--budget", "8s", *TINY, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["estimate"] == "shared" and len(res["evaluations"]) >= 3
    assert all(e["epochs"] == 0 for e in res["evaluations"])  # inherited, not trained
    out = tmp_path / "d"
    assert main(["search", "--space", "cell", "--space-option", "C=4", "--strategy", "darts",
                 "--budget", "12s", *TINY, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "DARTS finished" and res["darts"]["epochs"] >= 1
    assert len(res["evaluations"]) == 1
    assert load_arch(out / "best.json")["arch"] == res["evaluations"][0]["arch"]


@pytest.mark.parametrize("argv, message", [
    (["--budget", "1s", "--epochs", "5", "--train-limit", "5000"], "too small for one evaluation"),
    (["--max-params", "50"], "no architecture of small-cnn fits"),
    (["--strategy", "darts"], "use --space cell"),
    (["--space", "cell", "--space-option", 'ops=["none"]'], "empty space"),
    (["--space", "cell", "--space-option", "width=3"], "unknown option"),
    (["--space-option", "C=4"], "applies to --space cell"),
    (["--budget", "soon"], "cannot read 'soon'"),
])
def test_search_errors_are_clear(tmp_path, capsys, argv, message):
    assert main(["search", "--dataset", "mnist-bundled", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_train_arch_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "space": "cell", "arch": {"edge_1_0": "conv9x9"}}))
    assert main(["train", "--arch", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "missing label" in capsys.readouterr().err
    arch = {e: "conv9x9" if e == "edge_1_0" else "none" for e in
            ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]}
    bad.write_text(json.dumps({"format": 1, "space": "cell", "arch": arch}))
    assert main(["train", "--arch", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "edge_1_0='conv9x9' is not allowed" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["train", "--arch", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_ctrl_c_keeps_what_was_found(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-m", "convnet", "search", "--space", "cell",
                             "--space-option", "C=4", "--budget", "120s", *TINY, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait for two evaluations, then press Ctrl-C
            if "#2 " in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted: " in err and "Traceback" not in err
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "interrupted" and len(res["evaluations"]) >= 2
    assert load_arch(out / "best.json")["arch"] == res["best"]["arch"]


def test_a_model_already_scored_is_not_trained_again():
    from convnet import nas
    from convnet.cli.search_cmd import _SameModel

    space = nas.spaces.get("small-cnn")
    same = _SameModel(lambda arch: space.build(arch))
    arch = space.sample(0)
    arch["depth"] = 2
    assert same.lookup(arch) is None
    same.remember(arch, 0.75)
    twin = {**arch, "width_3": 8 if arch["width_3"] != 8 else 16}  # block 3 is not built
    assert same.lookup(twin) == 0.75 and same.reused == 1 and same.repeats_in_a_row == 1
    other = {**arch, "width_0": 8 if arch["width_0"] != 8 else 16}
    assert same.lookup(other) is None and same.repeats_in_a_row == 0
