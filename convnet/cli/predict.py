"""``convnet predict DIR IMAGE...``: top-k classes with probabilities for your own images.

Any image Pillow reads works: it is converted to the model's channels (grayscale or RGB) and
resized to the training size. For dark-on-light images of a light-on-dark dataset (a digit
drawn in black on white paper, for a model trained on MNIST), colours are inverted
automatically (``--invert auto``: when the border is brighter than the middle grey).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LIGHT_ON_DARK = {"mnist-bundled", "mnist", "fashion-mnist"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="classify image files with a trained run",
                              description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` run")
    p.add_argument("images", nargs="+", help="image files (png, jpg, ...)")
    p.add_argument("--topk", type=int, default=3, help="how many classes to show (default 3)")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="invert colours first (default auto, for MNIST-like runs only)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    from .main import add_threads_option

    add_threads_option(p)
    p.set_defaults(func=run)


def prepare(path: Path, cfg: dict, size: int, channels: int, invert: str) -> np.ndarray:
    """Image file -> normalised (C, size, size) float32, as the model was trained."""
    from ..data.datasets.folder import load_image

    if not path.is_file():
        raise FileNotFoundError(f"predict: no such file: {path}")
    img = load_image(path, "L" if channels == 1 else "RGB", (size, size))
    if invert == "yes" or (invert == "auto" and cfg["dataset"] in LIGHT_ON_DARK and channels == 1):
        border = np.concatenate([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], axis=None)
        if invert == "yes" or border.mean() > 127:
            img = 255 - img
    x = img.astype(np.float32) / 255
    mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(cfg["std"], dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def run(args) -> int:
    from .. import no_grad
    from ..tensor import Tensor
    from .evaluate import load_run

    cfg, info, model = load_run(Path(args.run_dir))
    if cfg.get("task") == "segment":
        raise ValueError(f"predict: {args.run_dir} is a segmentation run (per-pixel labels); "
                         "`convnet predict` ranks classes per image. Use `convnet evaluate` "
                         "for its pixel accuracy and IoU")
    k = max(1, min(args.topk, len(info.classes)))
    batch = np.stack([prepare(Path(p), cfg, info.size, info.channels, args.invert)
                      for p in args.images])
    dtype = next(iter(model.parameters())).data.dtype
    with no_grad():
        logits = model(Tensor._make(batch.astype(dtype))).data.astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    results = []
    for path, pr in zip(args.images, probs):
        top = np.argsort(-pr, kind="stable")[:k]
        results.append({"image": path, "top": [{"class": info.classes[i], "index": int(i),
                                                "probability": float(pr[i])} for i in top]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            tops = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in r["top"])
            print(f"{r['image']}: {tops}")
    return 0
