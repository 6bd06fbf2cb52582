"""Draw the im2col layout of docs/convolution.md: a 4x4 input, a 3x3 kernel, stride 1.

    python scripts/im2col_figure.py [--out docs/images/im2col.png]

Left: the input with its pixel values 0..15 and the four 3x3 windows (one colour each).
Right: the patch matrix ``cols`` that :func:`convnet.kernels.conv_reference.im2col` returns,
viewed as ``(C K_h K_w, N O_h O_w) = (9, 4)``: one column per window (same colour), one row per
kernel tap. The row of tap (0, 0) is framed in both panels: it is the strided slice
``x[0:2, 0:2]``, which im2col copies in one step.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from convnet.kernels.conv_reference import im2col  # noqa: E402

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]  # one per window / output pixel


def draw(out: Path) -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)                      # (N, C, H, W)
    cols = im2col(x, (3, 3), (1, 1), (1, 1), (2, 2))             # (C, 3, 3, N, 2, 2)
    mat = cols.reshape(9, 4)                                     # rows: taps, columns: windows
    fig, (ax_x, ax_c) = plt.subplots(1, 2, figsize=(9, 5.2),
                                     gridspec_kw={"width_ratios": [1.1, 1]})

    # the input, its values and the four windows (slightly inset so they do not overlap)
    for i in range(4):
        for j in range(4):
            ax_x.add_patch(Rectangle((j, i), 1, 1, fill=False, lw=1, ec="0.6"))
            ax_x.text(j + 0.5, i + 0.5, f"{int(x[0, 0, i, j])}", ha="center", va="center",
                      fontsize=15)
    for w, (oh, ow) in enumerate(np.ndindex(2, 2)):
        inset = 0.06 + 0.07 * w
        ax_x.add_patch(Rectangle((ow + inset, oh + inset), 3 - 2 * inset, 3 - 2 * inset,
                                 fill=False, lw=2.5, ec=COLOURS[w]))
    # tap (0, 0) reads x[o_h + 0, o_w + 0] for every window: the slice x[0:2, 0:2]
    ax_x.add_patch(Rectangle((0, 0), 2, 2, fill=False, lw=2.5, ec="black", ls="--"))
    ax_x.set_title("input x (1, 1, 4, 4), 3x3 windows", fontsize=13)
    ax_x.set_xlim(-0.1, 4.1)
    ax_x.set_ylim(4.1, -0.1)

    # the patch matrix: column w is window w, row t is kernel tap t = (k_h, k_w)
    for t in range(9):
        for w in range(4):
            ax_c.add_patch(Rectangle((w, t), 1, 1, fc=COLOURS[w], alpha=0.25, ec="0.5"))
            ax_c.text(w + 0.5, t + 0.5, f"{int(mat[t, w])}", ha="center", va="center",
                      fontsize=13)
        ax_c.text(-0.15, t + 0.5, f"tap {divmod(t, 3)}", ha="right", va="center", fontsize=11)
    for w, (oh, ow) in enumerate(np.ndindex(2, 2)):
        ax_c.text(w + 0.5, -0.15, f"({oh},{ow})", ha="center", va="bottom", fontsize=11,
                  color=COLOURS[w], weight="bold")
    ax_c.text(2, -0.75, "output pixel o = window", ha="center", va="bottom", fontsize=11)
    ax_c.add_patch(Rectangle((0, 0), 4, 1, fill=False, lw=2.5, ec="black", ls="--"))
    ax_c.set_title("cols as a (9, 4) matrix: rows = taps,\ncolumns = output pixels",
                   fontsize=13, pad=40)
    ax_c.set_xlim(-1.6, 4.1)
    ax_c.set_ylim(9.1, -0.1)

    for ax in (ax_x, ax_c):
        ax.set_aspect("equal")
        ax.axis("off")
    fig.text(0.5, 0.02, "dashed: kernel tap (0, 0) reads x[0:2, 0:2], one strided slice copied "
             "in one step\ny = W (C_out, 9) @ cols (9, 4) -> (C_out, 4) -> reshaped to "
             "(1, C_out, 2, 2)", ha="center", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/images/im2col.png"))
    draw(p.parse_args().out)


if __name__ == "__main__":
    main()
