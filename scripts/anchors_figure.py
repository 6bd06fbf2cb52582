"""Draw the anchors of docs/detection.md on a held-out digit canvas.

    python scripts/anchors_figure.py [--out docs/images/anchors_grid.png]

Both panels show test canvas 0 of ``MNISTDetection`` (64 x 64) with an 8 x 8 feature map
(stride 8) and ``AnchorGenerator(sizes=((16, 24, 32),), aspect_ratios=((1.0, 2.0),))``:
6 anchors per location, 384 in all.
Left: the grid cells, every anchor centre (a dot at a cell's top-left corner, torchvision's
placement) and the 6 anchors of one location. Right: the ground-truth boxes and the anchors
``Matcher(0.5, 0.4, allow_low_quality_matches=True)`` assigns to each (same colour); anchors
between the thresholds (ignored in training) are dashed grey.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import convnet as cn  # noqa: E402
from convnet.data.datasets import MNISTDetection  # noqa: E402
from convnet.models.detection import AnchorGenerator, ImageList, Matcher  # noqa: E402
from convnet.ops import box_iou  # noqa: E402

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]
SIZES, RATIOS, GRID, LOCATION = ((16, 24, 32),), ((1.0, 2.0),), 8, (3, 4)   # LOCATION: (row, col)


def box(ax, b, colour, lw=1.6, ls="-", alpha=1.0):
    x1, y1, x2, y2 = b
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=lw, ls=ls,
                           alpha=alpha))


def draw(out: Path) -> None:
    image, target = MNISTDetection(train=False, length=1)[0]
    h, w = image.shape[-2:]
    gen = AnchorGenerator(SIZES, RATIOS)
    anchors = gen(ImageList(image[None], [(h, w)]), [cn.zeros(1, 1, GRID, GRID)])[0]
    a = gen.num_anchors_per_location()[0]
    stride = h // GRID
    gt = target["boxes"]
    matches = Matcher(0.5, 0.4, allow_low_quality_matches=True)(box_iou(gt, anchors)).numpy()
    A, G = anchors.numpy(), gt.numpy()

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.3))
    for ax in axes:
        ax.imshow(image.numpy()[0], cmap="gray", extent=(0, w, h, 0), vmin=0, vmax=1)
        ax.set_xlim(-18, w + 18)
        ax.set_ylim(h + 18, -18)
        ax.add_patch(Rectangle((0, 0), w, h, fill=False, ec="0.5", lw=1))
        ax.set_xticks(range(0, w + 1, 16))
        ax.set_yticks(range(0, h + 1, 16))
    left, right = axes
    for k in range(1, GRID):                      # the feature map's cells in image pixels
        left.plot([0, w], [k * stride] * 2, color="0.45", lw=0.6)
        left.plot([k * stride] * 2, [0, h], color="0.45", lw=0.6)
    centres = (A[::a, :2] + A[::a, 2:]) / 2
    left.plot(centres[:, 0], centres[:, 1], ".", color="#ffe119", ms=4)
    loc = LOCATION[0] * GRID + LOCATION[1]
    for j in range(a):
        box(left, A[loc * a + j], COLOURS[j % len(COLOURS)])
    cx, cy = centres[loc]
    left.plot([cx], [cy], "o", color="#ffe119", ms=7, mec="black")
    left.set_title(f"{GRID}x{GRID} map, stride {stride}: {a} anchors at ({cx:.0f}, {cy:.0f})\n"
                   f"sizes {SIZES[0]}, ratios {RATIOS[0]}; {len(A)} anchors", fontsize=11)

    for j in np.nonzero(matches == Matcher.BETWEEN_THRESHOLDS)[0]:
        box(right, A[j], "0.7", lw=0.8, ls="--", alpha=0.8)
    for g in range(len(G)):
        for j in np.nonzero(matches == g)[0]:
            box(right, A[j], COLOURS[g % len(COLOURS)], lw=1.2, alpha=0.9)
        box(right, G[g], "white", lw=2.4)
    n_pos, n_mid = int((matches >= 0).sum()), int((matches == -2).sum())
    right.set_title(f"Matcher(0.5, 0.4, low-quality): {n_pos} positive anchors\n"
                    f"for {len(G)} digits (white), {n_mid} ignored (dashed)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {len(A)} anchors, {n_pos} positive, {n_mid} between thresholds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/anchors_grid.png"))
    draw(parser.parse_args().out)
