"""Pictures for learners (`convnet explain` and the viz functions behind it): labelled
heatmap figures, labelled feature-map rows and class scores, colour filters of RGB models,
which PNGs are written, class names as targets, and errors that name the user's input."""
import numpy as np
import pytest
from PIL import Image

from convnet import viz
from convnet.cli.main import main

from .conftest import load_digits


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def digit(tmp_path_factory):
    """The first bundled test digit (a 7) as a PNG."""
    path = tmp_path_factory.mktemp("img") / "digit.png"
    viz.save_image(load_digits()["test_images"][0] / 255.0, str(path))
    return path


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """A LeNet-5 trained for one epoch on 16 colour images of two classes, 'blue' and 'red'."""
    root = tmp_path_factory.mktemp("rgb")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for cls, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
            d = root / "data" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                a = np.clip(rng.normal(colour, 30, (28, 28, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(d / f"{i}.png")
    out = root / "run"
    assert main(["train", "--model", "lenet5", "--dataset", "folder", "--data-dir",
                 str(root / "data"), "--image-size", "28", "--epochs", "1", "--batch-size", "4",
                 "--val-split", "0", "--no-progress", "--workers", "1", "--out", str(out)]) == 0
    return out


# ---- the viz functions ---------------------------------------------------------------------

def test_explanation_figure_has_input_overlay_colour_bar_and_title(tmp_path):
    img = np.random.default_rng(0).random((1, 12, 20))
    heat = np.zeros((12, 20))
    heat[3, 4] = 1
    fig = viz.explanation_figure(img, heat, title="Grad-CAM for class 'cat' (p = 0.9)")
    left, right, bar = fig.axes  # two panels and the colour bar
    assert "input" in left.get_title() and "Grad-CAM" in right.get_title()
    assert left.get_images()[0].get_array().shape == (12, 20)  # the grey input, not squashed
    assert right.get_images()[0].get_array().shape == (12, 20, 3)  # the coloured overlay
    assert bar.get_ylim() == (0.0, 1.0) and "Grad-CAM" in bar.get_ylabel()
    assert fig.get_suptitle() == "Grad-CAM for class 'cat' (p = 0.9)"
    png = _png(viz.save_explanation(img, heat, str(tmp_path / "e.png"), title="t"))
    assert png.shape[1] > 1.5 * png.shape[0]  # side by side
    with pytest.raises(ValueError, match="differ in size"):
        viz.explanation_figure(img, np.zeros((4, 4)))


def test_feature_map_rows_name_layer_type_and_channel_count():
    maps = {"features.0": np.zeros((1, 16, 6, 6)), "features.1": np.ones((1, 3, 6, 6)),
            "classifier.1": np.arange(3.0)[None]}
    types = {"features.0": "Conv2d", "features.1": "ReLU", "classifier.1": "Linear"}
    fig = viz.feature_map_figure(maps, max_channels=8, layer_types=types,
                                 classes=["cat", "dog", "ship"])
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels[0].startswith("features.0 Conv2d") and "8 of 16 channels" in labels[0]
    assert labels[1].startswith("features.1 ReLU") and "all 3 channels" in labels[1]
    assert labels[2].startswith("classifier.1 Linear") and "class scores" in labels[2]
    scores = fig.axes[-1]
    assert [t.get_text() for t in scores.get_xticklabels()] == ["cat", "dog", "ship"]
    bars = scores.patches
    assert bars[2].get_facecolor() != bars[0].get_facecolor()  # the top class stands out
    assert len([ax for ax in fig.axes if ax.get_images()]) == 8 + 3


def test_rgb_filters_are_drawn_in_colour():
    w = np.random.default_rng(2).standard_normal((5, 3, 3, 3))
    g = viz.filter_grid(w, pad=1)
    assert g.shape == (3, 2 * 4 + 1, 3 * 4 + 1)  # 5 RGB tiles, 3 per row
    np.testing.assert_allclose(g[:, 1:4, 1:4], 0.5 + 0.5 * w[0] / np.abs(w).max())
    np.testing.assert_allclose(g[:, 1:4, 5:8], 0.5 + 0.5 * w[1] / np.abs(w).max())
    assert viz.filter_grid(w, color=False).ndim == 2  # grey on request
    assert viz.filter_grid(w[:, :2]).ndim == 2  # and for 2 input channels
    with pytest.raises(ValueError, match="3 input channels"):
        viz.filter_grid(w[:, :2], color=True)


# ---- convnet explain -----------------------------------------------------------------------

def test_explain_titles_the_class_probability_and_layer(trained_run, digit, tmp_path,
                                                        monkeypatch, capsys):
    seen = {}
    real = viz.save_explanation

    def spy(image, heatmap, path, title=None, **kw):
        seen["title"] = title
        return real(image, heatmap, path, title=title, **kw)

    monkeypatch.setattr(viz, "save_explanation", spy)
    out = tmp_path / "cam.png"
    assert main(["explain", str(trained_run), str(digit), "--out", str(out)]) == 0
    assert "for class '7' (index 7, p = 0." in capsys.readouterr().out
    assert "Grad-CAM for class '7' (p = 0." in seen["title"]
    assert "layer features.4 (ReLU)" in seen["title"]
    png = _png(out)
    assert png.shape[1] > 1.5 * png.shape[0]
    assert main(["explain", str(trained_run), str(digit), "--method", "saliency", "--target",
                 "3", "--out", str(tmp_path / "s.png")]) == 0
    assert "saliency for class '3'" in seen["title"]
    assert "the model predicts '7'" in seen["title"]


def test_explain_writes_only_what_is_asked(trained_run, digit, tmp_path, capsys):
    default = digit.with_name("digit_explain.png")
    fl, fm = tmp_path / "filters.png", tmp_path / "maps.png"
    assert main(["explain", str(trained_run), str(digit), "--filters", str(fl)]) == 0
    assert fl.is_file() and not default.exists()
    assert main(["explain", str(trained_run), str(digit), "--feature-maps", str(fm)]) == 0
    assert fm.is_file() and not default.exists()
    assert "gradcam" not in capsys.readouterr().out
    assert main(["explain", str(trained_run), str(digit)]) == 0  # nothing asked: the heatmap
    assert default.is_file()
    default.unlink()


def test_explain_on_an_rgb_run(rgb_run, tmp_path, capsys):
    red = rgb_run.parent / "data" / "test" / "red" / "0.png"
    fl, cam = tmp_path / "filters.png", tmp_path / "cam.png"
    assert main(["explain", str(rgb_run), str(red), "--target", "red", "--filters", str(fl),
                 "--out", str(cam)]) == 0
    assert "for class 'red' (index 1" in capsys.readouterr().out
    f = _png(fl)
    assert (f.max(axis=2) - f.min(axis=2)).max() > 30  # colour tiles, not grey ones
    assert main(["explain", str(rgb_run), str(red), "--target", "1", "--out", str(cam)]) == 0
    assert "class 'red'" in capsys.readouterr().out
    assert main(["explain", str(rgb_run), str(red), "--target", "green"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("convnet explain: error: --target 'green' is neither a class name nor an "
                   "index 0..1; the classes are: blue, red")


def test_explain_on_a_segmentation_run_says_it_needs_a_classifier(tmp_path, digit, capsys):
    seg = tmp_path / "seg"
    assert main(["train", "--model", "unet", "--model-option", "base_channels=2",
                 "--model-option", "depth=1", "--limit-train", "32", "--limit-test", "8",
                 "--batch-size", "32", "--epochs", "1", "--no-progress", "--workers", "1",
                 "--out", str(seg)]) == 0
    capsys.readouterr()
    assert main(["explain", str(seg), str(digit)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "segmentation run" in err and "needs a classifier" in err
    fm = tmp_path / "maps.png"
    assert main(["explain", str(seg), str(digit), "--feature-maps", str(fm)]) == 0
    assert fm.is_file()


def test_errors_name_the_input_not_a_function(trained_run, digit, tmp_path, capsys):
    missing = tmp_path / "x.png"
    assert main(["explain", str(trained_run), str(missing)]) == 2
    assert capsys.readouterr().err == f"convnet explain: error: no such image file: {missing}\n"
    assert main(["filter", str(missing)]) == 2
    assert capsys.readouterr().err == f"convnet filter: error: no such image file: {missing}\n"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for argv in (["explain", str(trained_run), str(text)], ["filter", str(text)],
                 ["explain", str(trained_run), str(digit), "--layer", "classifier.1"],
                 ["explain", str(trained_run), str(digit), "--target", "12"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        for internal in ("load_image", "grad_cam", "predict:", "explain: error: explain:"):
            assert internal not in err, err
