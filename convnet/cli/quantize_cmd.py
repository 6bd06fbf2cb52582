"""``convnet quantize RUN --out RUN-int8``: int8 post-training quantization of a trained
classifier (or quantization-aware fine-tuning with ``--qat EPOCHS``).

The model is wrapped in quantize/dequantize stubs; every conv -> batch norm [-> ReLU],
conv -> ReLU and linear -> ReLU in an nn.Sequential is fused into one layer; observers
record activation ranges on N training images; then weights become int8 (per channel) and
activations uint8, computed with integer arithmetic. RUN-int8 holds config.json (the recipe),
model.safetensors (int8) and metrics.json (float and int8 test accuracy, weights-file bytes
and their ratio, inference time per image); `convnet evaluate`, `predict` and `summary` take
it like any run folder.
"""
from __future__ import annotations

from pathlib import Path


def add_parser(subparsers) -> None:
    from .main import add_threads_option
    from ..quantization.pipeline import QCONFIGS

    p = subparsers.add_parser("quantize", help="int8 quantization of a trained run "
                              "(post-training or QAT)", description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` run (a classifier)")
    p.add_argument("--out", required=True, help="folder to write the quantized run to")
    p.add_argument("--calibrate", type=int, default=1000, metavar="N",
                   help="training images the observers see (default 1000)")
    p.add_argument("--qconfig", choices=QCONFIGS, default="x86",
                   help="quantization preset, as torch's get_default_qconfig (default x86: "
                        "per-channel int8 weights, histogram-calibrated uint8 activations)")
    p.add_argument("--qat", type=int, default=0, metavar="EPOCHS",
                   help="fine-tune with fake quantization for EPOCHS epochs before converting "
                        "(default 0: post-training quantization only)")
    p.add_argument("--qat-lr", type=float, default=1e-3,
                   help="SGD learning rate of --qat fine-tuning (default 1e-3, momentum 0.9)")
    p.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="do not fuse conv/bn/relu and linear/relu (batch norm then cannot be "
                        "quantized: for models without it)")
    p.add_argument("--batch-size", type=int, default=256, help="default 256")
    p.add_argument("--data-dir", help="where the dataset lives now (default: as when trained)")
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar during --qat (by default one is drawn only when stderr "
                        "is a terminal)")
    add_threads_option(p)
    p.set_defaults(func=run)


def _flush_print(line: str) -> None:
    print(line, flush=True)  # a redirected log shows each step as it ends


def run(args) -> int:
    from ..quantization.pipeline import quantize_run

    progress = "auto" if args.progress is None else bool(args.progress)
    quantize_run(Path(args.run_dir), Path(args.out), calibrate=args.calibrate,
                 qconfig=args.qconfig, qat_epochs=args.qat, fuse=args.fuse,
                 batch_size=args.batch_size, data_dir=args.data_dir, overwrite=args.overwrite,
                 qat_lr=args.qat_lr, progress=progress, log=_flush_print)
    return 0
