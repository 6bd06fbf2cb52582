"""The ``convnet`` command line (also ``python -m convnet``).

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which adds an
``argparse`` sub-parser and sets ``func`` (called with the parsed namespace, returning an exit
code). To add a subcommand, write such a module and list it in :data:`SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

__all__ = ["SUBCOMMANDS", "CLIError", "build_parser", "main", "add_threads_option"]

# Modules providing add_parser(subparsers); order is the order in `convnet --help`.
SUBCOMMANDS = [
    "convnet.cli.train",
    "convnet.cli.distill",
    "convnet.cli.search_cmd",
    "convnet.cli.evaluate",
    "convnet.cli.predict",
    "convnet.cli.quantize_cmd",
    "convnet.cli.export_cmd",
    "convnet.cli.models",
    "convnet.cli.summary_cmd",
    "convnet.cli.explain_cmd",
    "convnet.cli.filter_cmd",
    "convnet.cli.explore_cmd",
    "convnet.cli.info_cmd",
]


# Examples shown at the end of each command's --help. They run as written on the default
# model and data (tests/cli/test_cli_robust.py runs them), given a digit.png in the folder.
EXAMPLES = {
    "train": ["convnet train                          # LeNet-5 on the bundled digits (~15 s)",
              "convnet train --epochs 3 --out runs/digits",
              "convnet train --out runs/digits --resume --epochs 5   # train it further",
              "convnet train --model-option pooling=max --epochs 2 --out runs/maxpool"],
    "distill": ["convnet distill --teacher runs/digits --model lenet5 --model-option pooling=max "
                "--epochs 2 --out runs/student"],
    "search": ["convnet search --space cell --dataset mnist-bundled --budget 10s --epochs 0.2 "
               "--train-limit 2000 --out runs/search --overwrite",
               "convnet train --arch runs/search/best.json --epochs 1 --out runs/searched"],
    "evaluate": ["convnet evaluate runs/digits", "convnet evaluate runs/digits --json"],
    "predict": ["convnet predict runs/digits digit.png", "convnet predict runs/digits . --json"],
    "quantize": ["convnet quantize runs/digits --out runs/digits-int8   # int8, calibrated on "
                 "1000 images",
                 "convnet evaluate runs/digits-int8"],
    "export": ["convnet export runs/digits --format onnx",
               "convnet export runs/digits --format safetensors --out digits.safetensors"],
    "models": ["convnet models"],
    "summary": ["convnet summary lenet5", "convnet summary resnet20 --input 3,32,32",
                "convnet summary runs/digits"],
    "explain": ["convnet explain runs/digits digit.png --out cam.png",
                "convnet explain runs/digits digit.png --method saliency --out saliency.png"],
    "filter": ["convnet filter digit.png --kernel sobel --out edges.png",
               "convnet filter digit.png --kernel list"],
    "explore": ["convnet explore runs/digits --export explorer-site   # a static site, no server"],
    "info": ["convnet info", "convnet info --json"],
}

# A leading Python name in an exception message ("load_image: ...", "create(): ...") means
# nothing to someone at the command line; the CLI drops it.
_INTERNAL_PREFIX = re.compile(r"^(?:[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[\w.]+\(\))\s*:\s+")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``: BLAS threads for commands that compute (see :mod:`convnet.cli._blas`)."""
    parser.add_argument("--threads", default="auto", metavar="N|auto",
                        help="threads for matrix multiplies (default auto: 1 on <= 2 cores or when "
                             "the cores are busy, else OpenBLAS's default)")


def _retain_memory() -> None:
    """Keep freed memory for reuse in commands that compute: page faults on fresh arrays cost
    a ResNet-20 Fashion-MNIST epoch 8% (250 against 231 s; :mod:`convnet.kernels.allocator`).
    The CLI owns its process, so it may tune the allocator; ``CONVNET_RETAIN_MEMORY=0`` leaves
    glibc's defaults."""
    if os.environ.get("CONVNET_RETAIN_MEMORY", "1") != "0":
        from ..kernels.allocator import retain_freed_memory

        retain_freed_memory()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convnet",
        description="Train, evaluate and use convolutional networks written on NumPy.",
        epilog="Run `convnet <command> --help` for a command's options.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # one broken optional command must not take the others down
            print(f"convnet: warning: subcommand module {name} unavailable ({e})", file=sys.stderr)
            continue
        module.add_parser(sub)
    for name, lines in EXAMPLES.items():
        if name in sub.choices:
            p = sub.choices[name]
            p.formatter_class = argparse.RawDescriptionHelpFormatter
            p.description = (p.description or "").replace("``", "`")
            p.epilog = "examples:\n" + "\n".join("  " + line for line in lines)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``convnet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded by commands that log it
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        # an MPI rank takes one thread itself (convnet.cli._distributed); a launcher computes nothing
        ranks = getattr(args, "launch", None) is not None or getattr(args, "distributed", False)
        if hasattr(args, "threads"):
            if not (ranks and args.threads == "auto"):
                from ._blas import configure

                note = configure(args.threads)
                if note:
                    print(note, file=sys.stderr)
            _retain_memory()
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return status
    except KeyboardInterrupt:
        print(f"\nconvnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`convnet models | head`): stop quietly, as Unix tools do,
        # and keep Python from complaining when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
    except (CLIError, FileNotFoundError, ValueError, TypeError, KeyError, OSError) as e:
        from ._distributed import quiet, stop_job, where

        msg = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        if not quiet():  # in an MPI job, rank 0 speaks for errors that every rank meets
            print(f"convnet {args.command}{where()}: error: {_INTERNAL_PREFIX.sub('', msg)}",
                  file=sys.stderr)
        stop_job(2)  # once the ranks have talked, one failing rank stops them all
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
