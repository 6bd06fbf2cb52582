"""Run every benchmark of this folder in sequence, each in its own process (``make bench``).

    python benchmarks/run_all.py [--only conv,models] [--repeats N] [--list] [--dry-run]

Each module prints its own Markdown tables (ratio = torch time / convnet time; above 1 means
convnet is faster); this script adds a header and the wall time per module, runs the remaining
modules when one fails, and exits non-zero if any failed. ``--repeats`` is passed to every
module (each has its own default: 7 to 30 pairs). The full set takes tens of minutes on a
2-core machine; ``--only`` picks some, ``--repeats 3`` gives rough numbers quickly.
Results recorded so far are in ``BENCHMARKS.md`` and ``benchmarks/results_*.md``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> what it measures; every benchmark script of this folder, in the order they run
BENCHMARKS = {
    "conv": "conv2d forward+backward on real network shapes",
    "pool_norm": "pooling and normalisation layers",
    "mlp": "MLP training step and autograd overhead per op",
    "models": "model zoo: inference and one training step at batch 128",
    "analysis": "Grad-CAM, saliency, a classic filter, summary()",
    "training_loop": "Trainer + DataLoader overhead against a bare loop",
    "backend_norm": "batch-norm kernels: numba, NumPy, torch",
    "backend_pool": "pooling kernels: numba, NumPy, torch",
    "backend_activation": "ReLU kernels: numba, NumPy, torch",
    "backend_depthwise": "depthwise 3x3 conv: numba, NumPy conv path, torch",
    "backend_winograd": "Winograd F(2x2,3x3) forward study: stages, im2col path, torch",
    "backend_global_optim": "global avg pooling kernels, SGD/Adam steps: numba, NumPy, torch",
    "detection_train": "detectors: a 200-step training probe, images/s and COCO mAP",
    "distill_fashion": "distillation: LeNet-5 from a teacher vs hard labels, 3 seeds, Fashion-MNIST",
    "onnx_inference": "inference: convnet vs onnxruntime, float32 and int8 (QDQ export)",
    "nas_strategies": "NAS: strategies on the benchmark table (10 seeds), DARTS placed against it",
    "distributed_scaling": "data-parallel training over MPI: 1 vs 2 ranks, convnet vs torch DDP",
}


def commands(names: list[str], repeats: int | None) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` for each benchmark: ``python -m benchmarks.<name> [--repeats N]``."""
    extra = ["--repeats", str(repeats)] if repeats is not None else []
    return [(n, [sys.executable, "-m", f"benchmarks.{n}", *extra]) for n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated names (see --list)")
    ap.add_argument("--repeats", type=int, default=None, help="timed pairs per case")
    ap.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    if args.list:
        for name, what in BENCHMARKS.items():
            print(f"{name:20s} {what}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"--only: unknown benchmark {', '.join(unknown)}; expected names from: "
                 f"{', '.join(BENCHMARKS)}")
    if args.repeats is not None and args.repeats < 1:
        ap.error(f"--repeats: expected a positive integer, got {args.repeats}")
    failed = []
    for name, cmd in commands(names, args.repeats):
        if args.dry_run:
            print(" ".join(cmd))
            continue
        print(f"\n## benchmarks.{name}: {BENCHMARKS[name]}\n", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        print(f"\n({name}: {time.perf_counter() - start:.0f} s, exit code {rc})", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
