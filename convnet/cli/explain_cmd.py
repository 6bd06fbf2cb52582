"""``convnet explain DIR IMAGE --layer L --out out.png``: where a trained model looks.

Draws the Grad-CAM heatmap (Selvaraju et al. 2017) of the predicted class (or ``--target``)
over the image; ``--method saliency`` draws the input-gradient saliency map instead. DIR is
the folder of a ``convnet train`` run; the image is prepared as ``convnet predict`` does
(resized, inverted for dark-on-light digits, normalised). ``--layer`` names a module
(``convnet summary DIR`` lists them); the default is the last convolution's activation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("explain", help="Grad-CAM / saliency heatmap of a prediction",
                              description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` run")
    p.add_argument("image", help="an image file")
    p.add_argument("--layer", default=None,
                   help="conv layer name (default: the last conv's activation)")
    p.add_argument("--target", type=int, default=None, help="class index (default: predicted)")
    p.add_argument("--method", choices=["gradcam", "saliency"], default="gradcam")
    p.add_argument("--out", default=None, help="output PNG (default IMAGE_explain.png)")
    p.add_argument("--scale", type=int, default=8, help="enlarge the PNG by this factor (default 8)")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--feature-maps", default=None, metavar="PNG",
                   help="also draw every layer's activation maps for this image")
    p.add_argument("--filters", default=None, metavar="PNG",
                   help="also draw the learned filters of the first convolution (or --layer's)")
    p.set_defaults(func=run)


def last_conv(model) -> str:
    """Name of the last 2-D convolution (a module with a 4-D weight), or of the activation
    right after it when there is one: Grad-CAM uses the rectified maps, as in the paper."""
    named = list(model.named_modules())
    idx = [i for i, (_, m) in enumerate(named)
           if getattr(m, "weight", None) is not None and m.weight.ndim == 4]
    if not idx:
        raise ValueError("explain: the model has no 2-D convolution to explain; pass --layer")
    i = idx[-1]
    if i + 1 < len(named):
        name, nxt = named[i + 1]
        if type(nxt).__name__ in _ACTIVATIONS:
            return name
    return named[i][0]


def first_conv(model) -> str:
    """Name of the first 2-D convolution."""
    for n, m in model.named_modules():
        if getattr(m, "weight", None) is not None and m.weight.ndim == 4:
            return n
    raise ValueError("explain: the model has no 2-D convolution")


_ACTIVATIONS = {"ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "Tanh", "Sigmoid"}


def run(args) -> int:
    from .. import viz
    from ..analysis import grad_cam, saliency_map
    from .evaluate import load_run
    from .predict import prepare

    cfg, info, model = load_run(Path(args.run_dir))
    x = prepare(Path(args.image), cfg, info.size, info.channels, args.invert)[None]
    dtype = next(iter(model.parameters())).data.dtype
    x = x.astype(dtype)
    from ..autograd.grad_mode import no_grad
    from ..tensor import Tensor

    with no_grad():
        scores = model(Tensor._make(x)).data[0]
    target = int(scores.argmax()) if args.target is None else args.target
    if args.method == "gradcam":
        layer = args.layer or last_conv(model)
        heat = grad_cam(model, x, layer, target=target)[0]
    else:
        layer = "input"
        heat = saliency_map(model, x, target=target)[0]
    # show the image as the model saw it (de-normalised), so inversion is visible too
    mean = np.asarray(cfg["mean"]).reshape(-1, 1, 1)
    std = np.asarray(cfg["std"]).reshape(-1, 1, 1)
    shown = np.clip(x[0] * std + mean, 0, 1)
    path = args.out or str(Path(args.image).with_suffix("")) + "_explain.png"
    viz.save_overlay(shown, heat, path, scale=args.scale)
    if args.feature_maps:
        from ..analysis import feature_maps

        viz.save_feature_maps(feature_maps(model, x), args.feature_maps,
                              title=f"activation maps of {Path(args.image).name}")
        print(f"wrote {args.feature_maps}: activation maps of every layer")
    if args.filters:
        from ..analysis import layer_filters

        conv = args.layer if args.layer and getattr(model.get_submodule(args.layer), "weight", None) \
            is not None else first_conv(model)
        viz.save_filter_grid(layer_filters(model, conv), args.filters)
        print(f"wrote {args.filters}: filters of {conv}")
    name = info.classes[target] if target < len(info.classes) else str(target)
    print(f"wrote {path}: {args.method} at {layer} for class {name!r} (index {target})")
    return 0
