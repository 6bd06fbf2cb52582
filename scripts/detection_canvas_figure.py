"""Draw 8 digit canvases of MNISTDetection with their boxes and labels (docs/detection.md).

    python scripts/detection_canvas_figure.py [--out docs/images/detection_canvases.png]
                                              [--seed 0] [--test]

Each panel is one 64 x 64 canvas (bundled digits, default arguments); every box is drawn on
the pixel edges it covers (``x1 .. x2`` with ``x2`` exclusive) and labelled with the class
name (``ds.classes[label]``). The title gives the canvas index.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from convnet.data.datasets import MNISTDetection  # noqa: E402

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45", "#fabed4", "#ffe119"]  # one per class


def draw(out: Path, seed: int, train: bool) -> None:
    ds = MNISTDetection(train=train, seed=seed, length=8)
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
    for i, ax in enumerate(axes.flat):
        image, target = ds[i]
        H, W = image.shape[1:]
        # extent puts pixel (r, c) on [c, c + 1) x [r, r + 1): box coordinates are pixel edges
        ax.imshow(image.numpy()[0], cmap="gray", vmin=0, vmax=1, extent=(0, W, H, 0),
                  interpolation="nearest")
        for (x1, y1, x2, y2), label in zip(target["boxes"].numpy(), target["labels"].numpy()):
            colour = COLOURS[(int(label) - 1) % len(COLOURS)]
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.5))
            ax.text(x1 + 0.5, y1 - 0.8, ds.classes[int(label)], color="white", fontsize=8,
                    va="bottom", bbox={"facecolor": colour, "pad": 1, "lw": 0})
        ax.set_title(f"canvas {i}: {len(target['labels'])} objects", fontsize=9)
        ax.set_xlim(0, W)
        ax.set_ylim(H, -6)  # room above the top row for the labels
        ax.axis("off")
    split = "train" if train else "test"
    fig.suptitle(f"MNISTDetection({split}, seed={seed}): 64x64 canvases, tight ink boxes, "
                 "label = class name", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/images/detection_canvases.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="canvases of the test split")
    args = p.parse_args()
    draw(args.out, args.seed, not args.test)


if __name__ == "__main__":
    main()
