"""convnet/explorer/static/explain.js (``ConvnetExplain``) against torch, in a real browser.

explain.js explains ONE output value of a layer (the taps, products, window, statistics that
give it). Here it is loaded into a blank Chromium page and, for many random configurations
(odd sizes, stride > kernel, dilation, groups incl. depthwise, every padding mode, ceil_mode,
count_include_pad, divisor_override, ...), its value is compared with torch's output at that
position, computed in float64 on the same float32 data (so agreement is ~1e-12, far tighter
than the 1e-5 the page needs), and with torch's float32 output to 1e-5 relative. The structure
(taps inside the window, padding flags, where reflect/replicate/circular padding reads from,
the window, the argmax) is checked against numpy computed independently here.

Each test sends all its cases in one ``page.evaluate`` call, so the file runs in seconds.
"""
from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

EXPLAIN_JS = Path(__file__).resolve().parents[2] / "convnet" / "explorer" / "static" / "explain.js"

# JS side: turn {shape, b64: little-endian float32 bytes} into tensors with Float32Array data
# (the exact float32 values Python made; base64 keeps the transfer cheap, and a tensor shared by
# several cases is decoded once) and run one function per case.
HARNESS = """
([fn, cases]) => {
  const seen = new Map();
  const T = (o) => {
    if (o === null || o === undefined) return null;
    if (!seen.has(o.b64)) {
      const bytes = Uint8Array.from(atob(o.b64), (ch) => ch.charCodeAt(0));
      seen.set(o.b64, new Float32Array(bytes.buffer));
    }
    return {shape: o.shape, data: seen.get(o.b64)};
  };
  const E = window.ConvnetExplain;
  return cases.map((c) => {
    try {
      return FN;
    } catch (e) {
      return {error: String(e.message || e)};
    }
  });
}
"""

CALLS = {
    "conv2d": "E.conv2d(T(c.input), T(c.weight), T(c.bias), c.cfg, c.c, c.y, c.x)",
    "conv1d": "E.conv1d(T(c.input), T(c.weight), T(c.bias), c.cfg, c.c, c.x)",
    "linear": "E.linear(T(c.input), T(c.weight), T(c.bias), c.flat)",
    "pool2d": "E.pool2d(T(c.input), c.cfg, c.c, c.y, c.x)",
    "adaptivePool2d": "E.adaptivePool2d(T(c.input), c.cfg, c.c, c.y, c.x)",
    "activation": "c.values.map((v) => E.activation(c.cfg, v).value)",
    "batchnorm": "E.batchnorm(T(c.input), T(c.mean), T(c.var), T(c.weight), T(c.bias), c.cfg, "
                 "c.c, c.y, c.x)",
    "layernorm": "E.layernorm(T(c.input), T(c.weight), T(c.bias), c.cfg, c.flat)",
    "groupnorm": "E.groupnorm(T(c.input), T(c.weight), T(c.bias), c.cfg, c.c, c.y, c.x)",
    "softmax": "E.softmax(c.logits)",
    "receptiveBox": "E.receptiveBox(c.rf, c.i, c.j)",
    "erf": "c.values.map((v) => [E.erf(v), E.erfc(v)])",
}


@pytest.fixture
def js(page):
    """``js(name, cases)`` -> the list of ConvnetExplain.<name> results, one per case (an
    ``{"error": msg}`` where the call threw)."""
    page.set_content("<html><body></body></html>")
    page.add_script_tag(path=str(EXPLAIN_JS))

    def call(name, cases):
        return page.evaluate(HARNESS.replace("FN", CALLS[name]), [name, cases])

    yield call
    assert page.console_errors == []


def tensor(a):
    """numpy float32 array -> the form the harness turns into a tensor."""
    if a is None:
        return None
    return {"shape": list(a.shape), "b64": base64.b64encode(a.astype("<f4").tobytes()).decode()}


def rand32(rng, *shape, scale=1.0):
    """Float64 random data rounded to float32 (the values both sides see exactly)."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t64(a):
    return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))


def t32(a):
    return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float32))


def close(js_value, ref64, ref32, what):
    """JS (float64 maths) vs torch float64 to 1e-9 and vs torch float32 to 1e-5 relative."""
    assert js_value == pytest.approx(ref64, rel=1e-9, abs=1e-12), what
    assert js_value == pytest.approx(ref32, rel=1e-5, abs=1e-5), what


def assert_ok(results):
    errors = [r["error"] for r in results if isinstance(r, dict) and "error" in r]
    assert not errors, errors[:3]


def positions(rng, oh, ow, n=3):
    """The two corners plus n random output positions."""
    pts = {(0, 0), (oh - 1, ow - 1)}
    for _ in range(n):
        pts.add((int(rng.integers(oh)), int(rng.integers(ow))))
    return sorted(pts)


NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def source_of(mode, i, n, p):
    """Where padded coordinate i (input coordinates) reads from: numpy pads an index ramp the
    way torch pads the values (independent of explain.js's formula)."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    return int(np.pad(np.arange(n), p, mode=NP_PAD[mode])[i + p])


# ----------------------------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------------------------

def conv_case(rng):
    groups = int(rng.choice([1, 1, 2, 3]))
    cin_g, cout_g = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    depthwise = rng.random() < 0.2
    if depthwise:
        cin_g, cout_g, groups = 1, int(rng.integers(1, 3)), int(rng.integers(2, 6))
    C, Co = cin_g * groups, cout_g * groups
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 5)), int(rng.integers(1, 5))  # often > kernel
    dh, dw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    H, W = int(rng.integers(kh, 14)), int(rng.integers(kw, 14))
    H, W = max(H, (kh - 1) * dh + 1 - 2), max(W, (kw - 1) * dw + 1 - 2)
    H, W = max(H, 2), max(W, 2)
    limit_h = H - 1 if mode == "reflect" else H  # reflect needs p < n, circular p <= n
    limit_w = W - 1 if mode == "reflect" else W
    ph = int(rng.integers(0, min(limit_h, 4) + 1))
    pw = int(rng.integers(0, min(limit_w, 4) + 1))
    if H + 2 * ph < (kh - 1) * dh + 1:
        H = (kh - 1) * dh + 1
    if W + 2 * pw < (kw - 1) * dw + 1:
        W = (kw - 1) * dw + 1
    x = rand32(rng, 1, C, H, W)
    w = rand32(rng, Co, cin_g, kh, kw, scale=0.5)
    b = rand32(rng, Co) if rng.random() < 0.7 else None
    cfg = {"in_channels": C, "out_channels": Co, "kernel_size": [kh, kw], "stride": [sh, sw],
           "padding": [ph, pw], "dilation": [dh, dw], "groups": groups, "padding_mode": mode,
           "bias": b is not None, "transposed": False}
    return x, w, b, cfg


def torch_conv2d(x, w, b, cfg, to):
    xt = to(x)
    ph, pw = cfg["padding"]
    if cfg["padding_mode"] != "zeros":
        xt = F.pad(xt, (pw, pw, ph, ph), mode=cfg["padding_mode"])
        pad = 0
    else:
        pad = (ph, pw)
    return F.conv2d(xt, to(w), to(b), cfg["stride"], pad, cfg["dilation"], cfg["groups"])[0]


def test_conv2d_matches_torch_and_shows_its_taps(js):
    rng = np.random.default_rng(0)
    cases, refs = [], []
    for _ in range(120):
        x, w, b, cfg = conv_case(rng)
        out64, out32 = torch_conv2d(x, w, b, cfg, t64), torch_conv2d(x, w, b, cfg, t32)
        Co, OH, OW = out64.shape
        for (y, xx) in positions(rng, OH, OW):
            c = int(rng.integers(Co))
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b), "cfg": cfg,
                          "c": c, "y": y, "x": xx})
            refs.append((x, w, b, cfg, c, y, xx, float(out64[c, y, xx]), float(out32[c, y, xx]),
                         tuple(out64.shape)))
    modes = {r[3]["padding_mode"] for r in refs}
    assert modes == {"zeros", "reflect", "replicate", "circular"}
    assert any(r[3]["groups"] > 1 and r[3]["in_channels"] == r[3]["groups"] for r in refs)
    results = js("conv2d", cases)
    assert_ok(results)
    padded_taps = 0
    for res, (x, w, b, cfg, c, y, xx, v64, v32, oshape) in zip(results, refs):
        what = f"conv2d {cfg} at c={c} y={y} x={xx}"
        close(res["value"], v64, v32, what)
        assert tuple(res["outShape"]) == oshape, what
        _, C, H, W = x.shape
        Co, cin_g, kh, kw = w.shape
        g = c // (Co // cfg["groups"])
        assert res["inChannels"] == list(range(g * cin_g, (g + 1) * cin_g)), what
        (sh, sw), (ph, pw), (dh, dw) = cfg["stride"], cfg["padding"], cfg["dilation"]
        win = res["window"]
        assert win == {"y0": y * sh - ph, "x0": xx * sw - pw,
                       "y1": y * sh - ph + (kh - 1) * dh, "x1": xx * sw - pw + (kw - 1) * dw}, what
        assert len(res["taps"]) == cin_g * kh * kw, what
        mode = cfg["padding_mode"]
        for t in res["taps"]:
            assert t["iy"] == win["y0"] + t["ky"] * dh and t["ix"] == win["x0"] + t["kx"] * dw
            assert win["y0"] <= t["iy"] <= win["y1"] and win["x0"] <= t["ix"] <= win["x1"]
            inside = 0 <= t["iy"] < H and 0 <= t["ix"] < W
            assert t["inPadding"] == (not inside), what
            padded_taps += not inside
            sy, sx = source_of(mode, t["iy"], H, ph), source_of(mode, t["ix"], W, pw)
            if sy is None or sx is None:  # zeros padding
                assert (t["srcY"], t["srcX"], t["x"]) == (None, None, 0), what
            else:
                assert (t["srcY"], t["srcX"]) == (sy, sx), (what, t)
                assert t["x"] == float(x[0, t["ci"], sy, sx]), what
            assert t["w"] == float(w[c, t["ci"] - g * cin_g, t["ky"], t["kx"]]), what
            assert t["product"] == t["x"] * t["w"]
        sums = {p["ci"]: p["sum"] for p in res["perChannel"]}
        for ci in res["inChannels"]:
            assert sums[ci] == pytest.approx(
                sum(t["product"] for t in res["taps"] if t["ci"] == ci), rel=1e-12, abs=1e-12)
        assert res["sum"] == pytest.approx(sum(sums.values()), rel=1e-12, abs=1e-12)
        assert res["bias"] == (0 if b is None else float(b[c]))
        assert res["value"] == res["sum"] + res["bias"]
    assert len(cases) > 400 and padded_taps > 500


def test_conv1d_matches_torch(js):
    rng = np.random.default_rng(1)
    cases, refs = [], []
    for _ in range(40):
        groups = int(rng.choice([1, 2]))
        C, Co = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 3))
        k, s, d = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        L = int(rng.integers((k - 1) * d + 2, 20))
        p = int(rng.integers(0, min(3, L - 1) + 1))
        x, w = rand32(rng, 1, C, L), rand32(rng, Co, C // groups, k)
        b = rand32(rng, Co)
        cfg = {"kernel_size": [k], "stride": [s], "padding": [p], "dilation": [d],
               "groups": groups, "padding_mode": mode}

        def run(to):
            xt = to(x)
            if mode != "zeros":
                xt = F.pad(xt, (p, p), mode=mode)
            return F.conv1d(xt, to(w), to(b), s, 0 if mode != "zeros" else p, d, groups)[0]

        o64, o32 = run(t64), run(t32)
        for i in {0, o64.shape[1] - 1, int(rng.integers(o64.shape[1]))}:
            c = int(rng.integers(Co))
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b),
                          "cfg": cfg, "c": c, "x": i})
            refs.append((float(o64[c, i]), float(o32[c, i]), mode, L, p, i, s))
    results = js("conv1d", cases)
    assert_ok(results)
    for res, (v64, v32, mode, L, p, i, s) in zip(results, refs):
        close(res["value"], v64, v32, f"conv1d {mode}")
        assert res["window"]["x0"] == i * s - p
        for t in res["taps"]:
            assert t["inPadding"] == (not 0 <= t["pos"] < L)
            assert t["src"] == source_of(mode, t["pos"], L, p)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_same_padding_with_even_kernels_pads_one_more_after(js):
    """'same' (or its resolved [[top, bottom], [left, right]] form): torch puts d(k-1)//2 before
    and the rest after, so the output keeps the input size and the last row/column exists."""
    rng = np.random.default_rng(15)
    cases, refs = [], []
    for n in range(32):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        H, W = int(rng.integers(4, 9)), int(rng.integers(4, 9))
        mode = ["zeros", "reflect", "replicate", "circular"][n // 4 % 4]
        x, w, b = rand32(rng, 1, 2, H, W), rand32(rng, 3, 2, kh, kw), rand32(rng, 3)
        conv = torch.nn.Conv2d(2, 3, (kh, kw), padding="same", dilation=(dh, dw),
                               padding_mode=mode).double()
        with torch.no_grad():
            conv.weight.copy_(t64(w))
            conv.bias.copy_(t64(b))
            out = conv(t64(x))[0]
        assert out.shape[1:] == (H, W)
        th, tw = dh * (kh - 1), dw * (kw - 1)
        # every form a back end may send: the string, explicit pairs, before + padding_after,
        # and the before part alone (stride 1: the extra last row/column is accepted)
        before = [th // 2, tw // 2]
        padding = ["same", [[th // 2, th - th // 2], [tw // 2, tw - tw // 2]], before,
                   before][n % 4]
        cfg = {"kernel_size": [kh, kw], "stride": [1, 1], "padding": padding,
               "dilation": [dh, dw], "groups": 1, "padding_mode": mode}
        if n % 4 == 2:
            cfg["padding_after"] = [th - th // 2, tw - tw // 2]
        for (y, xx) in positions(rng, H, W):
            c = int(rng.integers(3))
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b), "cfg": cfg,
                          "c": c, "y": y, "x": xx})
            refs.append((float(out[c, y, xx]), y - th // 2, xx - tw // 2, cfg, (H, W)))
    results = js("conv2d", cases)
    assert_ok(results)
    for res, (ref, y0, x0, cfg, hw) in zip(results, refs):
        assert res["value"] == pytest.approx(ref, rel=1e-9, abs=1e-12), cfg
        assert (res["window"]["y0"], res["window"]["x0"]) == (y0, x0)
        if not isinstance(cfg["padding"][0], int) or "padding_after" in cfg:
            assert tuple(res["outShape"][1:]) == hw, cfg
    # an explicit symmetric padding that is not 'same' keeps its own output size and range
    x, w = rand32(rng, 1, 1, 5, 5), rand32(rng, 1, 1, 2, 2)
    cfg = {"kernel_size": [2, 2], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
           "groups": 1, "padding_mode": "zeros"}
    ok, = js("conv2d", [{"input": tensor(x), "weight": tensor(w), "bias": None, "cfg": cfg,
                         "c": 0, "y": 3, "x": 3}])
    assert ok["outShape"] == [1, 4, 4]
    ref = F.conv2d(t64(x), t64(w))[0, 0, 3, 3]
    assert ok["value"] == pytest.approx(float(ref), rel=1e-9)
    # conv1d takes the same forms
    x, w = rand32(rng, 1, 2, 9), rand32(rng, 2, 2, 4)
    ref = F.conv1d(t64(x), t64(w), None, padding="same")[0]
    got = js("conv1d", [{"input": tensor(x), "weight": tensor(w), "bias": None,
                         "cfg": {"kernel_size": [4], "padding": "same"}, "c": 1, "x": 8}])
    assert got[0]["value"] == pytest.approx(float(ref[1, 8]), rel=1e-9, abs=1e-12)


def test_conv2d_errors_name_the_problem(js):
    x = np.zeros((1, 3, 5, 5), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    cfg = {"kernel_size": [3, 3], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
           "groups": 1, "padding_mode": "zeros"}
    good_w = np.zeros((4, 3, 3, 3), np.float32)
    res = js("conv2d", [
        {"input": tensor(x), "weight": tensor(w), "bias": None, "cfg": cfg, "c": 0, "y": 0, "x": 0},
        {"input": tensor(x), "weight": tensor(good_w), "bias": None, "cfg": cfg, "c": 0, "y": 3,
         "x": 0},
        {"input": tensor(x), "weight": tensor(good_w), "bias": None, "cfg": cfg, "c": 0, "y": 2,
         "x": 2},
    ])
    assert "conv2d" in res[0]["error"] and "3 channels" in res[0]["error"]
    assert "y=3" in res[1]["error"] and "[0, 3)" in res[1]["error"]
    assert res[2]["value"] == 0 and res[2]["hasBias"] is False
    (missing,) = js("conv2d", [{"input": tensor(x), "weight": None, "bias": None, "cfg": cfg,
                                "c": 0, "y": 0, "x": 0}])
    assert "conv2d" in missing["error"] and "weight" in missing["error"]


# ----------------------------------------------------------------------------------------------
# linear
# ----------------------------------------------------------------------------------------------

def test_linear_matches_torch(js):
    rng = np.random.default_rng(2)
    cases, refs = [], []
    for n in range(30):
        fin, fout = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        shape = (1, fin) if n % 2 else (1, int(rng.integers(1, 6)), fin)
        x, w = rand32(rng, *shape), rand32(rng, fout, fin)
        b = rand32(rng, fout) if n % 3 else None
        o64 = F.linear(t64(x), t64(w), t64(b))[0].reshape(-1)
        o32 = F.linear(t32(x), t32(w), t32(b))[0].reshape(-1)
        for flat in {0, o64.numel() - 1, int(rng.integers(o64.numel()))}:
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b),
                          "flat": flat})
            refs.append((x, w, b, flat, float(o64[flat]), float(o32[flat])))
    results = js("linear", cases)
    assert_ok(results)
    for res, (x, w, b, flat, v64, v32) in zip(results, refs):
        close(res["value"], v64, v32, f"linear {x.shape} -> {w.shape[0]} at {flat}")
        fout, fin = w.shape
        tok, o = divmod(flat, fout)
        assert res["out"] == o and res["token"] == (None if x.ndim == 2 else tok)
        assert [t["i"] for t in res["taps"]] == list(range(fin))
        assert [t["x"] for t in res["taps"]] == x.reshape(-1, fin)[tok].tolist()
        assert [t["w"] for t in res["taps"]] == w[o].tolist()
        assert res["bias"] == (0 if b is None else float(b[o]))


# ----------------------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------------------

def pool_case(rng, kind):
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    dh, dw = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if kind == "max" else (1, 1)
    H = int(rng.integers(max(1, (kh - 1) * dh + 1 - 2 * ph), 14))
    W = int(rng.integers(max(1, (kw - 1) * dw + 1 - 2 * pw), 14))
    cfg = {"kind": kind, "kernel_size": [kh, kw], "stride": [sh, sw], "padding": [ph, pw],
           "dilation": [dh, dw], "ceil_mode": bool(rng.random() < 0.6),
           "count_include_pad": bool(rng.random() < 0.5),
           "divisor_override": int(rng.integers(1, 7)) if rng.random() < 0.15 else None}
    x = rand32(rng, 1, int(rng.integers(1, 4)), H, W)
    if rng.random() < 0.3:  # many ties: the first maximum in row-major order must win
        x = np.round(x).astype(np.float32)
    return x, cfg


def torch_pool(x, cfg, to):
    if cfg["kind"] == "max":
        out, idx = F.max_pool2d(to(x), cfg["kernel_size"], cfg["stride"], cfg["padding"],
                                cfg["dilation"], ceil_mode=cfg["ceil_mode"], return_indices=True)
        return out[0], idx[0]
    out = F.avg_pool2d(to(x), cfg["kernel_size"], cfg["stride"], cfg["padding"],
                       ceil_mode=cfg["ceil_mode"], count_include_pad=cfg["count_include_pad"],
                       divisor_override=cfg["divisor_override"])
    return out[0], None


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d_matches_torch(js, kind):
    rng = np.random.default_rng(3 if kind == "max" else 4)
    cases, refs = [], []
    ceil_extra = 0
    for _ in range(150):
        x, cfg = pool_case(rng, kind)
        o64, idx = torch_pool(x, cfg, t64)
        o32, _ = torch_pool(x, cfg, t32)
        C, OH, OW = o64.shape
        floor_cfg = dict(cfg, ceil_mode=False)
        ceil_extra += cfg["ceil_mode"] and torch_pool(x, floor_cfg, t64)[0].shape != o64.shape
        for (y, xx) in positions(rng, OH, OW):
            c = int(rng.integers(C))
            cases.append({"input": tensor(x), "cfg": cfg, "c": c, "y": y, "x": xx})
            refs.append((x, cfg, c, y, xx, float(o64[c, y, xx]), float(o32[c, y, xx]),
                         None if idx is None else int(idx[c, y, xx]), tuple(o64.shape)))
    assert ceil_extra >= 10  # ceil_mode adds an output row/column in many cases
    results = js("pool2d", cases)
    assert_ok(results)
    for res, (x, cfg, c, y, xx, v64, v32, flat_arg, oshape) in zip(results, refs):
        what = f"{kind} pool {cfg} {x.shape} at c={c} y={y} x={xx}"
        close(res["value"], v64, v32, what)
        assert tuple(res["outShape"]) == oshape, what
        _, _, H, W = x.shape
        (kh, kw), (sh, sw) = cfg["kernel_size"], cfg["stride"]
        (ph, pw), (dh, dw) = cfg["padding"], cfg["dilation"]
        y0, x0 = y * sh - ph, xx * sw - pw
        assert res["window"] == {"y0": y0, "x0": x0, "y1": y0 + (kh - 1) * dh,
                                 "x1": x0 + (kw - 1) * dw}, what
        expect = [(y0 + ky * dh, x0 + kx * dw) for ky in range(kh) for kx in range(kw)]
        assert [(t["iy"], t["ix"]) for t in res["taps"]] == expect, what
        for t in res["taps"]:
            inside = 0 <= t["iy"] < H and 0 <= t["ix"] < W
            assert t["inPadding"] == (not inside), what
            if inside:
                assert t["x"] == float(x[0, c, t["iy"], t["ix"]]), what
            elif kind == "max":
                assert t["x"] is None
        assert res["count"] == sum(not t["inPadding"] for t in res["taps"])
        if kind == "max":
            a = res["argmax"]
            if res["count"] == 0:  # a dilated window entirely in the padding gives -inf
                assert a is None and res["value"] == -math.inf
            else:
                assert a["iy"] * W + a["ix"] == flat_arg, what
            assert res["divisor"] is None
        else:
            assert res["argmax"] is None
            assert res["sum"] / res["divisor"] == res["value"]
            if cfg["divisor_override"]:
                assert res["divisor"] == cfg["divisor_override"]
            elif not cfg["count_include_pad"]:
                assert res["divisor"] == res["count"]


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_adaptive_pool2d_matches_torch(js, kind):
    rng = np.random.default_rng(5 if kind == "max" else 6)
    cases, refs = [], []
    for _ in range(60):
        H, W = int(rng.integers(1, 14)), int(rng.integers(1, 14))
        oh, ow = int(rng.integers(1, H + 3)), int(rng.integers(1, W + 3))
        x = rand32(rng, 1, 2, H, W)
        if rng.random() < 0.3:  # ties
            x = np.round(x).astype(np.float32)
        if kind == "max":
            o64, idx = F.adaptive_max_pool2d(t64(x), (oh, ow), return_indices=True)
            o32 = F.adaptive_max_pool2d(t32(x), (oh, ow))
        else:
            o64, idx = F.adaptive_avg_pool2d(t64(x), (oh, ow)), None
            o32 = F.adaptive_avg_pool2d(t32(x), (oh, ow))
        for (y, xx) in positions(rng, oh, ow):
            c = int(rng.integers(2))
            cases.append({"input": tensor(x), "cfg": {"kind": kind, "output_size": [oh, ow]},
                          "c": c, "y": y, "x": xx})
            refs.append((H, W, oh, ow, y, xx, float(o64[0, c, y, xx]), float(o32[0, c, y, xx]),
                         None if idx is None else int(idx[0, c, y, xx])))
    results = js("adaptivePool2d", cases)
    assert_ok(results)
    for res, (H, W, oh, ow, y, xx, v64, v32, flat_arg) in zip(results, refs):
        what = f"adaptive {kind} {H}x{W} -> {oh}x{ow} at {y},{xx}"
        close(res["value"], v64, v32, what)
        ys, ye = (y * H) // oh, -((-(y + 1) * H) // oh)
        xs, xe = (xx * W) // ow, -((-(xx + 1) * W) // ow)
        assert res["window"] == {"y0": ys, "x0": xs, "y1": ye - 1, "x1": xe - 1}, what
        assert len(res["taps"]) == (ye - ys) * (xe - xs) == res["count"]
        if kind == "max":
            assert res["argmax"]["iy"] * W + res["argmax"]["ix"] == flat_arg, what
        else:
            assert res["divisor"] == res["count"]


# ----------------------------------------------------------------------------------------------
# activations, erf
# ----------------------------------------------------------------------------------------------

def torch_activation(cfg, v):
    n = cfg["name"]
    return {
        "relu": lambda: F.relu(v), "relu6": lambda: F.relu6(v), "sigmoid": lambda: torch.sigmoid(v),
        "tanh": lambda: torch.tanh(v), "silu": lambda: F.silu(v), "mish": lambda: F.mish(v),
        "leaky_relu": lambda: F.leaky_relu(v, cfg.get("negative_slope", 0.01)),
        "gelu": lambda: F.gelu(v), "gelu_tanh": lambda: F.gelu(v, approximate="tanh"),
        "elu": lambda: F.elu(v, cfg.get("alpha", 1.0)),
        "hardswish": lambda: F.hardswish(v), "hardsigmoid": lambda: F.hardsigmoid(v),
        "softplus": lambda: F.softplus(v, cfg.get("beta", 1.0), cfg.get("threshold", 20.0)),
    }[n]()


ACTIVATIONS = [{"name": "relu"}, {"name": "leaky_relu"},
               {"name": "leaky_relu", "negative_slope": 0.2},
               {"name": "relu6"}, {"name": "sigmoid"}, {"name": "tanh"}, {"name": "gelu"},
               {"name": "gelu_tanh"}, {"name": "silu"}, {"name": "elu"},
               {"name": "elu", "alpha": 0.5}, {"name": "hardswish"}, {"name": "hardsigmoid"},
               {"name": "softplus"}, {"name": "softplus", "beta": 2.0, "threshold": 5.0},
               {"name": "mish"}]


def test_activations_match_torch(js):
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.standard_normal(150) * 3, rng.uniform(-40, 40, 60),
                             [0.0, -0.0, 1e-7, -1e-7, 3.0, -3.0, 6.0, 2.5, 2.50001, 10.0, 20.0,
                              20.5, 19.9, -5.0, -8.0, -12.0]]).astype(np.float32)
    cases = [{"cfg": cfg, "values": values.tolist()} for cfg in ACTIVATIONS]
    results = js("activation", cases)
    assert_ok(results)
    for cfg, got in zip(ACTIVATIONS, results):
        ref64 = torch_activation(cfg, t64(values)).numpy()
        ref32 = torch_activation(cfg, t32(values)).numpy().astype(np.float64)
        got = np.array(got)
        np.testing.assert_allclose(got, ref64, rtol=1e-12, atol=1e-14, err_msg=str(cfg))
        np.testing.assert_allclose(got, ref32, rtol=1e-5, atol=1e-6, err_msg=str(cfg))


def test_activation_objects_and_unknown_name(page):
    page.set_content("<html></html>")
    page.add_script_tag(path=str(EXPLAIN_JS))
    r = page.evaluate("""() => [ConvnetExplain.activation({name: "relu"}, -2),
        ConvnetExplain.activation("leaky_relu", -2),
        (() => { try { ConvnetExplain.activation({name: "swishy"}, 1); return null; }
                 catch (e) { return String(e.message); } })()]""")
    assert r[0]["value"] == 0 and r[0]["formula"] == "relu(x) = max(0, x)" and "-2" in r[0]["text"]
    assert r[1]["value"] == pytest.approx(-0.02)
    assert "swishy" in r[2] and "activation" in r[2]


def test_erf_is_accurate_far_beyond_abramowitz_stegun(js):
    xs = np.concatenate([np.linspace(-7, 7, 2801), [1e-10, -1e-10, 2.9999999, 3.0, 26.0, 30.0]])
    (got,) = js("erf", [{"values": xs.tolist()}])
    got = np.array(got)
    np.testing.assert_allclose(got[:, 0], [math.erf(v) for v in xs], rtol=2e-15, atol=1e-16)
    # erfc stays accurate (relative) in the far tail, where 1 - erf(x) has no digits left
    np.testing.assert_allclose(got[:, 1], [math.erfc(v) for v in xs], rtol=1e-13, atol=0)


# ----------------------------------------------------------------------------------------------
# normalization
# ----------------------------------------------------------------------------------------------

def test_batchnorm_matches_torch_eval(js):
    rng = np.random.default_rng(8)
    cases, refs = [], []
    for n in range(60):
        C = int(rng.integers(1, 6))
        spatial = [(), (int(rng.integers(1, 9)),),
                   (int(rng.integers(1, 7)), int(rng.integers(1, 7)))][n % 3]
        x = rand32(rng, 1, C, *spatial, scale=3.0)
        running = n % 4 != 0 or not spatial  # batch statistics need more than one value
        mean = rand32(rng, C) if running else None
        var = (np.abs(rand32(rng, C)) + 0.1).astype(np.float32) if running else None
        affine = n % 5 != 1
        w, b = (rand32(rng, C), rand32(rng, C)) if affine else (None, None)
        eps = float(rng.choice([1e-5, 1e-3, 0.1]))

        def run(to):
            return F.batch_norm(to(x), to(mean), to(var), to(w), to(b), training=not running,
                                eps=eps)[0]

        o64, o32 = run(t64), run(t32)
        for _ in range(3):
            c = int(rng.integers(C))
            pos = [int(rng.integers(s)) for s in spatial]
            y, xx = (pos if len(pos) == 2 else [0] + pos if pos else [0, 0])
            cases.append({"input": tensor(x), "mean": tensor(mean), "var": tensor(var),
                          "weight": tensor(w), "bias": tensor(b),
                          "cfg": {"eps": eps, "affine": affine, "track_running_stats": running},
                          "c": c, "y": y, "x": xx})
            refs.append((float(o64[(c, *pos)]), float(o32[(c, *pos)]), running, x, c, pos))
    results = js("batchnorm", cases)
    assert_ok(results)
    for res, (v64, v32, running, x, c, pos) in zip(results, refs):
        close(res["value"], v64, v32, f"batchnorm {x.shape} c={c} at {pos}")
        assert res["x"] == float(x[(0, c, *pos)])
        assert res["batchStats"] == (not running)
        if not running:
            assert res["mean"] == pytest.approx(float(x[0, c].astype(np.float64).mean()))
            assert res["var"] == pytest.approx(float(x[0, c].astype(np.float64).var()))
        assert res["normalized"] == pytest.approx((res["x"] - res["mean"]) /
                                                  math.sqrt(res["var"] + res["eps"]))


def test_layernorm_matches_torch(js):
    rng = np.random.default_rng(9)
    cases, refs = [], []
    for n in range(40):
        if n % 2:
            shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 17)))
        else:
            shape = (1, int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        ns = list(shape[-int(rng.integers(1, len(shape))):])
        x = rand32(rng, *shape, scale=2.0)
        affine = n % 3 != 0
        w, b = (rand32(rng, *ns), rand32(rng, *ns)) if affine else (None, None)
        eps = float(rng.choice([1e-5, 1e-6, 0.01]))
        o64 = F.layer_norm(t64(x), ns, t64(w), t64(b), eps)[0].reshape(-1)
        o32 = F.layer_norm(t32(x), ns, t32(w), t32(b), eps)[0].reshape(-1)
        for flat in {0, o64.numel() - 1, int(rng.integers(o64.numel()))}:
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b),
                          "cfg": {"normalized_shape": ns, "eps": eps,
                                  "elementwise_affine": affine}, "flat": flat})
            refs.append((float(o64[flat]), float(o32[flat]), x, ns, flat))
    results = js("layernorm", cases)
    assert_ok(results)
    for res, (v64, v32, x, ns, flat) in zip(results, refs):
        close(res["value"], v64, v32, f"layernorm {x.shape} over {ns} at {flat}")
        count = int(np.prod(ns))
        group = x.reshape(-1, count)[flat // count].astype(np.float64)
        assert res["count"] == count and res["start"] == flat // count * count
        assert res["mean"] == pytest.approx(group.mean(), rel=1e-12, abs=1e-12)
        assert res["var"] == pytest.approx(group.var(), rel=1e-12, abs=1e-12)  # biased


def test_groupnorm_matches_torch(js):
    rng = np.random.default_rng(10)
    cases, refs = [], []
    for n in range(40):
        G = int(rng.integers(1, 5))
        C = G * int(rng.integers(1, 4))
        spatial = [(int(rng.integers(2, 9)),),
                   (int(rng.integers(1, 6)), int(rng.integers(2, 6)))][n % 2]
        x = rand32(rng, 1, C, *spatial, scale=2.0)
        affine = n % 3 != 0
        w, b = (rand32(rng, C), rand32(rng, C)) if affine else (None, None)
        o64 = F.group_norm(t64(x), G, t64(w), t64(b), 1e-5)[0]
        o32 = F.group_norm(t32(x), G, t32(w), t32(b), 1e-5)[0]
        for _ in range(3):
            c = int(rng.integers(C))
            pos = [int(rng.integers(s)) for s in spatial]
            y, xx = pos if len(pos) == 2 else [0] + pos
            cases.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b),
                          "cfg": {"num_groups": G, "num_channels": C, "eps": 1e-5,
                                  "affine": affine}, "c": c, "y": y, "x": xx})
            refs.append((float(o64[(c, *pos)]), float(o32[(c, *pos)]), C, G, c))
    results = js("groupnorm", cases)
    assert_ok(results)
    for res, (v64, v32, C, G, c) in zip(results, refs):
        close(res["value"], v64, v32, f"groupnorm C={C} G={G} c={c}")
        per = C // G
        first = c // per * per
        assert res["group"] == c // per and res["channels"] == [first, first + per - 1]


# ----------------------------------------------------------------------------------------------
# softmax, receptive field, CNV1
# ----------------------------------------------------------------------------------------------

def test_softmax_matches_torch(js):
    rng = np.random.default_rng(11)
    logits = [(rng.standard_normal(int(rng.integers(1, 120))) * s).astype(np.float32)
              for s in (1, 5, 40, 200) for _ in range(5)]
    results = js("softmax", [{"logits": z.tolist()} for z in logits])
    assert_ok(results)
    for res, z in zip(results, logits):
        probs = torch.softmax(t64(z), 0).numpy()
        np.testing.assert_allclose(res["probs"], probs, rtol=1e-12, atol=1e-300)
        assert res["max"] == float(z.max())
        np.testing.assert_allclose(res["exps"], np.exp(z.astype(np.float64) - z.max()),
                                   rtol=1e-14)
        assert res["sum"] == pytest.approx(sum(res["exps"]), rel=1e-14)
        assert max(res["exps"]) == 1.0  # overflow-safe: the largest logit gives e^0


def test_receptive_box_follows_the_field_convention_and_matches_one_conv_window(js):
    rf = {"size": [5, 3], "jump": [2, 4], "start": [0.5, -1.0]}
    (box,) = js("receptiveBox", [{"rf": rf, "i": 3, "j": 2}])
    assert box == {"y0": 4.5, "x0": 6.0, "y1": 8.5, "x1": 8.0}
    # for a single conv layer the field of unit (i, j) is exactly its kernel window
    rng = np.random.default_rng(12)
    cases, convs = [], []
    for _ in range(20):
        x, w, b, cfg = conv_case(rng)
        (kh, kw), (sh, sw) = cfg["kernel_size"], cfg["stride"]
        (ph, pw), (dh, dw) = cfg["padding"], cfg["dilation"]
        rf = {"size": [(kh - 1) * dh + 1, (kw - 1) * dw + 1], "jump": [sh, sw],
              "start": [(kh - 1) * dh / 2 - ph, (kw - 1) * dw / 2 - pw]}
        oh, ow = torch_conv2d(x, w, b, cfg, t64).shape[1:]
        i, j = int(rng.integers(oh)), int(rng.integers(ow))
        cases.append({"rf": rf, "i": i, "j": j})
        convs.append({"input": tensor(x), "weight": tensor(w), "bias": tensor(b), "cfg": cfg,
                      "c": 0, "y": i, "x": j})
    boxes, windows = js("receptiveBox", cases), js("conv2d", convs)
    assert_ok(windows)
    for bx, res in zip(boxes, windows):
        assert bx == res["window"]


def cnv1(a, align=True):
    """A CNV1 blob as the server writes it (``align=False``: header not padded to 4 bytes)."""
    header = json.dumps({"shape": list(a.shape), "dtype": "float32"}).encode()
    if align:
        header += b" " * (-(8 + len(header)) % 4)
    return b"CNV1" + struct.pack("<I", len(header)) + header + a.astype("<f4").tobytes()


PARSE = """([blobs]) => blobs.map(([b64, pad]) => {
  const raw = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  let arg = raw.buffer;
  if (pad) {  // a view that does not start at byte 0 of its buffer
    const big = new Uint8Array(raw.length + pad);
    big.set(raw, pad);
    arg = big.subarray(pad);
  }
  try {
    const t = ConvnetExplain.parseCNV1(arg);
    return {shape: t.shape, data: Array.from(t.data), typed: t.data instanceof Float32Array};
  } catch (e) { return {error: String(e.message)}; }
})"""


def test_parse_cnv1_reads_a_blob_built_in_python(page):
    page.set_content("<html></html>")
    page.add_script_tag(path=str(EXPLAIN_JS))
    rng = np.random.default_rng(13)
    arrays = [rand32(rng, 1, 3, 5, 7), rand32(rng, 1, 10), rand32(rng, 2, 1, 1, 1),
              np.array([np.inf, -np.inf, 1e-40, -0.0], np.float32).reshape(1, 4)]
    blobs = [[base64.b64encode(cnv1(a)).decode(), 0] for a in arrays]
    blobs += [[base64.b64encode(cnv1(arrays[0], align=False)).decode(), 0],
              [base64.b64encode(cnv1(arrays[1])).decode(), 3],
              [base64.b64encode(b"PNG0" + cnv1(arrays[1])[4:]).decode(), 0],
              [base64.b64encode(cnv1(arrays[0])[:-4]).decode(), 0]]
    res = page.evaluate(PARSE, [blobs])
    for r, a in zip(res[:4] + [res[4], res[5]], arrays + [arrays[0], arrays[1]]):
        assert "error" not in r, r
        assert r["shape"] == list(a.shape) and r["typed"]
        np.testing.assert_array_equal(np.array(r["data"], np.float64), a.ravel().astype(np.float64))
    assert "not a CNV1 blob" in res[6]["error"]
    assert "needs 420 data bytes" in res[7]["error"]


# ----------------------------------------------------------------------------------------------
# explainAt: one entry point from a meta.layers entry, its input and its parameters
# ----------------------------------------------------------------------------------------------

EXPLAIN_AT = """([cases]) => cases.map((c) => {
  const T = (o) => o && {shape: o.shape, data: Float32Array.from(o.data)};
  const params = {};
  for (const k of Object.keys(c.params)) params[k] = T(c.params[k]);
  try {
    return ConvnetExplain.explainAt(c.layer, T(c.input), params, c.pos);
  } catch (e) { return {error: String(e.message)}; }
})"""


def plain(a):
    return {"shape": list(a.shape), "data": a.ravel().tolist()}


def test_explain_at_dispatches_every_kind_like_the_model(page):
    """Layers as GET /api/meta describes them (explain kind, config, output_shape without the
    batch dim), positions given as {c, y, x}, {y, x} (2-d outputs) or {flat}."""
    page.set_content("<html></html>")
    page.add_script_tag(path=str(EXPLAIN_JS))
    rng = np.random.default_rng(14)
    x4, x3, tok = rand32(rng, 1, 4, 7, 6), rand32(rng, 1, 4, 11), rand32(rng, 1, 5, 8)
    w4, b4 = rand32(rng, 6, 2, 3, 3), rand32(rng, 6)
    w3 = rand32(rng, 3, 4, 3)
    wl, bl = rand32(rng, 3, 8), rand32(rng, 3)
    rm, rv = rand32(rng, 4), np.abs(rand32(rng, 4)) + 0.5
    g, b = rand32(rng, 4), rand32(rng, 4)
    conv = {"kernel_size": [3, 3], "stride": [2, 1], "padding": [1, 2], "dilation": [1, 2],
            "groups": 2, "padding_mode": "zeros", "bias": True, "transposed": False}
    layers = [  # (meta layer, input, params, torch output without batch dim)
        ({"explain": "conv", "config": conv}, x4, {"weight": w4, "bias": b4},
         F.conv2d(t64(x4), t64(w4), t64(b4), (2, 1), (1, 2), (1, 2), 2)[0]),
        ({"explain": "conv", "config": {"kernel_size": [3], "stride": [2], "padding": [1],
                                        "dilation": [1], "groups": 1, "padding_mode": "circular"}},
         x3, {"weight": w3},
         F.conv1d(F.pad(t64(x3), (1, 1), mode="circular"), t64(w3), None, 2)[0]),
        ({"explain": "linear", "config": {"in_features": 8, "out_features": 3, "bias": True}},
         tok, {"weight": wl, "bias": bl}, F.linear(t64(tok), t64(wl), t64(bl))[0]),
        ({"explain": "pool", "config": {"kind": "max", "kernel_size": [3], "stride": [2],
                                        "padding": [1], "dilation": [1], "ceil_mode": True}},
         x3, {}, F.max_pool1d(t64(x3), 3, 2, 1, ceil_mode=True)[0]),
        ({"explain": "pool", "config": {"kind": "avg", "kernel_size": [2, 2], "stride": [2, 2],
                                        "padding": [1, 1], "dilation": [1, 1], "ceil_mode": True,
                                        "count_include_pad": False, "divisor_override": None}},
         x4, {}, F.avg_pool2d(t64(x4), 2, 2, 1, ceil_mode=True, count_include_pad=False)[0]),
        ({"explain": "pool", "config": {"kind": "avg", "kernel_size": [3, 3], "stride": None,
                                        "padding": [1, 1], "count_include_pad": None}},
         x4, {}, F.avg_pool2d(t64(x4), 3, None, 1)[0]),  # torch's defaults for the nulls
        ({"explain": "adaptive_pool", "config": {"kind": "avg", "output_size": [3, 4]}}, x4, {},
         F.adaptive_avg_pool2d(t64(x4), (3, 4))[0]),
        ({"explain": "adaptive_pool", "config": {"kind": "max", "output_size": [4]}}, x3, {},
         F.adaptive_max_pool1d(t64(x3), 4)[0]),
        ({"explain": "adaptive_pool", "config": {"kind": "max", "output_size": [1, 1],
                                                 "flat": True}}, x4, {},  # global, flattened
         F.adaptive_max_pool2d(t64(x4), 1).flatten(1)[0]),
        ({"explain": "activation", "config": {"name": "gelu"}}, x4, {}, F.gelu(t64(x4))[0]),
        ({"explain": "activation", "config": {"name": "leaky_relu", "negative_slope": 0.1}}, tok,
         {}, F.leaky_relu(t64(tok), 0.1)[0]),
        ({"explain": "identity", "config": {}}, x3, {}, t64(x3)[0]),
        ({"explain": "batchnorm", "config": {"eps": 1e-5, "affine": True,
                                             "track_running_stats": True}}, x4,
         {"running_mean": rm, "running_var": rv, "weight": g, "bias": b},
         F.batch_norm(t64(x4), t64(rm), t64(rv), t64(g), t64(b), False, eps=1e-5)[0]),
        ({"explain": "batchnorm", "config": {"eps": 1e-3, "affine": False,
                                             "track_running_stats": True}}, x3,
         {"running_mean": rm, "running_var": rv},
         F.batch_norm(t64(x3), t64(rm), t64(rv), None, None, False, eps=1e-3)[0]),
        ({"explain": "groupnorm", "config": {"num_groups": 2, "num_channels": 4, "eps": 1e-5,
                                             "affine": True}}, x4, {"weight": g, "bias": b},
         F.group_norm(t64(x4), 2, t64(g), t64(b))[0]),
        ({"explain": "layernorm", "config": {"normalized_shape": [8], "eps": 1e-6,
                                             "elementwise_affine": False}}, tok, {},
         F.layer_norm(t64(tok), [8], None, None, 1e-6)[0]),
    ]
    cases, refs = [], []
    for layer, x, params, out in layers:
        layer = dict(layer, name="l", output_shape=list(out.shape))
        for n in range(4):
            idx = tuple(int(rng.integers(s)) for s in out.shape)
            if n == 0:
                pos = {"flat": int(np.ravel_multi_index(idx, out.shape))}
            else:
                pos = dict(zip({3: "cyx", 2: "yx", 1: "x"}[out.dim()], idx))
            cases.append({"layer": layer, "input": plain(x), "params":
                          {k: plain(v) for k, v in params.items()}, "pos": pos})
            refs.append((layer, idx, float(out[idx])))
    cases.append({"layer": {"name": "up", "explain": None, "config": None, "output_shape": [2]},
                  "input": plain(x3), "params": {}, "pos": {"x": 0}})
    results = page.evaluate(EXPLAIN_AT, [cases])
    for res, (layer, idx, ref) in zip(results, refs):
        assert "error" not in res, (layer, res)
        assert res["index"] == list(idx), layer
        assert res["value"] == pytest.approx(ref, rel=1e-9, abs=1e-12), (layer, idx)
        assert res["result"]["value"] == res["value"]
    assert "nothing to explain" in results[-1]["error"]
