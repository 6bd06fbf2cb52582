"""`convnet explore` in a real browser (Debian's Chromium driven by Playwright).

Four tiny runs trained by the tests (LeNet-5, ResNet-20, a U-Net segmenter, ViT-Tiny), served by
`convnet explore RUN` in a subprocess, and a model class defined in this file served with
``convnet.explore(model, dataset)``. Every number the page explains is checked three ways: the
page's own product sum (``#explain-sum``), the model's value the page shows
(``#explain-activation``) and the value this file computes with a forward hook on the same
module, input, channel and pixel, so the test cannot pass when the page and the server agree
on a wrong answer.

Screenshots land in the test's tmp folder, and in docs/images/explorer_<name>.png too with
``CONVNET_UPDATE_SCREENSHOTS=1``.
"""
from __future__ import annotations

import functools
import io
import json
import re
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import convnet as cn
import convnet.nn as nn
import convnet.nn.functional as F

from .conftest import shot_path, wait_ready

DIGITS = Path(cn.__file__).resolve().parent / "data" / "bundled" / "mnist_digits.npz"
MEAN, STD = 0.1307, 0.3081


# --------------------------------------------------------------------------------------------
# A model class of the user's own, with what the zoo runs lack: reflect padding, dilation,
# groups, a functional ReLU (no module), GELU
# --------------------------------------------------------------------------------------------
class TinyDilatedNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, padding_mode="reflect")   # 8 x 28 x 28
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.GELU()
        self.block = nn.Sequential(                                          # 8 x 28 x 28
            nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2), nn.ReLU())
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)                # 16 x 14 x 14
        self.pool = nn.AvgPool2d(2)                                         # 16 x 7 x 7
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, classes))

    def forward(self, x):
        x = self.act(self.bn(self.stem(x)))
        x = self.block(x)
        x = self.pool(F.relu(self.down(x)))
        return self.head(x)


class Digits:
    """The bundled digits, normalised: ``ds[i]`` is ``((1, 28, 28) float32, label)``. With
    ``touch_edge`` the first digit is moved up and left until its ink touches the top row and
    the left column, so that padding modes change what the border pixels compute."""

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str, n: int, touch_edge: bool = False):
        with np.load(DIGITS) as z:
            images, labels = z[f"{split}_images"][:n].copy(), z[f"{split}_labels"][:n]
        if touch_edge:
            rows, cols = np.nonzero(images[0] > 64)
            top, left = rows.min(), cols.min()
            moved = np.zeros_like(images[0])
            moved[:28 - top, :28 - left] = images[0][top:, left:]
            images[0] = moved
        self.x = ((images[:, None].astype(np.float32) / 255 - MEAN) / STD).astype(np.float32)
        self.y = labels.astype(np.int64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


@pytest.fixture(scope="module")
def custom():
    """The user-defined model trained for a few steps, served with ``convnet.explore``."""
    cn.manual_seed(0)
    model = TinyDilatedNet()
    train = Digits("train", 512)
    opt = cn.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for step in range(16):
        idx = np.arange(step * 32, step * 32 + 32) % len(train)
        loss = F.cross_entropy(model(cn.tensor(train.x[idx])), cn.tensor(train.y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = Digits("test", 64, touch_edge=True)
    ex = cn.explore(model, test, port=0, open_browser=False)
    try:
        yield Target("custom", ex.url, model, lambda i: test[i][0], test.classes)
    finally:
        ex.stop()


# --------------------------------------------------------------------------------------------
# What a test looks at: a served model and a Python copy of it
# --------------------------------------------------------------------------------------------
class Target:
    def __init__(self, name, url, model, test_input, class_names, cfg=None):
        self.name, self.url, self.model = name, url, model
        self.test_input = test_input        # i -> the model's input (C, H, W) for `test-i`
        self.class_names, self.cfg = class_names, cfg
        self.run_dir = self.dataset = None  # set for the run folders

    def api(self, path: str):
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=30) as r:
            body = r.read()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    @functools.cached_property
    def meta(self):
        return self.api("/api/meta")

    def layer(self, name: str) -> dict:
        for layer in self.meta["layers"]:
            if layer["name"] == name:
                return layer
        raise KeyError(f"{self.name}: no layer {name!r} in /api/meta")

    def model_input(self, input_id: str) -> np.ndarray:
        """The exact float input of ``input_id``: from the dataset for ``test-N``, else the
        server's forward blob (uploads and drawings are checked separately)."""
        m = re.fullmatch(r"test-(\d+)", input_id)
        if m:
            return np.asarray(self.test_input(int(m.group(1))), dtype=np.float32)
        fwd = self.api(f"/api/forward/{input_id}")
        first = next(lay for lay in fwd["layers"] if lay["input_blob"])
        return read_cnv1(self.api(f"/api/blob/{first['input_blob']}.bin"))[0]


@functools.lru_cache(maxsize=None)
def _load_run(run_dir: str):
    from convnet.cli._setup import make_dataset, make_transform
    from convnet.cli.evaluate import load_run

    cfg, info, model = load_run(Path(run_dir))
    ds = make_dataset(cfg, info, train=False, transform=make_transform(cfg, info, train=False))
    return cfg, model, ds


@pytest.fixture(params=["lenet5", "resnet20", "unet", "vit_tiny", "custom"])
def any_target(request):
    return _target(request, request.param)


def _target(request, name):
    if name == "custom":
        return request.getfixturevalue("custom")
    run = request.getfixturevalue("explore_runs")(name)
    server = request.getfixturevalue("explore_servers")(name)
    cfg, model, ds = _load_run(str(run))
    t = Target(name, server.url, model, lambda i: np.asarray(ds[i][0].numpy()),
               cfg["class_names"], cfg)
    t.run_dir, t.dataset = run, ds
    return t


@pytest.fixture
def lenet5(request):
    return _target(request, "lenet5")


@pytest.fixture
def resnet20(request):
    return _target(request, "resnet20")


def read_cnv1(data: bytes) -> np.ndarray:
    assert data[:4] == b"CNV1", data[:16]
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + n].decode())
    start = 8 + n
    assert start % 4 == 0, f"CNV1 data starts at {start}, not a multiple of 4"
    return np.frombuffer(data[start:], dtype="<f4").reshape(header["shape"])


def split_call(label: str) -> tuple[str, int]:
    """'layer1.0.relu (call 2)' -> ('layer1.0.relu', 2)."""
    m = re.fullmatch(r"(.*?)(?: \(call (\d+)\))?", label)
    return m.group(1), int(m.group(2) or 1)


def python_output(model, x: np.ndarray, layer_label: str) -> np.ndarray:
    """The output of module ``layer_label`` (its n-th call) for input ``x`` (C, H, W), by a
    forward hook: the value the page must explain."""
    name, call = split_call(layer_label)
    module = dict(model.named_modules())[name]
    seen = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o.numpy().copy()))
    try:
        with cn.no_grad():
            model(cn.tensor(x[None]))
    finally:
        handle.remove()
    assert len(seen) >= call, f"{layer_label}: called {len(seen)} times"
    return seen[call - 1][0]


# --------------------------------------------------------------------------------------------
# Page helpers
# --------------------------------------------------------------------------------------------
def open_page(page, target: Target):
    """Load the explorer of ``target`` and wait for ``body[data-ready="1"]``."""
    wait_ready(page, target.url)
    wait_idle(page)
    return page


def wait_idle(page):
    """Ready, and no input still loading (the page sets ``body[data-busy]`` meanwhile)."""
    page.wait_for_selector('body[data-ready="1"]:not([data-busy])', timeout=30_000)


def assert_clean(page):
    assert page.console_errors == [], page.console_errors
    assert page.external_requests == [], page.external_requests
    banner = page.locator("#error-banner")
    if banner.count():
        assert not banner.is_visible() or not banner.inner_text().strip(), banner.inner_text()


def current_input(page) -> str:
    return page.get_attribute("#current-input", "data-input-id")


def click_pixel(page, layer_id: int, channel: int, y: int, x: int, shape) -> float:
    """Click the centre of cell (y, x) of a channel canvas, whatever its displayed size;
    returns the displayed size of one cell in CSS pixels."""
    sel = f'canvas.chan[data-layer-id="{layer_id}"][data-channel="{channel}"]'
    canvas = page.locator(sel)
    if canvas.count() == 0:  # layers with many channels draw the first ones until "show all"
        more = page.locator(f'.layer[data-layer-id="{layer_id}"] button.more')
        if more.count():
            more.first.click()
            page.wait_for_selector(sel, state="attached", timeout=10_000)
    canvas.scroll_into_view_if_needed()
    box = canvas.evaluate("""el => { const r = el.getBoundingClientRect();
        return {left: r.left + el.clientLeft, top: r.top + el.clientTop,
                width: el.clientWidth, height: el.clientHeight}; }""")
    h, w = shape[-2], shape[-1]
    page.mouse.click(box["left"] + (x + 0.5) * box["width"] / w,
                     box["top"] + (y + 0.5) * box["height"] / h)
    return min(box["width"] / w, box["height"] / h)


def snap(page, selector: str | None, name: str, tmp_path: Path, max_kb: int = 300,
         height: int = 1000, doc: bool = True) -> np.ndarray:
    """Screenshot one element (or, with ``selector=None``, the top ``height`` px of the page),
    check it is not blank, save it as a 256-colour PNG (see shot_path; ``doc=False``: the tmp
    folder only); returns its pixels."""
    from PIL import Image

    if selector is None:
        page.evaluate("window.scrollTo(0, 0)")
        width = page.viewport_size["width"]
        png = page.screenshot(clip={"x": 0, "y": 0, "width": width, "height": height},
                              animations="disabled")
    else:
        loc = page.locator(selector).first
        loc.scroll_into_view_if_needed()
        png = loc.screenshot(animations="disabled")
    im = Image.open(io.BytesIO(png)).convert("RGB")
    img = np.asarray(im).astype(np.float32)
    assert img.std() > 8 and len(np.unique(img.reshape(-1, 3), axis=0)) > 16, \
        f"screenshot {name} ({selector}) is blank"
    buf = io.BytesIO()
    im.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    assert len(data) < max_kb * 1024, f"screenshot {name} is {len(data) // 1024} KB"
    for p in shot_path(tmp_path, name)[:None if doc else 1]:
        p.write_bytes(data)
    return img


def png_bytes(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_page_shows_every_layer(page, any_target, tmp_path):
    t = any_target
    open_page(page, t)
    assert_clean(page)
    tops = [n for n, _ in t.model.named_children()]
    assert t.meta["top_layers"] == tops
    for name in tops:
        section = page.locator(f'#layers .section[data-top="{name}"]')
        assert section.count() == 1, f"{t.name}: no section for top-level layer {name}"
        assert section.is_visible() and name in section.inner_text(), \
            f"{t.name}: section {name} does not show its name"
    shown = page.eval_on_selector_all(".layer[data-layer-name]",
                                      "els => els.map(e => e.dataset.layerName)")
    shown_modules = {split_call(s)[0] for s in shown}
    missing = [n for n, _ in t.model.named_modules() if n and n not in shown_modules]
    assert not missing, f"{t.name}: layers not on the page: {missing}"
    # each layer element shows its full name and kind
    first = page.locator(".layer[data-layer-name]").first
    assert first.get_attribute("data-layer-name") in first.inner_text()
    assert first.get_attribute("data-kind") in first.inner_text()
    if t.name == "lenet5":
        snap(page, None, "overview", tmp_path)
    assert_clean(page)



def layout_of(target: Target, input_id: str, layer_id: int) -> dict:
    fwd = target.api(f"/api/forward/{input_id}")
    return next(lay["layout"] for lay in fwd["layers"] if lay["id"] == layer_id)


def value_at(out: np.ndarray, channel: int, y: int, x: int, layout: dict) -> float:
    """The model's value under grid cell (y, x) of tile ``channel`` (see the layouts in
    /api/forward: channels (C,H,W), tokens (L,D), vector (F,) as one tile ``tile_w`` wide)."""
    if layout["mode"] == "channels":
        return float(out[channel, y, x])
    if layout["mode"] == "tokens":
        return float(out.reshape(out.shape[-2], out.shape[-1])[y, x])
    return float(out.reshape(-1)[y * layout["tile_w"] + x])


EXPLAINED = """() => { const e = document.querySelector('#explain');
    return e ? [e.dataset.layerId, e.dataset.channel, e.dataset.y, e.dataset.x].join(',') : ''; }"""


def explain_any(page, target: Target, layer_label: str, where: str = "max",
                input_id: str | None = None):
    """Click one cell of any layer (``where``: 'max' = its strongest value, 'corner' = the
    top-left pixel of its strongest channel, 'edge' = that channel's strongest pixel of the top
    row; padding matters at the last two) and check the page's
    ``#explain-sum`` and ``#explain-activation`` against the model's value there, computed
    here with a hook. Returns (sum shown, value computed here)."""
    input_id = input_id or current_input(page)
    layer = target.layer(layer_label)
    layout = layout_of(target, input_id, layer["id"])
    out = python_output(target.model, target.model_input(input_id), layer_label)
    if layout["mode"] == "channels":
        flat = np.abs(out).reshape(out.shape[0], -1)
        c = int(flat.max(1).argmax())
        y, x = np.unravel_index(int(np.abs(out[c]).argmax()), out[c].shape)
    else:
        c, k = 0, int(np.abs(out).reshape(-1).argmax())
        y, x = divmod(k, layout["tile_w"])
    if where == "corner":
        y, x = 0, 0
    elif where == "edge":  # the strongest pixel of the top row: its window hangs over the edge
        y, x = 0, int(np.abs(out[c, 0]).argmax())
    y, x = int(y), int(x)
    cell = click_pixel(page, layer["id"], c, y, x, (layout["tile_h"], layout["tile_w"]))
    # the click handler sets #explain's data-* at once (the numbers follow asynchronously)
    page.wait_for_function(f"() => ({EXPLAINED})().startsWith('{layer['id']},{c},')",
                           timeout=10_000)
    gy, gx = (int(v) for v in page.evaluate(EXPLAINED).split(",")[2:])
    if cell >= 2:  # big enough to hit exactly
        assert (gy, gx) == (y, x), f"clicked cell ({y}, {x}) of {layer_label}, the page explains ({gy}, {gx})"
    else:  # a cell under 2 CSS px (768 features in a column): check the cell the page chose
        assert abs(gy - y) <= 2 / cell and abs(gx - x) <= 2 / cell, ((gy, gx), (y, x), cell)
        y, x = gy, gx
    expected = value_at(out, c, y, x, layout)
    tol = 1e-4 * max(abs(expected), 1e-2)
    try:  # the panel fills once the kernel and the blobs have arrived
        page.wait_for_function(
            """([e, tol]) => {
                const v = s => { const el = document.querySelector(s);
                    return el && el.dataset.value ? +el.dataset.value : NaN; };
                return Math.abs(v('#explain-activation') - e) <= tol
                    && Math.abs(v('#explain-sum') - e) <= tol;
            }""", arg=[expected, tol], timeout=10_000)
    except Exception:
        pass  # the asserts below say which side is off
    got_sum = float(page.get_attribute("#explain-sum", "data-value") or "nan")
    got_act = float(page.get_attribute("#explain-activation", "data-value") or "nan")
    where = (f"{target.name} {layer['name']} ({layer['kind']}) channel {c} cell ({y}, {x}) "
             f"of {input_id}")
    assert got_act == pytest.approx(expected, rel=1e-4, abs=1e-6), f"{where}: activation shown"
    assert got_sum == pytest.approx(got_act, rel=1e-4, abs=1e-6), f"{where}: sum vs activation"
    assert got_sum == pytest.approx(expected, rel=1e-4, abs=1e-6), f"{where}: sum vs the model"
    return got_sum, expected


# (layer, where, screenshot name or None) per target: stride 2, padding at the corner, dilation,
# reflect padding, groups, a patch embedding, a second conv whose field on the input is larger
CONV_CASES = {
    "lenet5": [("features.0", "max", "conv"), ("features.0", "corner", None),
               ("features.3", "max", "conv_second_layer")],
    "resnet20": [("layer2.0.conv1", "corner", "conv_stride_padding"),
                 ("layer2.0.conv1", "max", None), ("conv1", "corner", None)],
    "unet": [("inc.block.0", "max", None), ("down1.1.block.0", "corner", None)],
    "vit_tiny": [("conv_proj", "max", None)],
    "custom": [("stem", "edge", "conv_reflect"), ("stem", "corner", None),
               ("block.0", "edge", None),
               ("block.0", "max", "conv_dilated"), ("down", "corner", None)],
}
OTHER_CASES = {  # pooling, activation, normalization, linear layers
    "lenet5": [("features.1", "max", None), ("features.2", "max", "pooling"),
               ("classifier.5", "max", None)],
    "resnet20": [("bn1", "max", None), ("relu", "corner", None), ("avgpool", "max", None)],
    "unet": [("down1.0", "max", "pooling_max"), ("inc.block.1", "corner", None)],
    "vit_tiny": [("encoder.layers.encoder_layer_0.ln_1", "max", None),
                 ("encoder.layers.encoder_layer_0.mlp.1", "max", None)],
    "custom": [("bn", "corner", None), ("act", "max", None), ("pool", "max", None),
               ("head.1", "max", None)],
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_every_kind_of_value_is_explained(page, request, name, tmp_path):
    """Convs (stride, padding, dilation, groups, reflect), then pooling, activations,
    normalizations and linear layers: the page's sum equals the model's value."""
    t = _target(request, name)
    open_page(page, t)
    for layer, where, shot in CONV_CASES[name] + OTHER_CASES[name]:
        explain_any(page, t, layer, where)
        if shot:
            snap(page, "#explain", shot, tmp_path)
    assert_clean(page)


def test_predictions_are_the_models_softmax(page, lenet5):
    open_page(page, lenet5)
    x = lenet5.model_input(current_input(page))
    with cn.no_grad():
        logits = lenet5.model(cn.tensor(x[None])).numpy()[0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    bars = page.eval_on_selector_all("#predictions .bar[data-class][data-prob]",
                                     "els => els.map(e => [+e.dataset.class, +e.dataset.prob,"
                                     " e.innerText])")
    assert bars, "no #predictions .bar"
    for k, p, text in bars:
        assert p == pytest.approx(probs[k], abs=1e-4), f"class {k}"
        assert lenet5.class_names[k] in text
    assert int(np.argmax(probs)) in [k for k, *_ in bars]
    assert (page.locator("#softmax").text_content() or "").strip(), "#softmax is empty"
    assert_clean(page)


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "unet", "custom"])
def test_gradcam_renders(page, request, name, tmp_path):
    t = _target(request, name)
    open_page(page, t)
    images = []
    options = page.eval_on_selector_all("#gradcam-layer option", "els => els.map(e => e.value)")
    classes = page.eval_on_selector_all("#gradcam-class option", "els => els.map(e => e.value)")
    assert options and classes, "#gradcam-layer / #gradcam-class have no options"
    top = t.api(f"/api/forward/{current_input(page)}")["prediction"].get("top")
    cls = str(top[0]["index"]) if top else classes[-1]  # the predicted class (segment: the last)
    assert cls in classes, (cls, classes)
    for layer_value in dict.fromkeys([options[0], options[-1]]):
        page.select_option("#gradcam-class", cls)
        page.select_option("#gradcam-layer", layer_value)
        # the page marks the image with the layer and class it shows once it has loaded
        page.wait_for_function(
            """([l, k]) => { const i = document.querySelector('#gradcam-img');
                return i && i.complete && i.naturalWidth > 0 && !i.dataset.loading
                    && i.dataset.layerId === l && i.dataset.classIndex === k; }""",
            arg=[layer_value, cls], timeout=15_000)
        images.append(snap(page, "#gradcam-img", f"gradcam_{name}", tmp_path, doc=False))
    if name == "lenet5":  # the last conv: where the evidence for the class is
        snap(page, "#gradcam-card", "gradcam", tmp_path)
    if len(images) == 2 and images[0].shape == images[1].shape:
        assert np.abs(images[0] - images[1]).max() > 0, "Grad-CAM is the same for two layers"
    assert_clean(page)


def digit_png(mode: str) -> bytes:
    """A hand-made '7': black ink on white (RGB) or on a transparent background (RGBA)."""
    from PIL import Image, ImageDraw

    if mode == "RGB":
        im = Image.new("RGB", (120, 90), (255, 255, 255))
        ink = (0, 0, 0)
    else:
        im = Image.new("RGBA", (90, 120), (0, 0, 0, 0))
        ink = (0, 0, 0, 255)
    d = ImageDraw.Draw(im)
    w, h = im.size
    d.line([(w * 0.25, h * 0.2), (w * 0.75, h * 0.2), (w * 0.45, h * 0.85)], fill=ink, width=9)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def wait_new_input(page, before: str, prefix: str):
    page.wait_for_function(
        """([b, p]) => { const e = document.querySelector('#current-input');
                         const id = e && e.dataset.inputId;
                         return id && id !== b && id.startsWith(p); }""", arg=[before, prefix],
        timeout=15_000)
    wait_idle(page)
    return current_input(page)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_upload_png(page, lenet5, mode, tmp_path):
    from convnet.cli.predict import prepare

    open_page(page, lenet5)
    before = current_input(page)
    data = digit_png(mode)
    page.set_input_files("#upload-input", files=[{"name": f"seven_{mode}.png",
                                                  "mimeType": "image/png", "buffer": data}])
    new = wait_new_input(page, before, "upload-")
    # the server frames the upload as `convnet predict` does
    path = tmp_path / "seven.png"
    path.write_bytes(data)
    expected = prepare(path, lenet5.cfg, 28, 1, "auto")
    got = lenet5.model_input(new)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got.max() > 1.0, "the upload's ink did not reach the model input"
    explain_any(page, lenet5, "features.0", "max", input_id=new)
    assert_clean(page)


def test_upload_that_is_not_an_image_is_refused(page, lenet5):
    open_page(page, lenet5)
    before = current_input(page)
    page.set_input_files("#upload-input", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                  "buffer": b"not a picture\n"}])
    page.wait_for_function(
        "() => document.body.innerText.toLowerCase().includes('not an image')", timeout=10_000)
    banner = page.locator("#error-banner")
    assert banner.is_visible() and "notes.txt" in banner.inner_text(), banner.inner_text()
    assert current_input(page) == before
    # the page's own request is answered {error, refused}: no failed request in the console
    assert page.console_errors == []
    assert page.external_requests == []


def test_draw_a_digit(page, lenet5, tmp_path):
    open_page(page, lenet5)
    before = current_input(page)
    canvas = page.locator("#draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # a '1': one vertical stroke down the middle, drawn with small mouse moves
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x + k * 0.3, box["y"] + box["height"] * (0.15 + 0.035 * k))
    page.mouse.up()
    page.click("#draw-use")
    new = wait_new_input(page, before, "draw-")
    snap(page, "#draw-box", "draw", tmp_path)
    got = lenet5.model_input(new)[0]
    # the stroke reaches the model: bright pixels in the middle columns, dark at the sides
    assert got[:, 11:17].max() > 1.5 and got[:, :5].max() < 0.5 and got[:, -5:].max() < 0.5
    assert page.locator("#predictions .bar").count() >= 1
    explain_any(page, lenet5, "features.0", "max", input_id=new)
    assert_clean(page)


def test_confusion_cell_lists_its_images_and_curves_are_drawn(page, lenet5, tmp_path):
    open_page(page, lenet5)
    page.wait_for_selector("#confusion td.cell[data-true][data-pred]", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#confusion td.cell[data-true][data-pred]').length"
        " === 100", timeout=30_000)
    cells = page.eval_on_selector_all(
        "#confusion td.cell[data-true][data-pred]",
        "els => els.map(e => [+e.dataset.true, +e.dataset.pred, parseInt(e.innerText) || 0])")
    off = [c for c in cells if c[0] != c[1] and c[2] > 0]
    assert off, "a 2-epoch LeNet-5 on 128 digits makes mistakes: no off-diagonal cell"
    t, p, n = max(off, key=lambda c: c[2])
    page.click(f'#confusion td.cell[data-true="{t}"][data-pred="{p}"]')
    page.wait_for_selector("#confusion-examples .example[data-input-id]", timeout=15_000)
    ids = page.eval_on_selector_all("#confusion-examples .example[data-input-id]",
                                    "els => els.map(e => e.dataset.inputId)")
    assert 0 < len(ids) <= n
    for input_id in ids[:6]:
        i = int(re.fullmatch(r"test-(\d+)", input_id).group(1))
        y = lenet5.dataset[i][1]
        with cn.no_grad():
            pred = int(lenet5.model(cn.tensor(lenet5.test_input(i)[None])).numpy().argmax())
        assert (y, pred) == (t, p), f"{input_id} is listed under true {t} / predicted {p}"
    snap(page, "#confusion-card", "confusion", tmp_path)
    paths = page.eval_on_selector_all("#curves svg path", "els => els.map(e => e.getAttribute('d'))")
    assert paths and all(d and len(re.findall(r"[-\d.]+", d)) >= 4 for d in paths), paths
    snap(page, "#curves-card", "curves", tmp_path)
    assert_clean(page)


def test_shift_shows_invariance(page, lenet5, tmp_path):
    open_page(page, lenet5)
    base = current_input(page)
    hint = page.locator("#invariance").inner_text()
    page.click("#shift-right")
    new = wait_new_input(page, base, "shift-")
    assert new == f"shift-{base}-1-0"
    a, b = lenet5.model_input(base)[0], lenet5.model_input(new)[0]
    np.testing.assert_allclose(b[:, 1:], a[:, :-1], atol=1e-5)  # one pixel to the right
    page.wait_for_function(
        "h => { const e = document.querySelector('#invariance');"
        " return e && e.innerText.trim().length > 0 && e.innerText !== h; }", arg=hint,
        timeout=15_000)
    text = page.locator("#invariance").inner_text()
    missing = [n for n, _ in lenet5.model.named_modules() if n and n not in text]
    assert not missing, f"#invariance has no bar for {missing}"
    # a conv's map moves with its input: after moving the old map, nothing changed
    first = page.locator("#invariance .inv-row[data-layer-id]").filter(has_text="features.0")
    assert first.first.locator(".eqv-num").inner_text().strip() == "0"
    snap(page, "#invariance", "invariance", tmp_path)
    explain_any(page, lenet5, "features.2", "max", input_id=new)
    assert_clean(page)


def test_filters_view(page, lenet5, tmp_path):
    open_page(page, lenet5)
    options = page.eval_on_selector_all("#filters-layer option", "els => els.map(e => e.value)")
    assert len(options) >= 2  # LeNet-5's two convs
    for value in (options[-1], options[0]):  # the first conv's 5x5 filters last, for the docs
        page.select_option("#filters-layer", value)
        page.wait_for_function(f"""() => {{ const i = document.querySelector('#filters-img');
            return i && i.complete && i.naturalWidth > 0 && i.dataset.layerId === '{value}'; }}""",
                               timeout=15_000)
    snap(page, "#filters-card", "filters", tmp_path)
    assert_clean(page)


def test_static_export_opens_from_disk(page, lenet5, tmp_path):
    out = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "convnet", "explore", str(lenet5.run_dir),
                        "--export", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "index.html").is_file()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    requests = []
    page.on("request", lambda q: requests.append(q.url))
    page.goto((out / "index.html").as_uri())
    page.wait_for_selector('body[data-ready="1"]', timeout=30_000)
    explain_any(page, lenet5, "features.0", "max")
    explain_any(page, lenet5, "features.3", "corner")
    page.wait_for_function("() => { const i = document.querySelector('#gradcam-img');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=15_000)
    assert_clean(page)
    not_file = [u for u in requests if not u.startswith(("file://", "data:", "blob:"))]
    assert not_file == [], not_file
    assert size < 50 * 1024 * 1024
