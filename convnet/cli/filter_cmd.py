"""``convnet filter IMAGE --kernel sobel_x --out edges.png``: a classic image filter applied by
convolution (docs/inside_the_network.md, section 7).

Kernels: sobel_x, sobel_y, prewitt_x, prewitt_y, laplacian, laplacian_diag, gaussian_blur,
box_blur, sharpen, emboss, identity, and ``sobel`` / ``prewitt`` for the edge magnitude
sqrt(Gx^2 + Gy^2). Derivative kernels (weights summing to 0) are shown as |response| scaled
to the brightest pixel; others keep the image's 0..1 range.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("filter", help="apply a classic image kernel (edges, blur, ...)",
                              description=__doc__)
    p.add_argument("image", help="an image file (png, jpg, ...)")
    p.add_argument("--kernel", default="sobel_x",
                   help="kernel name (default sobel_x); `--kernel list` prints the names")
    p.add_argument("--out", default=None, help="output PNG (default IMAGE_KERNEL.png)")
    p.add_argument("--color", action="store_true", help="filter each RGB channel (default grey)")
    p.add_argument("--flip", action="store_true", help="true convolution (kernel rotated 180 deg)")
    p.add_argument("--padding-mode", default="reflect", choices=["reflect", "replicate", "zeros"])
    p.set_defaults(func=run)


def filter_image(img: np.ndarray, name: str, flip: bool = False,
                 padding_mode: str = "reflect") -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> displayable ``(C, H, W)`` in [0, 1], same float dtype.

    Works in place on the response (a 12-megapixel colour photo is 144 MB per float32 copy).
    """
    from .. import filters

    if name in ("sobel", "prewitt"):
        resp = filters.edge_magnitude(img, name, padding_mode=padding_mode)
        derivative = True
    else:
        k = filters.kernel(name)
        resp = filters.apply(img, k, flip=flip, padding_mode=padding_mode)
        derivative = abs(k.sum()) < 1e-9
    if derivative:
        np.abs(resp, out=resp)
        peak = resp.max()
        if peak > 0:
            resp /= peak
        return resp
    return np.clip(resp, 0, 1, out=resp)


def read_image(path: str, mode: str) -> np.ndarray:
    """An image file as float32 ``(C, H, W)`` in [0, 1]; errors name the file, not a function."""
    from PIL import UnidentifiedImageError

    from .. import viz
    from .main import CLIError

    if not Path(path).is_file():
        raise CLIError(f"no such image file: {path}")
    try:
        return viz.load_image(path, mode)
    except UnidentifiedImageError:
        raise CLIError(f"cannot read {path} as an image (png, jpg, bmp, ...)") from None
    except OSError as e:  # e.g. a truncated file
        raise CLIError(f"cannot read {path} as an image: {e}") from None


def run(args) -> int:
    from .. import filters, viz

    if args.kernel == "list":
        print("\n".join(filters.names() + ["sobel", "prewitt"]))
        return 0
    if args.kernel not in filters.KERNELS and args.kernel not in ("sobel", "prewitt"):
        raise ValueError(f"unknown kernel {args.kernel!r}; choose one of "
                         f"{', '.join(filters.names() + ['sobel', 'prewitt'])}")
    img = read_image(args.image, "RGB" if args.color else "L")
    k = 3 if args.kernel in ("sobel", "prewitt") else len(filters.kernel(args.kernel))
    if args.padding_mode == "reflect" and min(img.shape[1:]) <= k // 2:
        raise ValueError(f"{args.image} is {img.shape[2]}x{img.shape[1]} pixels, too small for "
                         f"the {k}x{k} kernel with reflect padding (use --padding-mode replicate)")
    out = filter_image(img, args.kernel, args.flip, args.padding_mode)
    path = args.out or str(Path(args.image).with_suffix("")) + f"_{args.kernel}.png"
    viz.save_image(out, path)
    print(f"wrote {path} ({out.shape[2]}x{out.shape[1]}, kernel {args.kernel})")
    return 0
