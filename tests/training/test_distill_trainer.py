"""DistillationTrainer: the teacher runs in eval mode on the student's own batches, and the
student learns its soft targets."""
import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
import convnet.nn as nn
from convnet.data import DataLoader, TensorDataset
from convnet.training import DistillationTrainer, Trainer


def blobs(n=256, k=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2.0
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


class Recorder(nn.Module):
    """Wraps a model and keeps a copy of every input batch it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.numpy().copy())
        return self.inner(x)


def make(teacher, *, alpha=0.9, temperature=4.0, epochs=2, student=None, seed=0):
    cn.manual_seed(seed)
    x, y = blobs()
    student = student or Recorder(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)))
    opt = cn.optim.Adam(student.parameters(), lr=0.02)
    loader = DataLoader(TensorDataset(x, y), 32, shuffle=True, seed=seed)
    return DistillationTrainer(student, opt, loader, DataLoader(TensorDataset(x, y), 64),
                               teacher=teacher, alpha=alpha, temperature=temperature,
                               epochs=epochs, progress=False, log=None)


def bn_teacher():
    cn.manual_seed(123)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, 4))


def test_teacher_sees_the_students_batches_in_eval_mode_and_is_not_updated():
    teacher = Recorder(bn_teacher())
    teacher.train()
    before = {k: v.numpy().copy() for k, v in teacher.state_dict().items()}
    t = make(teacher)
    t.fit()
    assert not teacher.training
    n, n_val = len(t.train_loader), len(t.val_loader)
    # the student saw: epoch 1's batches, the validation set, epoch 2's, the validation set
    student_train = t.model.seen[:n] + t.model.seen[n + n_val:2 * n + n_val]
    assert len(teacher.seen) == len(student_train) == 2 * n
    for a, b in zip(teacher.seen, student_train):
        np.testing.assert_array_equal(a, b)
    for k, v in teacher.state_dict().items():  # weights and BN statistics untouched
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert all(p.grad is None for p in teacher.parameters())


def test_student_learns_the_teachers_soft_targets():
    teacher = bn_teacher()
    teacher.eval()
    x, _ = blobs()
    xt = cn.tensor(x)
    with cn.no_grad():
        target = teacher(xt)

    def kl(model):
        with cn.no_grad():
            return float(F.distillation_loss(model(xt), target, cn.tensor(np.zeros(len(x), np.int64)),
                                             2.0, 1.0).numpy())

    t = make(teacher, alpha=1.0, temperature=2.0, epochs=6)
    start = kl(t.model)
    t.fit()
    assert kl(t.model) < 0.3 * start
    # the reported training loss is the distillation loss, the validation loss cross-entropy
    assert t.history[-1]["train_loss"] < t.history[0]["train_loss"]
    assert t.history[-1]["val_loss"] == pytest.approx(t.evaluate(t.val_loader)["loss"])


def test_alpha_zero_is_the_plain_trainer_and_skips_the_teacher():
    teacher = Recorder(bn_teacher())
    a = make(teacher, alpha=0.0)
    a.fit()
    assert teacher.seen == []
    cn.manual_seed(0)
    x, y = blobs()
    student = Recorder(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)))
    b = Trainer(student, cn.optim.Adam(student.parameters(), lr=0.02),
                DataLoader(TensorDataset(x, y), 32, shuffle=True, seed=0),
                DataLoader(TensorDataset(x, y), 64), epochs=2, progress=False, log=None)
    b.fit()
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert [[h[k] for k in keys] for h in a.history] == [[h[k] for k in keys] for h in b.history]


def test_mismatched_teacher_is_explained():
    cn.manual_seed(0)
    five = nn.Sequential(nn.Linear(6, 5))
    with pytest.raises(ValueError, match=r"teacher logits \(32, 5\) and student logits \(32, 4\)"):
        make(five).fit()
    wide = nn.Sequential(nn.Linear(9, 4))
    with pytest.raises(ValueError, match=r"teacher cannot take the student's input batch of "
                                         r"shape \(32, 6\)"):
        make(wide).fit()
    with pytest.raises(ValueError, match="alpha must be in"):
        make(five, alpha=2.0)
    with pytest.raises(TypeError, match="teacher must be a module"):
        make(None)


def test_float32_teacher_for_a_float64_student():
    teacher = bn_teacher()
    student = nn.Sequential(nn.Linear(6, 4)).double()
    t = make(teacher, student=student, epochs=1)
    t.fit()
    assert next(iter(student.parameters())).numpy().dtype == np.float64
    assert np.isfinite(t.history[0]["train_loss"])


def test_cached_teacher_logits_run_the_teacher_once_and_train_alike():
    teacher = nn.Sequential(nn.Linear(6, 4))
    counting = Recorder(teacher)
    cached = make(counting, epochs=3)
    cached.cache_teacher_logits = True
    cached.fit()
    # one pass over the 256 training images (256 a batch), never again per batch
    assert sum(len(b) for b in counting.seen) == 256
    plain = make(Recorder(teacher), epochs=3)
    plain.fit()
    # the looked-up logits are the teacher's: the same training, to float rounding
    for a, b in zip(cached.history, plain.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_an_image_missing_from_the_cache_runs_the_teacher_on_its_batch():
    teacher = Recorder(nn.Sequential(nn.Linear(6, 4)))
    trainer = make(teacher)
    trainer.cache_teacher_logits = True
    x = cn.tensor(np.full((3, 6), 7.0, np.float32))  # not a training image
    got = trainer.teacher_logits(x)
    assert np.allclose(got.numpy(), teacher.inner(x).numpy())
    assert teacher.seen[-1].shape == (3, 6)


def test_curves_name_the_distillation_loss(tmp_path, monkeypatch):
    # curves.png must not call the distillation objective "cross-entropy"
    import convnet.training.plots as plots

    seen = {}
    monkeypatch.setattr(plots, "plot_curves", lambda h, p, title="", **kw: seen.update(kw))
    trainer = make(nn.Sequential(nn.Linear(6, 4)), epochs=1)
    trainer.fit()
    trainer.plot(tmp_path / "curves.png")
    assert "KL" in seen.get("train_loss_label", "") and "cross-entropy" in seen["loss_ylabel"]
    assert Trainer.curve_labels == {}
