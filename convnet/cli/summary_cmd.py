"""``convnet summary MODEL --input C,H,W``: layer table with shapes, parameters, MACs and
receptive fields.

MODEL is a zoo name (``convnet models`` lists them) or the folder of a ``convnet train`` run
(its input size and classes are read from the run's config).
"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("summary", help="layer table: shapes, params, MACs, receptive fields",
                              description=__doc__)
    p.add_argument("model", help="a model name (e.g. lenet5, resnet20) or a training-run folder")
    p.add_argument("--input", default=None, metavar="C,H,W",
                   help="one sample's shape, e.g. 3,32,32 (default 1,28,28, or the run's)")
    p.add_argument("--num-classes", type=int, default=10, help="classes for a zoo model (default 10)")
    p.add_argument("--batch-size", type=int, default=1, help="traced batch size (default 1)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def parse_shape(text: str) -> tuple[int, ...]:
    """``'3,32,32'`` -> ``(3, 32, 32)`` with a readable error."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--input must be C,H,W integers like 3,32,32, got {text!r}") from None
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise ValueError(f"--input must be C,H,W positive integers like 3,32,32, got {text!r}")
    return shape


def load_model(spec: str, input_shape: tuple | None, num_classes: int):
    """(model, input_shape) from a run folder or a zoo name."""
    path = Path(spec)
    if path.is_dir():
        from .evaluate import load_run

        cfg, info, model = load_run(path)
        if input_shape is None:
            input_shape = (info.channels, info.size, info.size)
        return model, input_shape
    from .. import models

    input_shape = input_shape or (1, 28, 28)
    opts = {}
    if spec.lower().startswith("lenet") and input_shape[-1] != 28:
        opts["input_size"] = input_shape[-1]
    model = models.create(spec, num_classes=num_classes, in_channels=input_shape[0], **opts)
    return model, input_shape


def run(args) -> int:
    from ..analysis import summary

    shape = parse_shape(args.input) if args.input else None
    model, shape = load_model(args.model, shape, args.num_classes)
    s = summary(model, shape, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2, default=list))
    else:
        print(s)
    return 0
