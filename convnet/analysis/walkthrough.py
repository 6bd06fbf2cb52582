"""Regenerate the pictures of ``docs/inside_the_network.md`` with the ``convnet`` CLI.

    python -m convnet.analysis.walkthrough [--images docs/images] [--run runs/lenet5-walkthrough]

Trains LeNet-5 (max pooling) on the bundled digits with ``convnet train`` (reused when the run
folder already has weights), then runs ``convnet summary``, ``convnet explain`` and
``convnet filter`` and writes the PNGs plus ``walkthrough.txt`` (tables and numbers quoted
on the docs page).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
from pathlib import Path

import numpy as np


def cli(argv: list[str]) -> str:
    """Run one ``convnet`` subcommand and return what it printed (stdout)."""
    from ..cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main.main(argv)
    if code:
        raise SystemExit(f"convnet {' '.join(argv)} failed with status {code}")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default="docs/images")
    p.add_argument("--run", default="runs/lenet5-walkthrough")
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args(argv)
    from .. import viz
    from ..data.datasets.mnist import BUNDLED_PATH
    from . import SAMPLE_IMAGE

    img_dir, run = Path(a.images), Path(a.run)
    img_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if not (run / "model.safetensors").is_file():
        out = cli(["train", "--model", "lenet5", "--model-option", "pooling=max", "--epochs",
                   str(a.epochs), "--out", str(run), "--no-progress"])
        notes.append("## convnet train\n" + out)
    notes.append("## convnet summary\n" + cli(["summary", str(run)]))

    digits = np.load(BUNDLED_PATH)
    picks = [0, 1, 2, 3]  # the first test digits, whatever their class
    for i in picks:
        d = img_dir / f"digit_{i}.png"
        viz.save_image(digits["test_images"][i] / 255.0, str(d), scale=1)
        extra = ["--feature-maps", str(img_dir / "feature_maps.png"),
                 "--filters", str(img_dir / "filters_conv1.png")] if i == picks[0] else []
        notes.append(cli(["explain", str(run), str(d), "--out", str(img_dir / f"gradcam_{i}.png"),
                          *extra]))
        notes.append(cli(["explain", str(run), str(d), "--method", "saliency",
                          "--out", str(img_dir / f"saliency_{i}.png")]))
    notes.append(cli(["explain", str(run), str(img_dir / f"digit_{picks[0]}.png"), "--layer",
                      "features.3", "--filters", str(img_dir / "filters_conv2.png"),
                      "--out", str(img_dir / "gradcam_conv2_preact.png")]))
    viz.save_image(viz.load_image(SAMPLE_IMAGE), str(img_dir / "photo_gray.png"))
    for k in ("sobel_x", "sobel_y", "sobel", "laplacian", "gaussian_blur", "sharpen", "emboss"):
        notes.append(cli(["filter", SAMPLE_IMAGE, "--kernel", k,
                          "--out", str(img_dir / f"photo_{k}.png")]))

    # numbers for the properties section, measured on the trained first conv layer
    from ..cli.evaluate import load_run
    from .properties import (
        equivariance_error, invariance_error, rotation_equivariance_error, scale_equivariance_error,
    )
    from .receptive_field import empirical_receptive_field, receptive_field

    _, _, model = load_run(run)
    conv1 = copy.deepcopy(model.features[0]).double()
    x = digits["test_images"][:4, None].astype(np.float64) / 255
    pool = model.features[2]
    notes.append("## properties (trained conv1, 4 test digits)\n" + "\n".join([
        f"equivariance_error(conv1, shift=3) = {equivariance_error(conv1, 3, x=x):.2e}",
        f"rotation_equivariance_error(conv1, 90 deg) = {rotation_equivariance_error(conv1, x=x):.3f}",
        f"scale_equivariance_error(conv1, x2) = {scale_equivariance_error(conv1, x=x):.3f}",
        f"invariance_error(maxpool 2x2, shift=1) = {invariance_error(pool, 1, x=x):.3f}",
        f"invariance_error(identity, shift=1) = {invariance_error(lambda t: t, 1, x=x):.3f}",
        f"receptive_field(features) = {receptive_field(model.features, (1, 28, 28))}, "
        f"empirical = {empirical_receptive_field(model.features, (1, 28, 28), method='perturbation')}",
    ]))
    text = "\n".join(notes)
    (img_dir / "walkthrough.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
