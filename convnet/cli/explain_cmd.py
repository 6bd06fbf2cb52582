"""``convnet explain DIR IMAGE``: where a trained classifier looks, and what is inside it.

Draws the Grad-CAM heatmap (Selvaraju et al. 2017) of the predicted class (or ``--target``,
an index or a class name) beside the image, with a colour bar and a title naming the class,
its probability and the layer; ``--method saliency`` draws the input-gradient saliency map
instead. DIR is the folder of a ``convnet train`` run; the image is prepared as ``convnet
predict`` does. ``--layer`` names a module (``convnet summary DIR`` lists them); the default
is the last convolution's activation.

Outputs: the heatmap PNG is written when ``--out`` is given or when neither ``--filters`` nor
``--feature-maps`` is (default name IMAGE_explain.png); ``--filters PNG`` draws the learned
filters of the first convolution (or of ``--layer``; in colour for RGB inputs) and
``--feature-maps PNG`` every layer's activations for the image, ending with the labelled
class scores. Grad-CAM and saliency need a classifier; on a segmentation run only
``--filters`` and ``--feature-maps`` work.
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
    p.add_argument("--target", default=None, metavar="CLASS",
                   help="class to explain: a class name or an index (default: the predicted one)")
    p.add_argument("--method", choices=["gradcam", "saliency"], default="gradcam")
    p.add_argument("--out", default=None,
                   help="heatmap PNG (default IMAGE_explain.png; written unless only --filters "
                        "or --feature-maps is asked for)")
    p.add_argument("--scale", type=int, default=8,
                   help="heatmap panels show the image enlarged this many times (default 8; "
                        "each panel 240 to 600 pixels)")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--feature-maps", default=None, metavar="PNG",
                   help="draw every layer's activation maps for this image")
    p.add_argument("--filters", default=None, metavar="PNG",
                   help="draw the learned filters of the first convolution (or --layer's)")
    p.set_defaults(func=run)


def last_conv(model) -> str:
    """Name of the last 2-D convolution (a module with a 4-D weight), or of the activation
    right after it when there is one: Grad-CAM uses the rectified maps, as in the paper."""
    named = list(model.named_modules())
    idx = [i for i, (_, m) in enumerate(named)
           if getattr(m, "weight", None) is not None and m.weight.ndim == 4]
    if not idx:
        raise ValueError("the model has no 2-D convolution to explain; pass --layer")
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
    raise ValueError("the model has no 2-D convolution to draw the filters of")


_ACTIVATIONS = {"ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "Tanh", "Sigmoid"}


def _p(p: float) -> str:
    """A probability for a title: 0.997, or 3.2e-05 when it would print as 0.000."""
    return f"{p:.3f}" if p >= 0.0005 else f"{p:.1e}"


def resolve_target(target: str | None, classes: list[str]) -> int | None:
    """``--target`` as a class index: a class name first (so CIFAR's ``cat`` works and MNIST's
    ``7`` is the class named 7), else an index in ``0 .. len(classes) - 1``."""
    from .main import CLIError

    if target is None:
        return None
    if target in classes:
        return classes.index(target)
    try:
        i = int(target)
    except ValueError:
        i = None
    if i is not None and 0 <= i < len(classes):
        return i
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    raise CLIError(f"--target {target!r} is neither a class name nor an index 0..{len(classes) - 1};"
                   f" the classes are: {shown}")


def run(args) -> int:
    from .. import viz
    from ..analysis import grad_cam, saliency_map
    from ..autograd.grad_mode import no_grad
    from ..tensor import Tensor
    from ._setup import read_config
    from .evaluate import load_run
    from .main import CLIError
    from .predict import prepare

    run_dir, image = Path(args.run_dir), Path(args.image)
    heatmap = bool(args.out) or not (args.filters or args.feature_maps)
    task = read_config(run_dir).get("task")
    segment = task == "segment"
    if task == "detect" and heatmap:
        raise CLIError(f"{run_dir} is a detection run; Grad-CAM and saliency maps need a "
                       "classifier (one score per class per image); `convnet predict` draws its "
                       "boxes, and --filters / --feature-maps work on this run")
    if segment and heatmap:
        method = "Grad-CAM" if args.method == "gradcam" else "a saliency map"
        raise CLIError(f"{run_dir} is a segmentation run; {method} needs a classifier (one score "
                       "per class per image); only --filters and --feature-maps work on this run")
    if not image.is_file():
        raise CLIError(f"no such image file: {image}")
    cfg, info, model = load_run(run_dir)
    if cfg.get("quantization"):
        raise ValueError(f"{run_dir} is an int8 run (`convnet quantize`): it has no gradients "
                         f"to explain; explain its float run, {cfg['quantization']['source_run']}")
    target = resolve_target(args.target, info.classes)
    try:
        x = prepare(image, cfg, info.size, info.channels, args.invert)[None]
    except OSError as e:  # PIL cannot identify / decode the file
        raise CLIError(f"cannot read {image} as an image (png, jpg, bmp, ...)") from e
    x = x.astype(next(iter(model.parameters()))._data.dtype)
    if heatmap:
        with no_grad():
            scores = model(Tensor._make(x))._data[0].astype(np.float64)
        z = np.exp(scores - scores.max())
        probs = z / z.sum()
        pred = int(probs.argmax())
        target = pred if target is None else target
        name = info.classes[target]
        try:
            if args.method == "gradcam":
                layer = args.layer or last_conv(model)
                heat = grad_cam(model, x, layer, target=target)[0]
                kind = type(model.get_submodule(layer)).__name__
                label, bar, where = "Grad-CAM", "Grad-CAM", f"at layer {layer} ({kind})"
            else:
                layer, label, where = "input", "saliency", "gradient of the score w.r.t. the input"
                bar = "|d score / d pixel|"
                heat = saliency_map(model, x, target=target)[0]
        except ValueError as e:  # e.g. --layer names a dense layer: no map to draw
            raise ValueError(str(e).removeprefix("grad_cam: ")) from None
        title = f"{label} for class {name!r} (p = {_p(probs[target])})\n{where}"
        if target != pred:
            title += f"; the model predicts {info.classes[pred]!r} (p = {_p(probs[pred])})"
        if not heat.any():  # say so, or the all-blue picture looks like a bug
            title += "\n(the map is 0 everywhere: nothing here raises this class's score)"
        # show the image as the model saw it (de-normalised), so inversion is visible too
        mean = np.asarray(cfg["mean"]).reshape(-1, 1, 1)
        std = np.asarray(cfg["std"]).reshape(-1, 1, 1)
        shown = np.clip(x[0] * std + mean, 0, 1)
        path = args.out or str(image.with_suffix("")) + "_explain.png"
        viz.save_explanation(shown, heat, path, title=title, heat_label=label, bar_label=bar,
                             scale=args.scale)
        print(f"wrote {path}: {args.method} at {layer} for class {name!r} "
              f"(index {target}, p = {_p(probs[target])})")
    if args.feature_maps:
        from ..analysis.feature_maps import feature_maps, layer_types

        viz.save_feature_maps(feature_maps(model, x), args.feature_maps,
                              title=f"activation maps of {image.name}",
                              layer_types=layer_types(model),
                              classes=None if segment else info.classes)
        print(f"wrote {args.feature_maps}: activation maps of every layer")
    if args.filters:
        from ..analysis.feature_maps import layer_filters, resolve_layer

        # --layer's filters when it is a conv, else the first conv's (the usual picture)
        chosen = resolve_layer(model, args.layer) if args.layer else None
        w = getattr(chosen, "weight", None)
        conv = args.layer if w is not None and w.ndim == 4 else first_conv(model)
        viz.save_filter_grid(layer_filters(model, conv), args.filters)
        print(f"wrote {args.filters}: filters of {conv}")
    return 0
