"""``convnet summary MODEL --input C,H,W``: layer table with shapes, parameters, MACs and
receptive fields.

MODEL is a zoo name (``convnet models`` lists them) or the folder of a ``convnet train`` run
(its input size and classes are read from the run's config).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from .train import _model_option

    p = subparsers.add_parser("summary", help="layer table: shapes, params, MACs, receptive fields",
                              description=__doc__)
    p.add_argument("model", nargs="?", help="a model name (e.g. lenet5, resnet20) or a "
                   "training-run folder")
    p.add_argument("--model", dest="model_flag", metavar="MODEL",
                   help="the same, spelled as `convnet train` takes it")
    p.add_argument("--input", default=None, metavar="C,H,W",
                   help="one sample's shape, e.g. 3,32,32 (default 1,28,28, or the run's)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes for a zoo model (default 10; detectors: 11, the background "
                        "and ten digits)")
    p.add_argument("--model-option", action="append", type=_model_option, metavar="KEY=VALUE",
                   help="option of a zoo model (repeatable), e.g. small_input=true, as "
                        "`convnet train` takes")
    p.add_argument("--batch-size", type=int, default=1, help="traced batch size (default 1)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``'3,32,32'`` (or ``3x32x32``) -> ``(3, 32, 32)``: one sample's channels, height, width,
    with a one-line error for anything else."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--input must be C,H,W integers such as 1,28,28; got {text!r}") from None
    if len(shape) != 3:
        batch = " (one sample: the batch is --batch-size)" if len(shape) == 4 else ""
        raise ValueError(f"--input needs C,H,W such as 1,28,28{batch}; got {text}")
    if any(v < 1 for v in shape):
        raise ValueError(f"--input must be C,H,W positive integers such as 1,28,28; got {text}")
    return shape


def load_model(spec: str, input_shape: tuple | None, num_classes: int, options: dict | None = None):
    """(model, input_shape) from a run folder or a zoo name (adapted to ``input_shape`` as
    ``convnet train`` would, see :func:`convnet.models.fit_input`)."""
    path = Path(spec)
    if path.is_dir():
        from .evaluate import load_run

        cfg, info, model = load_run(path)
        if input_shape is None:
            input_shape = (info.channels, info.size, info.size)
        return model, input_shape
    if any(sep in spec for sep in ("/", "\\")) or spec.startswith("."):
        raise FileNotFoundError(f"{spec}: no such training-run folder (give a folder written by "
                                "`convnet train --out`, or a model name)")
    from .. import models

    if models.model_info(spec).family == "Detection":
        # detectors are shown as `convnet train --task detect` builds them: 64x64 canvases,
        # labels 1..10 after the background 0
        input_shape = input_shape or (1, 64, 64)
        num_classes = num_classes or 11
    input_shape = input_shape or (1, 28, 28)
    num_classes = num_classes or 10
    try:
        opts, added = models.fit_input(spec, input_shape[1:], **(options or {}))
    except models.InputSizeError as e:
        raise ValueError(e.message(cli=True)) from None
    if added:
        how = " ".join(f"--model-option {k}={json.dumps(v)}" for k, v in added.items())
        print(f"note: {spec} is shown with {how}, as `convnet train` builds it for "
              f"{input_shape[1]}x{input_shape[2]} images", file=sys.stderr)
    model = models.create(spec, num_classes=num_classes, in_channels=input_shape[0], **opts)
    return model, input_shape


def run(args) -> int:
    if (args.model is None) == (args.model_flag is None):
        raise ValueError("summary: give one model, as `convnet summary resnet20` or "
                         "`convnet summary --model resnet20` (or a run folder)")
    args.model = args.model or args.model_flag
    from ..analysis import summary

    shape = parse_shape(args.input) if args.input else None
    options = dict(args.model_option or [])
    if options and Path(args.model).is_dir():
        raise ValueError("--model-option applies to zoo models; a run folder keeps its own")
    model, shape = load_model(args.model, shape, args.num_classes, options)
    from ..quantization.report import bytes_table, is_quantized, print_quantized_summary

    is_run = Path(args.model).is_dir()
    if is_quantized(model):  # a `convnet quantize` folder: dtypes, bytes and qparams per layer
        return print_quantized_summary(model, shape, args.model if is_run else None, args.json)
    s = summary(model, shape, batch_size=args.batch_size)
    if args.json:
        d = s.to_dict()
        if is_run:
            from ..quantization.serialize import quantized_size_bytes

            d["bytes_per_layer"] = quantized_size_bytes(model)
        print(json.dumps(d, indent=2, default=list))
    else:
        print(s)
        if is_run:  # what the weights file holds, to compare with a quantized run's
            print(bytes_table(model, "Stored bytes per layer"))
    return 0
