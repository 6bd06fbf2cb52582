"""Build the NAS benchmark table ``convnet/nas/tables/cell-fm14.json``.

Trains every architecture of ``convnet.nas.bench.table_space()`` (3**6 = 729 NB201 cells)
once, under ``convnet.nas.bench.PROTOCOL``, and writes one row per architecture: the
validation accuracy after each epoch, the test accuracy, parameters, MACs and seconds.

About 13 single-thread seconds per cell on average (the shipped table: 9,500 cell-seconds on
16 Intel Xeon cores, 11 minutes of wall time), so about 80 minutes with 2 workers on a 2-core
machine; ``--workers`` runs cells in parallel processes (one BLAS and
numba thread each). The work is resumable: each finished cell is appended to
``--parts/part-<k>.jsonl`` at once, and a rerun trains only the cells missing there.

Usage::

    python scripts/make_nas_table.py --workers 2                 # all of it, here
    python scripts/make_nas_table.py --limit 3 --out /tmp/t.json # a smoke test
    python scripts/make_nas_table.py --subset subset.npz --workers 16 --parts DIR --no-write
    python scripts/make_nas_table.py --parts DIR                 # merge (and fill gaps)

``--subset`` caches the protocol's images (made from Fashion-MNIST on first use), so the
table can be built on a machine without the dataset.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMBA_NUM_THREADS")}


def make_subset(path: Path | None, data_dir=None) -> dict:
    """The protocol's train/val/test arrays (cached in ``path`` when given)."""
    import numpy as np

    from convnet.nas import bench, data

    if path is not None and path.is_file():
        z = np.load(path)
        return {k: (z[f"{k}_x"], z[f"{k}_y"]) for k in ("train", "val", "test")}
    p = bench.PROTOCOL
    d = data.load(p["dataset"], val_split=0.1, seed=p["seed"], data_dir=data_dir,
                  downsample_by=p["downsample_by"])
    splits = {"train": data.subset(d["train"], p["train_images"], p["seed"]),
              "val": data.subset(d["val"], p["val_images"], p["seed"] + 1),
              "test": data.subset(d["test"], p["test_images"], p["seed"] + 2)}
    if path is not None:
        np.savez_compressed(path, **{f"{k}_{j}": v[i] for k, v in splits.items()
                                     for i, j in enumerate("xy")})
    return splits


def evaluate_cell(index: int, splits: dict) -> list:
    """One row: ``[val_curve, test_accuracy, params, macs, seconds]``."""
    from convnet.nas import bench, estimate
    from convnet.nas.space import count_macs
    from convnet.random import manual_seed

    p, space = bench.PROTOCOL, bench.table_space()
    arch = space.from_index(index)
    est = estimate.PartialTraining(splits["train"], splits["val"], epochs=p["epochs"],
                                   train_limit=None, batch_size=p["batch_size"], lr=p["lr"],
                                   seed=p["seed"])
    t0 = time.perf_counter()
    manual_seed(p["seed"])
    model = est.build(space, arch)
    run = estimate.train_model(model, est.train, est.val, epochs=p["epochs"],
                               batch_size=p["batch_size"], lr=p["lr"], seed=p["seed"])
    test = estimate.accuracy(model, splits["test"])
    seconds = time.perf_counter() - t0
    macs = count_macs(space, arch, input_shape=tuple(p["image_shape"]))
    return [[round(a, 4) for a in run["curve"]], round(test, 4),
            estimate.count_parameters(model), int(macs), round(seconds, 2)]


def _worker(k: int, indices: list, subset_path: str, parts: str, deadline: float | None):
    os.environ.update(_ONE_THREAD)
    splits = make_subset(Path(subset_path))
    with open(Path(parts) / f"part-{k}.jsonl", "a") as f:
        for i in indices:
            if deadline is not None and time.time() > deadline:
                return
            row = evaluate_cell(i, splits)
            f.write(json.dumps({"index": i, "row": row}) + "\n")
            f.flush()


def read_parts(parts: Path) -> dict:
    done = {}
    for part in sorted(parts.glob("part-*.jsonl")):
        for line in part.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[int(rec["index"])] = rec["row"]
            except (ValueError, KeyError):
                continue  # a line cut short by an interruption: that cell is trained again
    return done


def main(argv=None) -> int:
    from convnet.io import atomic
    from convnet.nas import bench

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=bench.DEFAULT_TABLE)
    ap.add_argument("--parts", type=Path, default=Path("runs/nas-table-parts"))
    ap.add_argument("--subset", type=Path, default=None, help="cached protocol images (.npz)")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: system/cache)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N missing cells")
    ap.add_argument("--time-limit", type=float, default=None, help="stop starting cells after S seconds")
    ap.add_argument("--no-write", action="store_true", help="train into --parts only")
    ap.add_argument("--trained-on", default=None,
                    help="CPU that trained the parts, when not this machine (recorded in meta)")
    args = ap.parse_args(argv)

    space = bench.table_space()
    args.parts.mkdir(parents=True, exist_ok=True)
    subset = args.subset or args.parts / "subset.npz"
    make_subset(subset, args.data_dir)
    done = read_parts(args.parts)
    todo = [i for i in range(space.size) if i not in done]
    # most convolutions first, so the slowest cells do not straggle at the end
    todo.sort(key=lambda i: -sum(v == "nor_conv_3x3" for v in space.from_index(i).values()))
    if args.limit is not None:
        todo = todo[:args.limit]
    print(f"{len(done)} cells done, {len(todo)} to train with {args.workers} workers", flush=True)
    if todo:
        os.environ.update(_ONE_THREAD)
        # compile (and cache) every numba kernel once, before the workers load the cache
        evaluate_cell(todo[0], {k: (x[:64], y[:64]) for k, (x, y) in make_subset(subset).items()})
        deadline = time.time() + args.time_limit if args.time_limit else None
        ctx = mp.get_context("spawn")
        shares = [todo[k::args.workers] for k in range(args.workers)]
        procs = [ctx.Process(target=_worker, args=(k, s, str(subset), str(args.parts), deadline))
                 for k, s in enumerate(shares) if s]
        t0 = time.time()
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            time.sleep(10)
            n = len(read_parts(args.parts))
            print(f"  {n}/{space.size} cells after {time.time() - t0:.0f} s", flush=True)
        for p in procs:
            p.join()
        done = read_parts(args.parts)
    missing = space.size - len(done)
    if args.no_write or missing:
        print(f"{len(done)}/{space.size} cells in {args.parts}; "
              + (f"{missing} missing, table not written" if missing else "table not written (--no-write)"))
        return 0 if args.no_write or args.limit else 1
    rows = [done[i] for i in range(space.size)]
    import numpy as np

    from convnet.cli.info_cmd import _cpu_model

    cpu = _cpu_model()
    cpu = args.trained_on or cpu
    meta = {"protocol": bench.PROTOCOL, "columns": list(bench.COLUMNS),
            "made_by": "scripts/make_nas_table.py", "cpu": cpu,
            "date": time.strftime("%Y-%m-%d"),
            "cell_seconds_total": round(float(sum(r[4] for r in rows)), 1),
            "index": "CellSpace.to_index (edges in EDGES order, ops in TABLE_OPS order)"}
    text = json.dumps({"meta": meta, "rows": rows}, separators=(",", ":"))
    atomic.atomic_write_text(args.out, text)
    vals = np.array([r[0][-1] for r in rows])
    print(f"wrote {args.out} ({len(text) / 1e3:.0f} kB): val accuracy {vals.min():.4f}..{vals.max():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
