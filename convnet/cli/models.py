"""``convnet models``: list the model names ``--model`` accepts."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list available models", description=__doc__)
    p.add_argument("--params", action="store_true",
                   help="also build each model (1 input channel, 10 classes) and count its "
                        "parameters")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import models

    for name in models.list_models():
        if args.params:
            try:
                m = models.create(name)
                print(f"{name:<24}{sum(p.data.size for p in m.parameters()):>12,} parameters")
            except Exception as e:  # a model that needs other options still gets listed
                print(f"{name:<24}{'':>12} ({type(e).__name__}: {e})")
        else:
            print(name)
    return 0
