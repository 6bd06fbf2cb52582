"""Search strategies on the shipped NAS benchmark table, and DARTS placed against it.

    python benchmarks/nas_strategies.py                      # table comparison + DARTS 1st/2nd order
    python benchmarks/nas_strategies.py --skip-darts         # the table comparison alone (seconds)
    python benchmarks/nas_strategies.py --darts-orders 2 --darts-minutes 15

Part 1: random search, regularized evolution and REINFORCE each make 100 queries of the
table (``convnet.nas.bench``) for 10 seeds; the table gives, per strategy, the mean best
validation accuracy, the mean distance to the table's optimum in points, and how many seeds
came within 0.5 points. Part 2: DARTS searches the same cell space (a supernet over the
table's ops) on the table protocol's 4,000 training images, split in halves for the weight
and architecture steps, for ``--darts-epochs`` epochs (the first ``--darts-warmup`` train the weights only) or
``--darts-minutes``; its derived cell
is looked up in the table (validation and test accuracy, rank among the 729 cells).

Markdown goes to stdout (copied into ``benchmarks/results_nas.md``). Needs the table's data
subset for part 2: ``runs/nas-table-parts/subset.npz``, made by ``scripts/make_nas_table.py``
from Fashion-MNIST on first use.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convnet.nas import bench  # noqa: E402
from convnet.nas.strategies import RandomSearch, RegularizedEvolution, Reinforce  # noqa: E402


def table_comparison(table, seeds: int, queries: int) -> dict:
    strategies = {
        "random": lambda s, seed: RandomSearch(s, seed=seed),
        "evolution (P=20, S=5)": lambda s, seed: RegularizedEvolution(s, seed=seed),
        "reinforce (categorical)": lambda s, seed: Reinforce(s, seed=seed),
        "reinforce (rnn)": lambda s, seed: Reinforce(s, seed=seed, controller="rnn"),
    }
    t0 = time.perf_counter()
    res = bench.compare(strategies, table, seeds=range(seeds), queries=queries)
    seconds = time.perf_counter() - t0
    arch, opt = table.optimum()
    print(f"### Strategies on the table ({seeds} seeds x {queries} queries, {seconds:.1f} s in all)\n")
    print(f"Table optimum: validation {100 * opt:.2f} % ({bench.table_space().name} "
          f"{'|'.join(arch.values())}); median cell {100 * float(sorted(table.val)[len(table) // 2]):.2f} %.\n")
    print("| strategy | mean best val % | mean regret (points) | seeds within 0.5 | best after 20 / 50 / 100 queries |")
    print("|---|---|---|---|---|")
    for name, r in res.items():
        tr = r["trajectory"]
        print(f"| {name} | {100 * r['mean']:.2f} | {r['regret_mean']:.2f} | {r['within_0.5']}/{seeds} "
              f"| {100 * tr[19]:.2f} / {100 * tr[49]:.2f} / {100 * tr[-1]:.2f} |")
    print()
    return res


def run_darts(table, order: int, epochs: int, minutes: float, alpha_lr: float, seed: int,
              warmup: int = 0) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_nas_table import make_subset

    from convnet.nas.darts import DARTS

    subset = ROOT / "runs" / "nas-table-parts" / "subset.npz"
    subset.parent.mkdir(parents=True, exist_ok=True)
    x, y = make_subset(subset)["train"]
    half = len(x) // 2
    batch = bench.PROTOCOL["batch_size"]

    def batches(xs, ys, rng):
        order_ = rng.permutation(len(xs))
        for i in range(0, len(xs) - batch + 1, batch):
            idx = order_[i:i + batch]
            yield xs[idx], ys[idx]

    darts = DARTS(bench.table_space(), order=order, alpha_lr=alpha_lr, seed=seed,
                  warmup_epochs=warmup)
    rng = np.random.default_rng(seed)
    t0, deadline = time.perf_counter(), time.perf_counter() + 60 * minutes
    done = 0
    for epoch in range(epochs):
        darts.search(list(batches(x[:half], y[:half], rng)), list(batches(x[half:], y[half:], rng)),
                     epochs=epoch + 1)
        done = epoch + 1
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - t0
    arch = darts.derive()
    q = table.query(arch)
    return {"order": order, "epochs": done, "warmup": warmup, "seconds": seconds, "arch": arch,
            "val": q["val_accuracy"], "test": q["test_accuracy"], "rank": table.rank(arch),
            "percentile": table.percentile(arch)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--skip-darts", action="store_true")
    ap.add_argument("--darts-orders", default="1,2")
    ap.add_argument("--darts-epochs", type=int, default=60)
    ap.add_argument("--darts-warmup", type=int, default=15,
                    help="epochs that train the supernet weights before alpha moves")
    ap.add_argument("--darts-minutes", type=float, default=14.0,
                    help="stop after the epoch that passes this many minutes")
    ap.add_argument("--darts-alpha-lr", type=float, default=3e-3)
    ap.add_argument("--repeats", type=int, default=None, help="(run_all.py passes it; unused)")
    args = ap.parse_args(argv)
    table = bench.load()
    print(f"CPU: {_cpu()}; threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}\n")
    table_comparison(table, args.seeds, args.queries)
    if args.skip_darts:
        return 0
    print("### DARTS on the table's cell space, placed against the table\n")
    print("| DARTS | epochs (warm-up) | search time | derived cell | table val % | test % | rank of 729 | percentile |")
    print("|---|---|---|---|---|---|---|---|")
    for order in [int(o) for o in args.darts_orders.split(",")]:
        r = run_darts(table, order, args.darts_epochs, args.darts_minutes, args.darts_alpha_lr, 0,
                      args.darts_warmup)
        print(f"| order {r['order']} | {r['epochs']} ({r['warmup']}) | {r['seconds'] / 60:.1f} min | "
              f"{'|'.join(v.replace('nor_conv_3x3', 'conv3').replace('skip_connect', 'skip') for v in r['arch'].values())} | "
              f"{100 * r['val']:.2f} | {100 * r['test']:.2f} | {r['rank']} | {r['percentile']:.1f} |", flush=True)
    return 0


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
