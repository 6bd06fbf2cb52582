"""``convnet models``: the models ``--model`` accepts, with family, parameters and the image
sizes they take.

Nothing is initialised: parameters are counted from a shapes-only build and sizes come from
each model's registered input rule, so the whole zoo lists in under a second.
"""
from __future__ import annotations

import json

SIDE, CHANNELS, CLASSES = 28, 1, 10  # what `convnet train` builds by default (MNIST digits)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="list available models (family, parameters, input sizes)",
        description=__doc__)
    p.add_argument("--names", action="store_true", help="print only the names, one per line")
    p.add_argument("--params", action="store_true",
                   help="accepted for compatibility: parameters are now always shown")
    p.set_defaults(func=run)


def _opts(options: dict) -> str:
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in options.items())


def describe(name: str) -> dict:
    """One row: ``family``, ``parameters`` (as `convnet train` builds the model for 28x28
    grey images and 10 classes; at its default options, ``refused`` set, when it cannot take
    them), ``min_side`` (smallest square side `convnet train` accepts) and ``on_28`` (what
    happens on 28x28 images: ``""`` as is, else the option set or needed)."""
    from .. import models

    row = {"name": name, "family": models.model_info(name).family or "-", "refused": False}
    try:
        opts, added = models.fit_input(name, SIDE)
        rule = models.input_rule(name)
        row["on_28"] = (f"built with {_opts(added)} (stem needs {rule.minimum})"
                        if added and rule else "")
    except models.InputSizeError as e:
        opts, row["refused"] = {}, True
        row["on_28"] = f"needs {_opts(e.fix)}" if e.fix else f"needs {e.minimum} px"
    try:
        row["parameters"] = models.count_parameters(name, CLASSES, CHANNELS, **opts)
    except Exception:  # a model registered with other required options: still listed
        row["parameters"] = None
    row["min_side"] = models.min_input_size(name)
    return row


def run(args) -> int:
    from .. import models

    names = models.list_models()
    if args.names:
        print("\n".join(names))
        return 0
    rows = [describe(n) for n in names]
    print(f"parameters: as `convnet train` builds each model for {SIDE}x{SIDE} images with "
          f"{CHANNELS} channel and {CLASSES} classes")
    print("min side: the smallest square image it takes (input_size and small_input set for it)")
    print()
    print(f"{'model':<20}{'family':<16}{'parameters':>13}{'min side':>10}  on {SIDE}x{SIDE}")
    for r in rows:
        params = f"{r['parameters']:,}" if r["parameters"] is not None else "?"
        params += "*" if r["refused"] else " "
        side = str(r["min_side"]) if r["min_side"] is not None else "-"
        print(f"{r['name']:<20}{r['family']:<16}{params:>13}{side:>10}  {r['on_28']}".rstrip())
    if any(r["refused"] for r in rows):
        print(f"\n* cannot take {SIDE}x{SIDE} images as it is: counted at its default options; "
              "add the --model-option shown")
    return 0
