"""Knowledge distillation on Fashion-MNIST (not a test): for each seed, a LeNet-5 student
distilled from a teacher run (``convnet distill``) against the same student trained on the
hard labels alone, then a Markdown table of test accuracies and their difference.

    python benchmarks/distill_fashion.py --teacher runs/fashion-simple_cnn-10ep --epochs 10
    python benchmarks/distill_fashion.py --teacher RUN --epochs 2 --limit-train 2000 --seeds 0

Both students go through ``convnet distill`` on the teacher's data, transforms and
validation split, with identical epochs, optimizer, schedule and seed; the hard-label one has
``--alpha 0``, which is exactly ``convnet train`` (the teacher is not consulted; see
tests/cli/test_distill_cli.py). Without ``--teacher`` a ``simple_cnn`` teacher is trained
first (``--teacher-epochs``, kept in ``--out``/teacher and reused when finished). Runs are
kept under ``--out`` and resumed when the script is started again with the same settings.
Fashion-MNIST is read from /usr/share/datasets/fashion-mnist (or the teacher's --data-dir).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from convnet.cli.main import main as cli  # noqa: E402


def _run(argv: list[str], out: Path) -> None:
    """``convnet <argv> --out out``: resumed when ``out`` holds a run of the same settings,
    else started afresh."""
    if (out / "checkpoint.safetensors").is_file():
        if cli([*argv, "--out", str(out), "--resume"]) == 0:
            return
        print(f"(settings changed: {out} is trained again)", flush=True)
    if cli([*argv, "--out", str(out), "--overwrite"]) != 0:
        raise SystemExit(f"distill_fashion: `convnet {' '.join(argv)}` failed")


def _teacher(args, base: Path) -> Path:
    if args.teacher:
        return Path(args.teacher)
    out = base / "teacher"
    argv = ["train", "--model", "simple_cnn", "--dataset", "fashion-mnist", "--epochs",
            str(args.teacher_epochs), "--batch-size", "128", "--no-progress"]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    _run(argv, out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", help="a Fashion-MNIST classification run (default: train a "
                                     "simple_cnn teacher first)")
    p.add_argument("--epochs", type=int, default=10, help="student epochs (default 10)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    p.add_argument("--student", default="lenet5")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=None, help="default: convnet train's")
    p.add_argument("--scheduler", default="cosine")
    p.add_argument("--limit-train", type=int, default=None, help="first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="first N test images")
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/distill_fashion", help="where the runs are kept")
    p.add_argument("--repeats", type=int, default=None,
                   help="accepted from `make bench` (run_all passes it to every module); unused")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    base = Path(args.out)
    teacher = _teacher(args, base)
    common = ["--teacher", str(teacher), "--model", args.student, "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--optimizer", args.optimizer,
              "--scheduler", args.scheduler, "--temperature", str(args.temperature),
              "--no-progress"]
    for flag in ("lr", "limit_train", "limit_test", "data_dir"):
        if getattr(args, flag) is not None:
            common += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    rows, teacher_acc, times = [], None, {}
    for seed in seeds:
        acc = {}
        for kind, alpha in (("hard", 0.0), ("distilled", args.alpha)):
            out = base / f"{args.student}-seed{seed}-{kind}"
            start = time.perf_counter()
            _run(["distill", *common, "--seed", str(seed), "--alpha", str(alpha)], out)
            times[(seed, kind)] = time.perf_counter() - start
            m = json.loads((out / "metrics.json").read_text())
            acc[kind], teacher_acc = m["test_accuracy"], m["teacher_test_accuracy"]
        rows.append((seed, acc["hard"], acc["distilled"]))

    tcfg = json.loads((teacher / "config.json").read_text())
    print(f"\n### Distillation on {tcfg['dataset']}: {args.student} student, "
          f"{tcfg['model']} teacher (test accuracy {teacher_acc:.4f})\n")
    print(f"{args.epochs} epoch{'' if args.epochs == 1 else 's'}, {args.optimizer}, {args.scheduler} schedule, batch "
          f"{args.batch_size}, T = {args.temperature}, alpha = {args.alpha}; "
          f"training images: {args.limit_train or 'all'}, test images: "
          f"{args.limit_test or 'all'}\n")
    print("| seed | hard labels | distilled | difference (points) |")
    print("|---:|---:|---:|---:|")
    for seed, hard, dist in rows:
        print(f"| {seed} | {hard:.4f} | {dist:.4f} | {100 * (dist - hard):+.2f} |")
    diffs = [100 * (d - h) for _, h, d in rows]
    spread = f" (sd {statistics.stdev(diffs):.2f})" if len(diffs) > 1 else ""
    print(f"| mean | {statistics.mean(h for _, h, _ in rows):.4f} | "
          f"{statistics.mean(d for _, _, d in rows):.4f} | "
          f"{statistics.mean(diffs):+.2f}{spread} |")
    print("\nwall time per run (s): " + ", ".join(f"seed {s} {k} {t:.0f}"
                                                  for (s, k), t in times.items()))
    results = {"teacher": str(teacher), "teacher_test_accuracy": teacher_acc,
               "settings": {k: v for k, v in vars(args).items() if k != "repeats"},
               "per_seed": [{"seed": s, "hard": h, "distilled": d} for s, h, d in rows],
               "mean_difference_points": statistics.mean(diffs)}
    (base / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
