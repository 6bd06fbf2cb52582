"""PNG rendering and the summary / filter / explain subcommands (through their own parsers,
so they are tested before the main CLI lists them)."""
import argparse

import numpy as np
import pytest
from PIL import Image

import convnet as cn
import convnet.nn as nn
from convnet import viz
from convnet.analysis import SAMPLE_IMAGE, feature_maps, layer_filters
from convnet.cli import explain_cmd, filter_cmd, summary_cmd

from .conftest import load_digits, needs


def _cli(module, argv):
    parser = argparse.ArgumentParser(prog="convnet")
    module.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im)


def test_sample_photo_and_licence_ship():
    import os

    assert os.path.getsize(SAMPLE_IMAGE) < 100_000
    assert os.path.isfile(os.path.join(os.path.dirname(SAMPLE_IMAGE), "PROVENANCE.md"))
    img = viz.load_image(SAMPLE_IMAGE, "RGB")
    assert img.shape[0] == 3 and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert viz.load_image(SAMPLE_IMAGE, size=(32, 40)).shape == (1, 32, 40)


def test_image_round_trip(tmp_path):
    img = np.random.default_rng(0).random((3, 9, 7))
    p = viz.save_image(img, str(tmp_path / "a" / "img.png"))
    back = viz.load_image(p, "RGB")
    np.testing.assert_allclose(back, img, atol=1 / 255)
    big = _png(viz.save_image(img[:1], str(tmp_path / "g.png"), scale=3))
    assert big.shape == (27, 21)


def test_filter_grid_layout():
    w = np.random.default_rng(1).standard_normal((4, 2, 3, 5))
    g = viz.filter_grid(w, pad=1)
    assert g.shape == (4 * 4 + 1, 2 * 6 + 1)
    # top-left tile is filter 0 / channel 0, scaled so zero is mid-grey
    np.testing.assert_allclose(g[1:4, 1:6], 0.5 + 0.5 * w[0, 0] / np.abs(w).max())
    assert g[0].min() == 1 and g.min() >= 0 and g.max() <= 1
    with pytest.raises(ValueError, match="filter_grid"):
        viz.filter_grid(np.zeros((3, 3)))


def test_overlay_and_feature_map_pngs(tmp_path):
    cn.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 64, 4))
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    heat = np.zeros((8, 8))
    heat[2, 3] = 1
    o = viz.overlay(x[0], heat, alpha=0.5)
    assert o.shape == (3, 8, 8)
    assert o[0, 2, 3] > o[2, 2, 3]  # jet: the hot pixel is red, the rest blue-ish
    p = viz.save_overlay(x[0], heat, str(tmp_path / "o.png"), scale=4)
    assert _png(p).shape == (32, 32, 3)
    p = viz.save_feature_maps(feature_maps(m, x), str(tmp_path / "fm.png"), max_channels=3)
    assert _png(p).ndim == 3
    p = viz.save_filter_grid(layer_filters(m, "0"), str(tmp_path / "f.png"), scale=5)
    assert _png(p).shape == ((2 * 4 + 1) * 5, (2 * 4 + 1) * 5)  # 3 filters on a 2x2 grid
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(x[0], np.zeros((4, 4)))
    with pytest.raises(ValueError, match="no convolution weight"):
        layer_filters(m, "1")


def test_filter_command(tmp_path, capsys):
    out = tmp_path / "edges.png"
    assert _cli(filter_cmd, ["filter", SAMPLE_IMAGE, "--kernel", "sobel_x", "--out", str(out)]) == 0
    edges = _png(out)
    gray = viz.load_image(SAMPLE_IMAGE)[0]
    assert edges.shape == gray.shape and edges.max() == 255
    from convnet import filters

    ref = np.abs(filters.apply(gray.astype(np.float64), "sobel_x"))
    np.testing.assert_allclose(edges / 255, ref / ref.max(), atol=1 / 255 + 1e-6)
    assert _cli(filter_cmd, ["filter", SAMPLE_IMAGE, "--kernel", "gaussian_blur", "--color",
                             "--out", str(tmp_path / "blur.png")]) == 0
    assert _png(tmp_path / "blur.png").shape[2] == 3
    assert _cli(filter_cmd, ["filter", SAMPLE_IMAGE, "--kernel", "list"]) == 0
    assert "emboss" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown kernel"):
        _cli(filter_cmd, ["filter", SAMPLE_IMAGE, "--kernel", "blurry"])


def test_summary_command(capsys):
    assert _cli(summary_cmd, ["summary", "simple_cnn", "--input", "1,28,28"]) == 0
    text = capsys.readouterr().out
    assert "Total params" in text and "RF" in text
    with pytest.raises(ValueError, match="--input must be"):
        _cli(summary_cmd, ["summary", "lenet5", "--input", "3,a,32"])
    with pytest.raises(ValueError, match="unknown model"):
        _cli(summary_cmd, ["summary", "nonet", "--input", "1,28,28"])


@pytest.fixture
def run_dir(trained_run):
    return trained_run


@needs("MaxPool2d")
def test_summary_and_explain_on_a_run_folder(run_dir, tmp_path, capsys):
    assert _cli(summary_cmd, ["summary", str(run_dir)]) == 0
    assert "61,706" in capsys.readouterr().out
    digit = tmp_path / "digit.png"
    viz.save_image(load_digits()["test_images"][0] / 255.0, str(digit))
    out = tmp_path / "cam.png"
    assert _cli(explain_cmd, ["explain", str(run_dir), str(digit), "--out", str(out)]) == 0
    assert "gradcam at features.4" in capsys.readouterr().out  # rectified last conv by default
    h, w = _png(out).shape[:2]
    assert w > 1.5 * h  # input and overlay side by side, plus a colour bar
    fm, fl = tmp_path / "fm.png", tmp_path / "filters.png"
    assert _cli(explain_cmd, ["explain", str(run_dir), str(digit), "--out", str(out),
                              "--feature-maps", str(fm), "--filters", str(fl)]) == 0
    assert "filters of features.0" in capsys.readouterr().out
    assert _png(fm).ndim == 3 and _png(fl).shape == ((2 * 6 + 1) * 12, (3 * 6 + 1) * 12)
    assert _cli(explain_cmd, ["explain", str(run_dir), str(digit), "--method", "saliency",
                              "--scale", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert _png(tmp_path / "s.png").shape[1] > 2 * 240  # panels are at least 240 px wide
    with pytest.raises(ValueError, match="no layer named"):
        _cli(explain_cmd, ["explain", str(run_dir), str(digit), "--layer", "nope"])


def test_subcommands_plug_into_the_main_cli(monkeypatch, tmp_path, capsys):
    from convnet.cli import main

    mods = ["convnet.cli.summary_cmd", "convnet.cli.explain_cmd", "convnet.cli.filter_cmd"]
    monkeypatch.setattr(main, "SUBCOMMANDS", list(dict.fromkeys(main.SUBCOMMANDS + mods)))
    out = tmp_path / "e.png"
    assert main.main(["filter", SAMPLE_IMAGE, "--kernel", "emboss", "--out", str(out)]) == 0
    assert _png(out).ndim == 2
    assert main.main(["filter", SAMPLE_IMAGE, "--kernel", "nope"]) == 2  # one-line error
    assert "unknown kernel 'nope'" in capsys.readouterr().err
    assert main.main(["summary", "lenet5", "--input", "1,32,32"]) == 0
    assert "Total params: 61,706" in capsys.readouterr().out
