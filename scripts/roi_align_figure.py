"""Draw ROI Align's sampling points for one box, aligned=False vs aligned=True.

    python scripts/roi_align_figure.py [--out docs/images/roi_align_sampling.png]

The feature map is drawn in image space: pixel ``(i, j)`` is the cell
``[j, j + 1) x [i, i + 1)`` and its value sits at the cell's centre ``(j + 0.5, i + 0.5)``
(grey dots). The box (black) is cut into ``output_size = 2 x 2`` bins with
``sampling_ratio = 2`` samples per bin and axis (coloured, one colour per bin). A sample at
kernel coordinate ``x`` interpolates the pixels whose indices surround ``x``, i.e. it sits at
image position ``x + 0.5``. With ``aligned=False`` the kernel samples at
``x1 + (j + (i + 0.5) / n) bin``, so the points land half a pixel right of and below the box;
``aligned=True`` subtracts 0.5 first and the points fall inside the box, symmetrically.

The script checks its points against ``convnet.ops.roi_align`` itself: pooling the ramps
``f = column index`` and ``f = row index`` must give each bin's mean sample coordinate.
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
from convnet.ops import roi_align  # noqa: E402

H, W = 7, 8
BOX = (1.0, 1.5, 6.0, 5.0)  # x1, y1, x2, y2 in image (= feature, scale 1) coordinates
OUT, N = 2, 2               # output_size, sampling_ratio
COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]


def sample_points(aligned: bool):
    """Kernel coordinates (x, y) of every sample, grouped by bin (p, q)."""
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v - off for v in BOX)
    bw, bh = (x2 - x1) / OUT, (y2 - y1) / OUT
    if not aligned:
        bw, bh = max(x2 - x1, 1.0) / OUT, max(y2 - y1, 1.0) / OUT
    return {(p, q): [(x1 + q * bw + (ix + 0.5) * bw / N, y1 + p * bh + (iy + 0.5) * bh / N)
                     for iy in range(N) for ix in range(N)]
            for p in range(OUT) for q in range(OUT)}


def check_against_roi_align(aligned: bool, points) -> None:
    cols, rows = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    ramps = cn.tensor(np.stack([cols, rows])[None])          # (1, 2, H, W)
    pooled = roi_align(ramps, cn.tensor([[0.0, *BOX]]), OUT, 1.0, N, aligned).numpy()[0]
    for (p, q), pts in points.items():
        mean = np.mean(pts, axis=0)                           # all samples inside: exact
        assert np.allclose(pooled[:, p, q], mean, atol=1e-12), (aligned, p, q, pooled[:, p, q], mean)


def draw(out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.9))
    for ax, aligned in zip(axes, (False, True)):
        points = sample_points(aligned)
        check_against_roi_align(aligned, points)
        for i in range(H):
            for j in range(W):
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, lw=0.6, ec="0.75"))
                ax.plot(j + 0.5, i + 0.5, ".", color="0.6", ms=4)
        x1, y1, x2, y2 = BOX
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2, ec="black"))
        # the region the kernel actually samples, cut into its bins (dashed)
        s = 0.0 if aligned else 0.5
        for t in np.linspace(0, 1, OUT + 1):
            ax.plot([x1 + s, x2 + s], [y1 + s + t * (y2 - y1)] * 2, "--", color="0.3", lw=0.9)
            ax.plot([x1 + s + t * (x2 - x1)] * 2, [y1 + s, y2 + s], "--", color="0.3", lw=0.9)
        for k, ((p, q), pts) in enumerate(points.items()):
            xs = [x + 0.5 for x, _ in pts]  # kernel coordinate -> image position
            ys = [y + 0.5 for _, y in pts]
            ax.plot(xs, ys, "o", color=COLOURS[k], ms=7, label=f"bin ({p}, {q})")
        # one sample's four interpolation neighbours
        sx, sy = points[(0, 0)][0]
        for yy in (int(sy), int(sy) + 1):
            for xx in (int(sx), int(sx) + 1):
                ax.plot([sx + 0.5, xx + 0.5], [sy + 0.5, yy + 0.5], "-", color=COLOURS[0], lw=0.8)
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.set_aspect("equal")
        ax.set_xticks(range(W + 1))
        ax.set_yticks(range(H + 1))
        ax.set_title(f"aligned={aligned}" + ("  (default)" if not aligned else "  (shift by -0.5)"))
    axes[1].legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.suptitle(f"roi_align sampling: box {BOX}, output_size={OUT}, sampling_ratio={N}; "
                 "grey dots: pixel centres; dashed: the bins sampled", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/roi_align_sampling.png"))
    draw(parser.parse_args().out)
    print(parser.parse_args().out)


if __name__ == "__main__":
    main()
