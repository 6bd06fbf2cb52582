"""Search strategies on the shipped NAS benchmark table, and DARTS placed against it.

    python benchmarks/nas_strategies.py                      # table comparison + DARTS 1st/2nd order
    python benchmarks/nas_strategies.py --skip-darts         # the table comparison alone (seconds)
    python benchmarks/nas_strategies.py --darts-orders 2 --darts-minutes 15
    python benchmarks/nas_strategies.py --only-fidelity        # partial/shared estimates vs the table

Part 1: random search, regularized evolution and REINFORCE each make 100 queries of the
table (``convnet.nas.bench``) for 10 seeds; the table gives, per strategy, the mean best
validation accuracy, the mean distance to the table's optimum in points, and how many seeds
came within 0.5 points. Part 2: DARTS searches the same cell space (a supernet over the
table's ops) on the table protocol's 4,000 training images, split in halves for the weight
and architecture steps, for ``--darts-epochs`` epochs (the first ``--darts-warmup`` train the weights only) or
``--darts-minutes``; its derived cell
(by DARTS' argmax of alpha, and by perturbation-based selection) is looked up in the table (validation and test accuracy, rank among the 729 cells).
Between them, the fidelity of cheap estimates: how well fewer epochs, a power-law
extrapolation of the learning curve, and one-shot weight sharing rank the table's cells.

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
              f"| {100 * tr[min(19, len(tr) - 1)]:.2f} / {100 * tr[min(49, len(tr) - 1)]:.2f} / "
              f"{100 * tr[-1]:.2f} |")
    print()
    return res


def spearman(a, b) -> float:
    """Rank correlation (average ranks for ties)."""
    import numpy as np

    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            tied = v == value
            r[tied] = r[tied].mean()
        return r
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def fidelity(table, shared_steps: int, shared_cells: int) -> None:
    """How well cheaper estimates rank the table's cells (Spearman against the final epoch)."""
    import numpy as np

    from convnet.nas import estimate

    curves = np.array([table.query(table.space.from_index(i))["val_curve"] for i in range(len(table))])
    final = curves[:, -1]
    learned = final > 0.15  # leave out the cells whose output is cut off (all at chance)
    print("### How well cheap estimates rank the cells\n")
    print(f"Spearman rank correlation with the validation accuracy after {table.epochs} epochs, "
          f"over the {int(learned.sum())} cells that learn (the {int((~learned).sum())} cells "
          "whose output is cut off by `none` edges sit at chance and are left out).\n")
    print("| estimate | cost per cell | Spearman |")
    print("|---|---|---|")
    for e in range(1, table.epochs):
        print(f"| partial training, {e} epoch(s) | {e}/{table.epochs} of the table's | "
              f"{spearman(curves[learned, e - 1], final[learned]):.3f} |")
    extra = [estimate.extrapolate(c[:3], table.epochs) for c in curves[learned]]
    print(f"| 3 epochs + power-law extrapolation to {table.epochs} | 3/{table.epochs} | "
          f"{spearman(extra, final[learned]):.3f} |")
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_nas_table import make_subset

    subset = ROOT / "runs" / "nas-table-parts" / "subset.npz"
    subset.parent.mkdir(parents=True, exist_ok=True)
    splits = make_subset(subset)
    ws = estimate.WeightSharing(splits["train"], splits["val"], steps=shared_steps, seed=0,
                                val_limit=1000)
    t0 = time.perf_counter()
    ws.train_supernet(space=table.space)
    train_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(np.flatnonzero(learned), size=min(shared_cells, int(learned.sum())),
                             replace=False))
    t0 = time.perf_counter()
    scores = [ws(table.space, table.space.from_index(int(i))).score for i in idx]
    per_cell = (time.perf_counter() - t0) / len(idx)
    print(f"| weight sharing: supernet {shared_steps} batches ({train_s:.0f} s, once), then "
          f"inherited weights | {per_cell:.2f} s (scoring {len(idx)} random cells) | "
          f"{spearman(scores, final[idx]):.3f} |")
    top = set(idx[np.argsort(final[idx])[-10:]].tolist())
    picked = set(idx[np.argsort(scores)[-10:]].tolist())
    print(f"\nWeight sharing's top 10 of those {len(idx)} cells holds {len(top & picked)} of "
          "the table's top 10.\n")


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
    xv, yv = make_subset(subset)["val"]
    t1 = time.perf_counter()
    by_perturbation, _ = darts.supernet.derive_by_perturbation(
        [(xv[i:i + 500], yv[i:i + 500]) for i in range(0, len(xv), 500)])
    perturb_s = time.perf_counter() - t1
    trajectory = [(h["epoch"] + 1, table.rank(h["arch"]), 100 * table.query(h["arch"])["val_accuracy"])
                  for h in darts.history]
    rows = []
    for rule, arch, extra in (("argmax alpha", darts.derive(), 0.0),
                              ("perturbation", by_perturbation, perturb_s)):
        q = table.query(arch)
        rows.append({"order": order, "rule": rule, "epochs": done, "warmup": warmup,
                     "seconds": seconds + extra, "arch": arch, "val": q["val_accuracy"],
                     "test": q["test_accuracy"], "rank": table.rank(arch),
                     "percentile": table.percentile(arch), "trajectory": trajectory})
    return rows


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
    ap.add_argument("--skip-fidelity", action="store_true")
    ap.add_argument("--shared-steps", type=int, default=3000)
    ap.add_argument("--shared-cells", type=int, default=200)
    ap.add_argument("--only-fidelity", action="store_true")
    ap.add_argument("--repeats", type=int, default=None, help="(run_all.py passes it; unused)")
    args = ap.parse_args(argv)
    table = bench.load()
    print(f"CPU: {_cpu()}; threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}\n")
    if args.only_fidelity:
        fidelity(table, args.shared_steps, args.shared_cells)
        return 0
    table_comparison(table, args.seeds, args.queries)
    if not args.skip_fidelity:
        fidelity(table, args.shared_steps, args.shared_cells)
    if args.skip_darts:
        return 0
    print("### DARTS on the table's cell space, placed against the table\n")
    print("| DARTS | selection | epochs (warm-up) | search time | derived cell | table val % | test % | rank of 729 | percentile |")
    print("|---|---|---|---|---|---|---|---|---|")
    trajectories = {}
    for order in [int(o) for o in args.darts_orders.split(",")]:
        for r in run_darts(table, order, args.darts_epochs, args.darts_minutes,
                           args.darts_alpha_lr, 0, args.darts_warmup):
            trajectories[order] = r["trajectory"]
            print(f"| order {r['order']} | {r['rule']} | {r['epochs']} ({r['warmup']}) | {r['seconds'] / 60:.1f} min | "
                  f"{'|'.join(v.replace('nor_conv_3x3', 'conv3').replace('skip_connect', 'skip') for v in r['arch'].values())} | "
                  f"{100 * r['val']:.2f} | {100 * r['test']:.2f} | {r['rank']} | {r['percentile']:.1f} |",
                  flush=True)
    print("\nThe argmax cell's table rank (val %) after each epoch, every 5th:\n")
    for order, traj in trajectories.items():
        print(f"- order {order}: " + ", ".join(f"{e}: {rank} ({acc:.1f})" for e, rank, acc in traj
                                               if e % 5 == 0 or e == 1))
    return 0


def _cpu() -> str:
    from convnet.cli.info_cmd import _cpu_model

    return _cpu_model()


if __name__ == "__main__":
    raise SystemExit(main())
