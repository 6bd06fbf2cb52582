"""Performance estimation: partial/full training, learning curves, weight sharing."""
import math
import time

import numpy as np
import pytest

from convnet.nas import Constraint, count_params, data, estimate
from convnet.nas.cell import CellSpace


@pytest.fixture(scope="module")
def digits():
    d = data.load("mnist-bundled", val_split=0.1, seed=0, downsample_by=2)  # 1x14x14
    return data.subset(d["train"], 640, 0), data.subset(d["val"], 200, 1)


def test_data_load_splits_and_normalizes():
    d = data.load("mnist-bundled", val_split=0.25, seed=3)
    (xt, yt), (xv, _yv), (xs, _ys) = d["train"], d["val"], d["test"]
    assert xt.shape[1:] == (1, 28, 28) and xt.dtype == np.float32 and yt.dtype == np.int64
    assert len(xv) == 2000 and len(xt) == 6000 and len(xs) == 2000
    assert abs(float(xt.mean())) < 1e-3 and abs(float(xt.std()) - 1) < 1e-3
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar100")
    with pytest.raises(ValueError, match="val_split"):
        data.load("mnist-bundled", val_split=0)


def test_downsample_is_block_mean():
    x = np.arange(2 * 16, dtype=np.float32).reshape(1, 2, 4, 4)
    got = data.downsample(x, 2)
    assert got.shape == (1, 2, 2, 2)
    assert got[0, 1, 1, 0] == x[0, 1, 2:4, 0:2].mean()


def test_power_law_fit_recovers_parameters():
    t = np.arange(1, 9)
    curve = 0.9 - 0.3 * t ** -0.7
    a, b, c = estimate.fit_learning_curve(curve)
    assert abs(a - 0.9) < 5e-3 and abs(b - 0.3) < 5e-3 and abs(c - 0.7) < 0.05
    assert abs(estimate.extrapolate(curve[:4], 8) - curve[7]) < 5e-3
    assert estimate.extrapolate([0.5, 0.6], 10) == 0.6          # too short: the last value
    assert estimate.extrapolate([0.7, 0.6, 0.5], 10) == 0.5     # falling: no gain predicted
    with pytest.raises(ValueError, match=">= 3"):
        estimate.fit_learning_curve([0.1, 0.2])


def test_partial_training_is_deterministic_and_counts(digits):
    train, val = digits
    space = CellSpace(C=4)
    arch = {e: "nor_conv_3x3" if e == "edge_3_0" else "skip_connect" for e in space.choices}
    est = estimate.PartialTraining(train, val, epochs=2, train_limit=640, batch_size=32)
    a, b = est(space, arch), est(space, arch)
    assert a.score == b.score and a.curve == b.curve and len(a.curve) == 2
    assert a.params == count_params(space, arch, input_shape=(1, 14, 14), C=4)
    assert a.score > 0.3  # 10 classes: clearly above chance after two short epochs
    ex = estimate.PartialTraining(train, val, epochs=3, train_limit=96, batch_size=32,
                                  extrapolate_to=20)(space, arch)
    assert len(ex.curve) == 3 and ex.predicted is not None and ex.score == ex.predicted


def test_constraint_skips_before_training(digits):
    train, val = digits
    space = CellSpace(C=4)
    arch = {e: "nor_conv_3x3" for e in space.choices}
    est = estimate.PartialTraining(train, val, epochs=1, constraint=Constraint(
        max_params=100, input_shape=(1, 14, 14)))
    ev = est(space, arch)
    assert ev.score == -math.inf and "max_params=100" in ev.skipped and ev.seconds < 1
    assert ev.to_dict()["score"] is None  # JSON has no -inf


def test_deadline_stops_training(digits):
    train, val = digits
    space = CellSpace(C=4)
    ev = estimate.PartialTraining(train, val, epochs=5, train_limit=None)(
        space, space.sample(0), deadline=time.monotonic() - 1)
    assert ev.stopped and ev.epochs < 5 and len(ev.curve) == 1


def test_bad_splits_are_clear():
    with pytest.raises(TypeError, match="pair"):
        estimate.PartialTraining(np.zeros((4, 1, 8, 8)), None)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        estimate.PartialTraining((np.zeros((4, 8, 8)), np.zeros(4)), (np.zeros((4, 1, 8, 8)), np.zeros(4)))


def test_weight_sharing_inherits_and_learns(digits):
    train, val = digits
    space = CellSpace(C=4, ops=("none", "skip_connect", "nor_conv_3x3"))
    ws = estimate.WeightSharing(train, val, steps=150, lr=0.1, batch_size=32, val_limit=200)
    conv = {e: "nor_conv_3x3" for e in space.choices}
    skip = {**conv, "edge_3_2": "skip_connect"}
    k_conv, k_skip = ws._keys(ws.build(space, conv)), ws._keys(ws.build(space, skip))
    # the same op at the same position is one shared tensor; a different op is not
    shared = [n for n in k_conv if "edge_1_0" in n and n.endswith("weight")]
    assert shared and all(k_conv[n] == k_skip[n] for n in shared)
    assert not any("edge_3_2" in n for n in k_skip)
    before = None
    ws.train_supernet(steps=1, space=space)
    before = {k: v.copy() for k, v in ws.shared.items()}
    losses = []
    ws.train_supernet(space=space, callback=lambda step, loss: losses.append(loss))
    assert ws.steps_done == 150 and len(losses) == 149
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 0.1  # the shared weights learn
    changed = [k for k in before if not np.array_equal(before[k], ws.shared[k])]
    assert len(changed) > len(before) // 2
    ev1, ev2 = ws(space, conv), ws(space, conv)
    assert ev1.score == ev2.score > 0.2 and ev1.epochs == 0  # chance is 0.1
    # the scored model really carries the shared weights
    model = ws.build(space, conv)
    ws._inherit(model)
    keys = ws._keys(model)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.numpy(), ws.shared[keys[name]])
