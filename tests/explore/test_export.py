"""The static export: index.html flagged static, the UI files, one data file per API answer."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

import convnet.nn as nn
from convnet.explorer import export, export_run
from convnet.explorer.export import MARKER, SHIFTS, data_key
from convnet.explorer.server import STATIC_DIR

PUT = re.compile(r'^window\.CONVNET_STATIC_PUT\(("(?:[^"\\]|\\.)*"), ("[^"]*"), "([A-Za-z0-9+/=]*)"\);\n$')


def _read(site, path):
    """(mime, body) of the data file that answers ``path``; asserts its one call names it."""
    f = site / "data" / f"{data_key(path)}.js"
    assert f.is_file(), f"missing data file for {path}"
    m = PUT.match(f.read_text())
    assert m, f"{f.name} is not exactly one CONVNET_STATIC_PUT call"
    assert json.loads(m.group(1)) == path
    return json.loads(m.group(2)), base64.b64decode(m.group(3))


def test_data_key():
    assert data_key("/api/forward/test-3") == "_api_forward_test_3"
    assert data_key("/api/gradcam/test-0?layer=4&class=7") == "_api_gradcam_test_0_layer_4_class_7"


def test_export_of_a_run_answers_every_path_for_its_inputs(tmp_path, explore_runs, capsys):
    site = tmp_path / "site"
    res = export_run(explore_runs("lenet5"), site, inputs=2)
    printed = capsys.readouterr().out
    assert f"wrote {site}/" in printed and ("MB" in printed or "kB" in printed)
    html = (site / "index.html").read_text()
    assert "<script>window.CONVNET_STATIC = true</script>" in html and MARKER not in html
    for f in STATIC_DIR.iterdir():
        if f.is_file() and not f.name.startswith("."):
            assert (site / "static" / f.name).read_bytes() == f.read_bytes()
    ids = res["inputs"]
    assert len(ids) == 2 and res["bytes"] < 50 * 2**20

    mime, body = _read(site, "/api/meta")
    meta = json.loads(body)
    assert mime == "application/json" and meta["static"] is True and meta["can_upload"] is False
    inputs = json.loads(_read(site, "/api/inputs?offset=0&limit=48")[1])
    assert [i["id"] for i in inputs["items"]] == ids and inputs["total"] == 2
    labels = [i["label"] for i in inputs["items"]]
    assert len(set(labels)) == 2  # the first images of different classes
    for k in range(10):  # the picker's class filter, restricted to the exported inputs
        page = json.loads(_read(site, f"/api/inputs?offset=0&limit=48&label={k}")[1])
        assert [i["label"] for i in page["items"]] == [y for y in labels if y == k]
    gl = json.loads(_read(site, "/api/gradcam-layers")[1])
    assert gl["default"] in gl["layers"]
    _read(site, "/api/curves")
    conf = json.loads(_read(site, "/api/confusion")[1])
    assert conf["status"] == "ready" and sum(map(sum, conf["matrix"])) == conf["total"]
    for t, row in enumerate(conf["matrix"]):
        for p, n in enumerate(row):
            if n:
                cell = json.loads(_read(site, f"/api/confusion/{t}/{p}?limit=24")[1])
                assert len(cell["items"]) == min(n, 24)
                for item in cell["items"]:
                    _read(site, item["thumb"])
                    assert item["selectable"] == (item["id"] in ids)
    for lay in meta["layers"]:
        for name in lay["param_names"]:
            assert _read(site, f"/api/param/{lay['id']}/{name}.bin")[1][:4] == b"CNV1"
        if lay["explain"] == "conv":
            assert _read(site, f"/api/filters/{lay['id']}.png")[0] == "image/png"
            _read(site, f"/api/filters/{lay['id']}.json")
    k = len(meta["class_names"])
    for iid in ids:
        shifted = [f"shift-{iid}-{dx if dx >= 0 else f'm{-dx}'}-{dy if dy >= 0 else f'm{-dy}'}"
                   for dx, dy in SHIFTS]
        for j in [iid] + shifted:
            assert _read(site, f"/api/input/{j}.png")[0] == "image/png"
            fwd = json.loads(_read(site, f"/api/forward/{j}")[1])
            for row in fwd["layers"]:
                assert _read(site, f"/api/maps/{j}/{row['id']}.png")[0] == "image/png"
                if j == iid:
                    for b in (row["input_blob"], row["output_blob"]):
                        assert _read(site, f"/api/blob/{b}.bin")[0] == "application/octet-stream"
        for (dx, dy), sid in zip(SHIFTS, shifted):
            inv = json.loads(_read(site, f"/api/invariance/{iid}?dx={dx}&dy={dy}")[1])
            assert inv["shift_id"] == sid
        for lid in gl["layers"]:
            for c in range(min(k, 10)):
                mime, png = _read(site, f"/api/gradcam/{iid}?layer={lid}&class={c}")
                assert mime == "image/png" and png[:4] == b"\x89PNG"


def test_export_from_python_and_a_size_warning(tmp_path, monkeypatch):
    import convnet.explorer.export as ex

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    data = np.random.default_rng(0).standard_normal((5, 3, 6, 6)).astype(np.float32)
    lines = []
    monkeypatch.setattr(ex, "WARN_BYTES", 1000)
    res = export(model.eval(), tmp_path / "py", data, ["a", "b", "c"], inputs=1, log=lines.append)
    assert res["inputs"] == ["test-0"]
    assert "warning" in lines[-1] and "--inputs" in lines[-1]
    meta = json.loads(_read(tmp_path / "py", "/api/meta")[1])
    assert meta["has_confusion"] is False  # no labels given
    with pytest.raises(ValueError, match="no test images"):
        export(model.eval(), tmp_path / "none", input_shape=(3, 6, 6), log=None)
