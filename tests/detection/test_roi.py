"""roi_align / roi_pool / ps_roi_align / MultiScaleRoIAlign against plain-loop
transcriptions of torchvision's CPU kernels (float64, 1e-12), gradchecks, bad input."""
import math

import numpy as np
import pytest

import convnet as cn
import convnet.ops as ops
from convnet.autograd.gradcheck import gradcheck
from tests.helpers.oracle import tie_free


# ------------------------------------------------------------------ reference loops
def ref_bilinear(plane, y, x):
    """One sample of the kernel's bilinear_interpolate (0 outside [-1, H] x [-1, W])."""
    h, w = plane.shape
    if not (-1.0 <= y <= h and -1.0 <= x <= w):
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high]
            + ly * hx * plane[y_high, x_low] + ly * lx * plane[y_high, x_high])


def ref_roi_align(x, rois, ph, pw, scale, sr, aligned, ps=False):
    k, c = len(rois), x.shape[1]
    c_out = c // (ph * pw) if ps else c
    out = np.zeros((k, c_out, ph, pw))
    for n, r in enumerate(rois):
        b = int(r[0])
        off = 0.5 if (aligned or ps) else 0.0
        sw, sh, ew, eh = (r[i] * scale - off for i in (1, 2, 3, 4))
        rw, rh = ew - sw, eh - sh
        if not aligned and not ps:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph, rw / pw
        gh = sr if sr > 0 else int(math.ceil(rh / ph))
        gw = sr if sr > 0 else int(math.ceil(rw / pw))
        count = gh * gw if ps else max(gh * gw, 1)
        for co in range(c_out):
            for i in range(ph):
                for j in range(pw):
                    ci = (co * ph + i) * pw + j if ps else co
                    acc = 0.0
                    for iy in range(max(gh, 0)):
                        yy = sh + i * bh + (iy + 0.5) * bh / gh
                        for ix in range(max(gw, 0)):
                            xx = sw + j * bw + (ix + 0.5) * bw / gw
                            acc += ref_bilinear(x[b, ci], yy, xx)
                    out[n, co, i, j] = acc / count if count else float("nan")
    return out


def c_round(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def ref_roi_pool(x, rois, ph, pw, scale):
    k, c, h, w = len(rois), x.shape[1], x.shape[2], x.shape[3]
    out = np.zeros((k, c, ph, pw))
    for n, r in enumerate(rois):
        b = int(r[0])
        sw, sh, ew, eh = (c_round(r[i] * scale) for i in (1, 2, 3, 4))
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * bh) + sh, 0), h)
                he = min(max(math.ceil((i + 1) * bh) + sh, 0), h)
                ws = min(max(math.floor(j * bw) + sw, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + sw, 0), w)
                empty = he <= hs or we <= ws
                for ch in range(c):
                    best = 0.0 if empty else -np.finfo(np.float32).max
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[b, ch, yy, xx] > best:
                                best = x[b, ch, yy, xx]
                    out[n, ch, i, j] = best
    return out


# Boxes in image coordinates: inside, partly outside, fully outside, sub-pixel, inverted,
# one touching the far edge exactly, on both images of the batch.
ROIS = np.array([
    [0, 1.0, 1.5, 6.0, 5.0],
    [1, -3.0, -2.0, 4.0, 3.0],
    [1, 30.0, 30.0, 40.0, 38.0],
    [0, 2.2, 3.1, 2.6, 3.3],
    [1, 5.0, 4.0, 2.0, 1.0],
    [0, 0.0, 0.0, 9.0, 7.0],
    [1, 3.3, 0.7, 17.9, 13.1],
    [0, -1.4, 5.5, 8.6, 12.0],
])


def feature(shape=(2, 3, 7, 9), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------- roi_align
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_roi_align_matches_kernel_transcription(aligned, sampling_ratio, scale):
    x = feature()
    rois = ROIS * np.array([1, 1.6, 1.6, 1.6, 1.6]) if scale < 1 else ROIS
    got = ops.roi_align(cn.tensor(x), cn.tensor(rois), (2, 3), scale, sampling_ratio, aligned)
    assert got.dtype == cn.float64 and tuple(got.shape) == (8, 3, 2, 3)
    want = ref_roi_align(x, rois, 2, 3, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_roi_align_defaults_and_box_list_convention():
    x = feature()
    rois = ROIS[[0, 3, 5, 1, 2, 4, 6]]  # image 0 first, then image 1
    per_image = [cn.tensor(rois[rois[:, 0] == i, 1:]) for i in (0, 1)]
    a = ops.roi_align(cn.tensor(x), per_image, 3)  # scale 1, sampling -1, aligned False
    b = ops.roi_align(cn.tensor(x), cn.tensor(rois), 3, 1.0, -1, False)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), ref_roi_align(x, rois, 3, 3, 1.0, -1, False), rtol=1e-12,
                               atol=1e-12)
    m = ops.RoIAlign((3, 3), 1.0, -1)
    np.testing.assert_array_equal(m(cn.tensor(x), per_image).numpy(), a.numpy())
    assert "aligned=False" in repr(m)


def test_roi_align_float32_matches_reference():
    x = feature().astype(np.float32)
    got = ops.roi_align(cn.tensor(x), cn.tensor(ROIS.astype(np.float32)), 2, 0.5, 0, True)
    assert got.dtype == cn.float32
    want = ref_roi_align(x.astype(np.float64), ROIS.astype(np.float32).astype(np.float64),
                         2, 2, 0.5, 0, True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_roi_align_fully_outside_box_is_zero_and_empty_boxes_give_empty_output():
    x = feature()
    out = ops.roi_align(cn.tensor(x), cn.tensor(ROIS[2:3]), 2)
    assert np.all(out.numpy() == 0)
    empty = ops.roi_align(cn.tensor(x), cn.zeros((0, 5), dtype=cn.float64), (2, 4))
    assert tuple(empty.shape) == (0, 3, 2, 4)


def test_roi_align_samples_exactly_on_the_border_count():
    # One sample per bin at the box centre: exactly y = H (or x = -1) is still inside the
    # kernel's [-1, H] range and reads the clamped edge; a hair beyond reads nothing.
    x = feature((1, 1, 7, 9), seed=7)
    boxes = [[0, 3.0, 6.0, 5.0, 8.0],     # centre y = 7 = H  -> row 6
             [0, -2.0, 2.0, 0.0, 4.0],    # centre x = -1     -> column 0
             [0, 3.0, 6.0, 5.0, 8.002]]   # centre y > H      -> 0
    out = ops.roi_align(cn.tensor(x), cn.tensor(boxes), 1, 1.0, 1).numpy()[:, 0, 0, 0]
    assert out[0] == x[0, 0, 6, 4] and out[1] == x[0, 0, 3, 0] and out[2] == 0.0
    np.testing.assert_allclose(out, ref_roi_align(x, np.array(boxes), 1, 1, 1.0, 1, False)[:, 0, 0, 0],
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("aligned,sampling_ratio", [(False, 0), (True, 2)])
def test_roi_align_gradcheck(aligned, sampling_ratio):
    x = cn.tensor(feature((2, 2, 5, 6), seed=1), requires_grad=True)
    rois = cn.tensor(ROIS[[0, 1, 4, 6]] * 0.6)
    assert gradcheck(lambda t: ops.roi_align(t, rois, (2, 2), 1.0, sampling_ratio, aligned), [x],
                     atol=1e-8, rtol=1e-6)


# -------------------------------------------------------------------------- roi_pool
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_roi_pool_matches_kernel_transcription(scale):
    x = feature()
    rois = np.concatenate([ROIS, [[0, 2.5, 2.5, 2.5, 2.5], [1, -0.5, 1.5, 3.5, 2.5]]])  # halves
    rois = rois * np.array([1, 2, 2, 2, 2]) if scale < 1 else rois
    got = ops.roi_pool(cn.tensor(x), cn.tensor(rois), (2, 3), scale)
    assert got.dtype == cn.float64
    np.testing.assert_array_equal(got.numpy(), ref_roi_pool(x, rois, 2, 3, scale))


def test_roi_pool_ties_take_the_first_in_row_major_order():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = x[0, 0, 2, 1] = 5.0  # two equal maxima in one bin
    inp = cn.tensor(x, requires_grad=True)
    out = ops.roi_pool(inp, [cn.tensor([[0.0, 0.0, 3.0, 3.0]])], 1)
    assert out.item() == 5.0
    out.sum().backward()
    assert inp.grad.numpy()[0, 0, 1, 2] == 1.0 and inp.grad.numpy()[0, 0, 2, 1] == 0.0


def test_roi_pool_gradcheck_away_from_ties():
    x = cn.tensor(tie_free((2, 2, 6, 7), np.random.default_rng(2), spacing=0.05), requires_grad=True)
    rois = cn.tensor(ROIS[[0, 1, 4, 5, 7]])
    assert gradcheck(lambda t: ops.roi_pool(t, rois, (2, 3), 1.0), [x], atol=1e-8, rtol=1e-6)
    m = ops.RoIPool(2, 0.5)
    assert tuple(m(x, rois).shape) == (5, 2, 2, 2)


# ---------------------------------------------------------------------- ps_roi_align
def test_ps_roi_align_matches_kernel_transcription_and_gradcheck():
    x = feature((2, 12, 7, 9), seed=3)  # 12 = 3 output channels x (2 x 2) bins
    rois = ROIS[[0, 1, 3, 5, 6, 7]]
    for sr in (0, 2):
        got = ops.ps_roi_align(cn.tensor(x), cn.tensor(rois), 2, 1.0, sr)
        np.testing.assert_allclose(got.numpy(), ref_roi_align(x, rois, 2, 2, 1.0, sr, True, ps=True),
                                   rtol=1e-12, atol=1e-12)
    t = cn.tensor(feature((1, 4, 4, 5), seed=4), requires_grad=True)
    r = cn.tensor([[0, 0.5, 0.7, 3.9, 3.2], [0, 1.0, 1.0, 4.5, 2.0]])
    assert gradcheck(lambda a: ops.ps_roi_align(a, r, 2, 1.0, 2), [t], atol=1e-8, rtol=1e-6)


# -------------------------------------------------------------------- multi-scale
def test_multiscale_roi_align_levels_and_scales():
    rng = np.random.default_rng(5)
    feats = {"p2": rng.standard_normal((2, 2, 16, 16)), "p3": rng.standard_normal((2, 2, 8, 8)),
             "skip": rng.standard_normal((2, 2, 4, 4)), "p4": rng.standard_normal((2, 2, 4, 4))}
    boxes = [np.array([[0.0, 0, 10, 12], [4, 4, 60, 58], [1, 2, 30, 33]]),
             np.array([[8.0, 8, 40, 50], [0, 0, 63, 63]])]
    m = ops.MultiScaleRoIAlign(["p2", "p3", "p4"], 3, 2)
    x = {k: cn.tensor(v, requires_grad=True) for k, v in feats.items()}
    out = m(x, [cn.tensor(b) for b in boxes], [(64, 64), (60, 62)])
    assert m.scales == [0.25, 0.125, 0.0625]
    assert (m.map_levels.k_min, m.map_levels.k_max) == (2, 4)
    names = ["p2", "p3", "p4"]
    for row, (img, box) in enumerate((i, b) for i, bs in enumerate(boxes) for b in bs):
        k = math.floor(4 + math.log2(math.sqrt((box[2] - box[0]) * (box[3] - box[1])) / 224) + 1e-6)
        level = min(max(k, 2), 4) - 2
        want = ref_roi_align(feats[names[level]], np.array([[img, *box]]), 3, 3,
                             m.scales[level], 2, False)
        np.testing.assert_allclose(out.numpy()[row], want[0], rtol=1e-12, atol=1e-12)
    out.sum().backward()  # gradient reaches the maps that were pooled, not the skipped one
    assert x["p2"].grad is not None and x["skip"].grad is None
    assert "featmap_names=['p2', 'p3', 'p4']" in repr(m)


def test_multiscale_roi_align_single_level_and_canonical_arguments():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((1, 2, 8, 8))
    m = ops.MultiScaleRoIAlign(["0"], (2, 2), 0, canonical_scale=112, canonical_level=3)
    b = np.array([[1.0, 2, 20, 30]])
    out = m({"0": cn.tensor(f)}, [cn.tensor(b)], [(32, 32)])
    assert m.scales == [0.25]
    np.testing.assert_allclose(out.numpy(), ref_roi_align(f, np.array([[0, *b[0]]]), 2, 2, 0.25, 0, False),
                               rtol=1e-12, atol=1e-12)
    assert m.map_levels.s0 == 112 and m.map_levels.lvl0 == 3


# ------------------------------------------------------------------------ bad input
def test_roi_bad_input_errors_are_clear():
    x = cn.tensor(feature())
    with pytest.raises(ValueError, match=r"roi_align: box 0 has batch index 2.0, out of range for "
                                         r"input of batch size 2"):
        ops.roi_align(x, cn.tensor([[2.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"roi_pool: box 0 has batch index -1.0"):
        ops.roi_pool(x, cn.tensor([[-1.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"roi_align: box 2 has batch index"):
        ops.roi_align(x, [cn.tensor(np.ones((1, 4)))] * 3, 2)  # 3 images' boxes, batch of 2
    with pytest.raises(ValueError, match=r"boxes given as one Tensor must have shape \(K, 5\).*\(3, 4\)"):
        ops.roi_align(x, cn.tensor(np.ones((3, 4))), 2)
    with pytest.raises(ValueError, match=r"boxes\[1\] has shape \(2, 5\)"):
        ops.roi_align(x, [cn.tensor(np.ones((1, 4))), cn.tensor(np.ones((2, 5)))], 2)
    with pytest.raises(ValueError, match=r"roi_align: input must be a 4-D Tensor"):
        ops.roi_align(cn.tensor(feature()[0]), cn.tensor([[0.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match=r"output_size must be a positive int"):
        ops.roi_align(x, cn.tensor([[0.0, 0, 0, 1, 1]]), 0)
    with pytest.raises(TypeError, match=r"roi_pool: boxes must be a Tensor \(K, 5\) or a list"):
        ops.roi_pool(x, np.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match=r"ps_roi_align: input channels \(3\) must be a multiple"):
        ops.ps_roi_align(x, cn.tensor([[0.0, 0, 0, 1, 1]]), 2)
