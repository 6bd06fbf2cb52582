"""AnchorGenerator, BoxCoder, Matcher and the balanced sampler against plain-loop NumPy
transcriptions of torchvision's definitions (torchvision itself does not import here)."""
import math

import numpy as np
import pytest

import convnet as cn
from convnet.autograd.gradcheck import gradcheck
from convnet.models.detection import (
    AnchorGenerator, BalancedPositiveNegativeSampler, BoxCoder, ImageList, Matcher, SSDMatcher,
)


# ------------------------------------------------------------------ reference transcriptions
def ref_anchors(sizes, aspect_ratios, image_hw, grid_hws):
    """torchvision: float32 cell anchors round([-w, -h, w, h] / 2), shifted by (x s_w, y s_h)."""
    out = []
    for lvl, (gh, gw) in enumerate(grid_hws):
        cell = []
        for ar in aspect_ratios[lvl]:                     # ratios outer, sizes inner
            for s in sizes[lvl]:
                h_ratio = np.sqrt(np.float32(ar))
                w_ratio = np.float32(1) / h_ratio
                w, h = w_ratio * np.float32(s), h_ratio * np.float32(s)
                cell.append([np.round(-w / np.float32(2)), np.round(-h / np.float32(2)),
                             np.round(w / np.float32(2)), np.round(h / np.float32(2))])
        sh, sw = image_hw[0] // gh, image_hw[1] // gw
        for y in range(gh):
            for x in range(gw):
                for a in cell:
                    out.append([x * sw + float(a[0]), y * sh + float(a[1]),
                                x * sw + float(a[2]), y * sh + float(a[3])])
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def ref_encode(gt, prop, weights):
    wx, wy, ww, wh = weights
    out = np.zeros((len(gt), 4))
    for i in range(len(gt)):
        pw, ph = prop[i, 2] - prop[i, 0], prop[i, 3] - prop[i, 1]
        pcx, pcy = prop[i, 0] + 0.5 * pw, prop[i, 1] + 0.5 * ph
        gw, gh = gt[i, 2] - gt[i, 0], gt[i, 3] - gt[i, 1]
        gcx, gcy = gt[i, 0] + 0.5 * gw, gt[i, 1] + 0.5 * gh
        out[i] = [wx * (gcx - pcx) / pw, wy * (gcy - pcy) / ph,
                  ww * math.log(gw / pw), wh * math.log(gh / ph)]
    return out


def ref_decode(codes, boxes, weights, clip):
    wx, wy, ww, wh = weights
    out = np.zeros_like(codes)
    for i in range(codes.shape[0]):
        w, h = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
        cx, cy = boxes[i, 0] + 0.5 * w, boxes[i, 1] + 0.5 * h
        for k in range(codes.shape[1] // 4):
            dx, dy, dw, dh = codes[i, 4 * k:4 * k + 4] / np.array([wx, wy, ww, wh])
            dw, dh = min(dw, clip), min(dh, clip)
            pcx, pcy = dx * w + cx, dy * h + cy
            pw, ph = math.exp(dw) * w, math.exp(dh) * h
            out[i, 4 * k:4 * k + 4] = [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph]
    return out


def ref_match(q, high, low, allow_low):
    m, n = q.shape
    matches = np.zeros(n, dtype=np.int64)
    best = np.zeros(n, dtype=np.int64)
    for j in range(n):
        b = 0
        for i in range(1, m):
            if q[i, j] > q[b, j]:                        # first maximum wins ties
                b = i
        best[j] = b
        v = q[b, j]
        matches[j] = b if v >= high else (-2 if v >= low else -1)
    if allow_low:
        for i in range(m):
            top = max(q[i, :])
            for j in range(n):
                if q[i, j] == top:
                    matches[j] = best[j]
    return matches


def random_boxes(rng, n, lo=0.0, hi=50.0):
    xy = rng.uniform(lo, hi, size=(n, 2))
    wh = rng.uniform(1.0, 30.0, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# ------------------------------------------------------------------------------ AnchorGenerator
def test_default_cell_anchors_are_torchvisions():
    # torchvision's well-known default cell anchors (sizes 128/256/512, ratios 0.5/1/2)
    gen = AnchorGenerator()
    expected = [[-91, -45, 91, 45], [-181, -91, 181, 91], [-362, -181, 362, 181],
                [-64, -64, 64, 64], [-128, -128, 128, 128], [-256, -256, 256, 256],
                [-45, -91, 45, 91], [-91, -181, 91, 181], [-181, -362, 181, 362]]
    assert gen.cell_anchors[0].numpy().tolist() == expected
    assert gen.num_anchors_per_location() == [9]


@pytest.mark.parametrize("sizes, ratios, image_hw, grids", [
    (((32,),), ((1.0,),), (37, 53), [(5, 7)]),
    (((16, 24), (40,), (64, 90, 128)), ((0.5, 1.0, 2.0), (1.0, 3.0), (0.25, 1.7)),
     (61, 45), [(15, 11), (7, 5), (3, 2)]),
    (((10, 13),), ((0.33, 0.8, 1.25),), (29, 29), [(29, 29)]),   # stride 1
    (((5,), (7,)), ((1.1,), (2.2,)), (33, 35), [(4, 6), (33, 35)]),
])
@pytest.mark.parametrize("dtype", [cn.float32, cn.float64])
def test_anchor_coordinates_match_transcription(sizes, ratios, image_hw, grids, dtype):
    gen = AnchorGenerator(sizes, ratios)
    images = ImageList(cn.zeros(2, 3, *image_hw), [image_hw, (image_hw[0] - 3, image_hw[1] - 1)])
    feats = [cn.zeros(2, 4, gh, gw, dtype=dtype) for gh, gw in grids]
    out = gen(images, feats)
    ref = ref_anchors(sizes, ratios, image_hw, grids)
    assert len(out) == 2
    for a in out:
        assert a.dtype == dtype and tuple(a.shape) == ref.shape
        np.testing.assert_array_equal(a.numpy().astype(np.float64), ref)
    assert ref.shape[0] == sum(gh * gw * n for (gh, gw), n in zip(grids, gen.num_anchors_per_location()))


def test_anchor_flat_sizes_mean_one_size_per_level_and_batch_tensor_input():
    gen = AnchorGenerator(sizes=(8, 16), aspect_ratios=(0.5, 2.0))
    assert gen.sizes == ((8,), (16,)) and gen.aspect_ratios == ((0.5, 2.0), (0.5, 2.0))
    out = gen(cn.zeros(3, 1, 20, 20), [cn.zeros(3, 2, 5, 5), cn.zeros(3, 2, 2, 2)])
    assert len(out) == 3
    ref = ref_anchors(((8,), (16,)), ((0.5, 2.0), (0.5, 2.0)), (20, 20), [(5, 5), (2, 2)])
    np.testing.assert_array_equal(out[2].numpy(), ref)
    out[0][0, 0] = 1000.0                               # images do not share storage
    assert out[1].numpy()[0, 0] != 1000.0


def test_anchor_generator_errors():
    with pytest.raises(ValueError, match="levels"):
        AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=((1.0,), (1.0,), (2.0,)))
    with pytest.raises(ValueError, match="positive"):
        AnchorGenerator(sizes=((8, -1),), aspect_ratios=((1.0,),))
    gen = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=((1.0,), (1.0,)))
    images = ImageList(cn.zeros(1, 1, 16, 16), [(16, 16)])
    with pytest.raises(ValueError, match="2 levels"):
        gen(images, [cn.zeros(1, 1, 4, 4)])
    with pytest.raises(TypeError, match="list of Tensors"):
        gen(images, cn.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(32, 32\).*\(16, 16\)"):
        gen(images, [cn.zeros(1, 1, 4, 4), cn.zeros(1, 1, 32, 32)])
    with pytest.raises(ValueError, match="image sizes"):
        ImageList(cn.zeros(2, 1, 16, 16), [(16, 16)])


# ------------------------------------------------------------------------------------ BoxCoder
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 7.0)])
def test_encode_decode_match_transcription_and_round_trip(weights):
    rng = np.random.default_rng(0)
    gt, prop = random_boxes(rng, 40), random_boxes(rng, 40)
    coder = BoxCoder(weights)
    t = coder.encode_single(cn.tensor(gt, dtype=cn.float64), cn.tensor(prop, dtype=cn.float64))
    assert t.dtype == cn.float64 and tuple(t.shape) == (40, 4)
    np.testing.assert_allclose(t.numpy(), ref_encode(gt, prop, weights), rtol=1e-12, atol=1e-12)
    back = coder.decode_single(t, cn.tensor(prop, dtype=cn.float64))
    np.testing.assert_allclose(back.numpy(), gt, rtol=1e-12, atol=1e-12)
    # several boxes (e.g. one per class) per reference box, and the clamp
    codes = rng.normal(size=(40, 12)) * 3.0
    codes[:5, 2] = 50.0                                  # dw far above log(1000/16)
    codes[5:9, 7] = 9.0 * weights[3]
    out = coder.decode_single(cn.tensor(codes, dtype=cn.float64), cn.tensor(prop, dtype=cn.float64))
    ref = ref_decode(codes, prop, weights, math.log(1000.0 / 16))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(out.numpy()))
    w_prop = prop[:5, 2] - prop[:5, 0]
    clamped_w = out.numpy()[:5, 2] - out.numpy()[:5, 0]
    np.testing.assert_allclose(clamped_w, w_prop * 1000.0 / 16, rtol=1e-12)


def test_list_forms_split_and_reshape_as_torchvision():
    rng = np.random.default_rng(1)
    gts = [cn.tensor(random_boxes(rng, n), dtype=cn.float64) for n in (3, 0, 5)]
    props = [cn.tensor(random_boxes(rng, n), dtype=cn.float64) for n in (3, 0, 5)]
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    targets = coder.encode(gts, props)
    assert [tuple(t.shape) for t in targets] == [(3, 4), (0, 4), (5, 4)]
    np.testing.assert_allclose(targets[2].numpy(), ref_encode(gts[2].numpy(), props[2].numpy(),
                                                              coder.weights), rtol=1e-12)
    codes = cn.tensor(rng.normal(size=(8, 8)), dtype=cn.float64)
    out = coder.decode(codes, props)
    assert tuple(out.shape) == (8, 2, 4)
    ref = ref_decode(codes.numpy(), np.concatenate([p.numpy() for p in props]), coder.weights,
                     coder.bbox_xform_clip)
    np.testing.assert_allclose(out.numpy().reshape(8, 8), ref, rtol=1e-12, atol=1e-12)


def test_decode_float32_and_dtype_follows_rel_codes():
    rng = np.random.default_rng(2)
    boxes = cn.tensor(random_boxes(rng, 6), dtype=cn.float64)
    codes = cn.tensor(rng.normal(size=(6, 4)), dtype=cn.float32)
    out = BoxCoder().decode_single(codes, boxes)
    assert out.dtype == cn.float32
    ref = ref_decode(codes.numpy().astype(np.float64), boxes.numpy().astype(np.float32).astype(np.float64),
                     (1, 1, 1, 1), math.log(1000 / 16))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-4)


def test_decode_and_encode_gradients():
    rng = np.random.default_rng(3)
    boxes = cn.tensor(random_boxes(rng, 5), dtype=cn.float64)
    codes = rng.normal(size=(5, 8))
    codes[0, 2] = 30.0          # 30 / ww = 6 > log(1000/16): clamped, no gradient through dw
    codes_t = cn.tensor(codes, dtype=cn.float64, requires_grad=True)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    assert gradcheck(lambda c: coder.decode_single(c, boxes), [codes_t])
    coder.decode_single(codes_t, boxes).sum().backward()
    assert codes_t.grad.numpy()[0, 2] == 0.0 and codes_t.grad.numpy()[0, 6] != 0.0
    gt = cn.tensor(random_boxes(rng, 5), dtype=cn.float64, requires_grad=True)
    assert gradcheck(lambda g: coder.encode_single(g, boxes), [gt])


def test_box_coder_errors():
    coder = BoxCoder()
    b = cn.zeros(3, 4, dtype=cn.float64)
    with pytest.raises(ValueError, match=r"reference_boxes .*\(3, 4\).*proposals .*\(2, 4\)"):
        coder.encode_single(b, cn.zeros(2, 4))
    with pytest.raises(ValueError, match=r"proposals must have shape \(N, 4\), got \(3, 5\)"):
        coder.encode_single(b, cn.zeros(3, 5))
    with pytest.raises(ValueError, match=r"rel_codes must have shape \(N, 4k\), got \(3, 6\)"):
        coder.decode_single(cn.zeros(3, 6), b)
    with pytest.raises(ValueError, match="same number of rows"):
        coder.decode_single(cn.zeros(2, 4), b)
    with pytest.raises(TypeError, match="list"):
        coder.decode(cn.zeros(3, 4), b)
    with pytest.raises(ValueError, match="multiple of 4"):
        coder.decode(cn.zeros(3, 5), [b])
    with pytest.raises(ValueError, match="weights"):
        BoxCoder((1.0, 0.0, 1.0, 1.0))
    # empty inputs are fine: (0, 4) in, (0, 4) out
    assert tuple(coder.decode_single(cn.zeros(0, 4), cn.zeros(0, 4)).shape) == (0, 4)


# ------------------------------------------------------------------------------------- Matcher
@pytest.mark.parametrize("allow_low", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_matcher_matches_transcription_with_ties(allow_low, seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(1, 6), rng.integers(1, 30)
    q = rng.integers(0, 9, size=(m, n)) / 8.0            # coarse values: many ties
    out = Matcher(0.7, 0.3, allow_low)(cn.tensor(q, dtype=cn.float64))
    assert out.dtype == cn.int64 and tuple(out.shape) == (n,)
    np.testing.assert_array_equal(out.numpy(), ref_match(q, 0.7, 0.3, allow_low))


def test_matcher_hand_case():
    q = np.array([[0.90, 0.20, 0.10, 0.35, 0.05],
                  [0.10, 0.40, 0.40, 0.65, 0.02]])
    # plain: 0 -> gt 0; 1, 2 between (0.4); 3 between (0.65); 4 below
    assert Matcher(0.7, 0.3)(cn.tensor(q)).tolist() == [0, -2, -2, -2, -1]
    # low quality: gt 1's best is 0.65 at prediction 3 -> matched to gt 1 (its best gt)
    assert Matcher(0.7, 0.3, True)(cn.tensor(q)).tolist() == [0, -2, -2, 1, -1]
    # equal thresholds: no BETWEEN_THRESHOLDS
    assert Matcher(0.4, 0.4)(cn.tensor(q)).tolist() == [0, 1, 1, 1, -1]
    # tie for a gt's best: both predictions get their own best match back
    q2 = np.array([[0.2, 0.2, 0.1], [0.3, 0.1, 0.25]])
    assert Matcher(0.5, 0.5, True)(cn.tensor(q2)).tolist() == [1, 0, -1]


def test_ssd_matcher():
    q = np.array([[0.1, 0.6, 0.2, 0.05],
                  [0.3, 0.2, 0.25, 0.1]])
    # threshold 0.5: pred 1 -> gt 0; gt 1's best prediction (0) is forced to gt 1
    assert SSDMatcher(0.5)(cn.tensor(q)).tolist() == [1, 0, -1, -1]


def test_matcher_errors():
    with pytest.raises(ValueError, match="No ground-truth boxes.*shape \\(0, 5\\)"):
        Matcher(0.5, 0.4)(cn.zeros(0, 5))
    with pytest.raises(ValueError, match="No proposal boxes"):
        Matcher(0.5, 0.4)(cn.zeros(3, 0))
    with pytest.raises(ValueError, match=r"\(M ground truths, N predictions\)"):
        Matcher(0.5, 0.4)(cn.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        Matcher(0.5, 0.4)(cn.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.3, 0.5)


# ------------------------------------------------------------------------------------- sampler
def test_sampler_counts_and_masks():
    rng = np.random.default_rng(4)
    labels = [rng.choice([-1, 0, 1, 3], size=200, p=[0.2, 0.6, 0.1, 0.1]),
              np.array([1, 1, 0, -1, 0]),                # too few of both
              np.zeros(50, dtype=np.int64),              # no positives
              np.full(40, 2)]                            # no negatives
    sampler = BalancedPositiveNegativeSampler(64, 0.25)
    cn.manual_seed(0)
    pos, neg = sampler([cn.tensor(x) for x in labels])
    for x, p, n in zip(labels, pos, neg):
        p, n = p.numpy(), n.numpy()
        assert p.dtype == np.uint8 and n.dtype == np.uint8 and p.shape == x.shape
        n_pos = min(int(np.sum(x >= 1)), 16)
        assert p.sum() == n_pos
        assert n.sum() == min(int(np.sum(x == 0)), 64 - n_pos)
        assert np.all(x[p == 1] >= 1) and np.all(x[n == 1] == 0)
    # float labels as torchvision's RPN passes them (1.0 fg, 0.0 bg, -1.0 ignored)
    p, n = sampler([cn.tensor([1.0, 0.0, -1.0, 0.0])])
    assert p[0].tolist() == [1, 0, 0, 0] and n[0].tolist() == [0, 1, 0, 1]


def test_sampler_is_seeded_by_convnet_random_and_uniform():
    labels = cn.tensor(np.r_[np.ones(100), np.zeros(300)].astype(np.int64))
    sampler = BalancedPositiveNegativeSampler(40, 0.5)
    cn.manual_seed(7)
    a = sampler([labels])
    cn.manual_seed(7)
    b = sampler([labels])
    c = sampler([labels])
    assert a[0][0].tolist() == b[0][0].tolist() and a[1][0].tolist() == b[1][0].tolist()
    assert a[0][0].tolist() != c[0][0].tolist()
    # every positive is drawn with probability 20 / 100
    cn.manual_seed(1)
    counts = sum(sampler([labels])[0][0].numpy()[:100].astype(np.int64) for _ in range(200))
    assert abs(counts.mean() - 40.0) < 1e-9 and counts.min() > 15 and counts.max() < 70


def test_sampler_errors():
    with pytest.raises(ValueError, match="positive_fraction"):
        BalancedPositiveNegativeSampler(10, 1.5)
    with pytest.raises(TypeError, match="list"):
        BalancedPositiveNegativeSampler(10, 0.5)(cn.zeros(5))
    with pytest.raises(ValueError, match=r"matched_idxs\[0\] must be 1-D, got shape \(2, 3\)"):
        BalancedPositiveNegativeSampler(10, 0.5)([cn.zeros(2, 3)])
