"""``convnet search``: neural architecture search within a time budget.

A strategy proposes architectures of a search space, an estimator scores each on a
validation split of the training set, and the search stops before the budget runs out:

    convnet search --space small-cnn --strategy evolution --estimate partial \\
                   --budget 30m --max-params 100k --dataset fashion-mnist --out runs/search

It prints one line per evaluation and the leaderboard whenever the best changes, and keeps
in ``--out`` (rewritten after every evaluation, so Ctrl-C loses nothing):

* ``results.json``: settings, every evaluation (architecture, score, parameters, MACs, time),
  the best one and the Pareto front (accuracy against parameters);
* ``leaderboard.md``: the ten best so far;
* ``search.png``: accuracy against parameters, coloured by when each was found, with the
  Pareto front, and the best score against time;
* ``best.json``: the best architecture, for ``convnet train --arch DIR/best.json``.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

STRATEGIES = ("random", "evolution", "reinforce", "darts")
ESTIMATES = ("partial", "shared", "full")
SPACES = ("small-cnn", "cell")
DATASETS = ("fashion-mnist", "mnist", "mnist-bundled")


def parse_duration(text: str) -> float:
    """``"30m"``, ``"90s"``, ``"1h30m"``, ``"1.5h"`` or plain seconds -> seconds."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or "".join(f"{a}{b}" for a, b in parts) != s.replace(" ", ""):
        raise ValueError(f"--budget: cannot read {text!r}; write e.g. 30m, 90s, 1h30m")
    seconds = sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)
    if seconds <= 0:
        raise ValueError(f"--budget must be positive, got {text!r}")
    return seconds


def parse_count(text: str, flag: str) -> int:
    """``"100k"``, ``"1.5M"``, ``"250000"`` -> int."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", str(text).strip())
    if not m:
        raise ValueError(f"{flag}: cannot read {text!r}; write e.g. 100k, 1.5M or 250000")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if value < 1:
        raise ValueError(f"{flag} must be >= 1, got {text!r}")
    return int(value)


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def add_parser(subparsers) -> None:
    from .main import add_threads_option
    from .train import _model_option

    p = subparsers.add_parser("search", description=__doc__,
                              formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
                              help="neural architecture search within a time budget")
    a = p.add_argument
    a("--space", choices=SPACES, default="small-cnn",
      help="small-cnn: CNNs of 2-4 blocks (depth, widths, kernels, activation, pooling, skips); "
           "cell: NAS-Bench-201 cells (default small-cnn)")
    a("--space-option", action="append", type=_model_option, metavar="KEY=VALUE",
      help='cell space options, e.g. C=16, N=2, ops=["none","skip_connect","nor_conv_3x3"] '
           "(default C=8, N=1, all five ops)")
    a("--strategy", choices=STRATEGIES, default="evolution",
      help="random search, regularized evolution, REINFORCE, or DARTS (cell space only) "
           "(default evolution)")
    a("--estimate", choices=ESTIMATES, default="partial",
      help="partial: a short training on a subset; shared: inherit the weights of a one-shot "
           "supernet trained once; full: full training (default partial)")
    a("--budget", default="30m", help="wall-clock budget, e.g. 30m, 90s, 1h (default 30m)")
    a("--max-params", help="skip architectures with more parameters, e.g. 100k")
    a("--max-macs", help="skip architectures with more multiply-accumulates per image, e.g. 5M")
    a("--dataset", choices=DATASETS, default="fashion-mnist",
      help="default fashion-mnist (Debian's dataset-fashion-mnist or --data-dir)")
    a("--data-dir", help="folder with the dataset's IDX files")
    a("--val-split", type=float, default=0.1,
      help="fraction of the training set that scores architectures (default 0.1); the test "
           "set is never used by the search")
    a("--epochs", type=float,
      help="training epochs per architecture (default 1 for partial, 10 for full)")
    a("--train-limit", type=int,
      help="training images per architecture (default 10000 for partial, all for full)")
    a("--supernet-steps", type=int,
      help="--estimate shared: supernet training batches (default: what 40%% of the budget allows)")
    a("--batch-size", type=int, default=64, help="default 64")
    a("--lr", type=float, help="learning rate (default 2e-3 Adam; 0.05 SGD for the supernet)")
    a("--seed", type=int, default=0, help="default 0")
    a("--out", help="output folder (default runs/search-<space>-<strategy>)")
    a("--overwrite", action="store_true", help="replace a finished search in --out")
    add_threads_option(p)
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- pieces
def _space(args, shape):
    from ..nas import spaces

    opts = dict(args.space_option or [])
    if args.space == "small-cnn":
        if opts:
            raise ValueError("--space-option applies to --space cell (small-cnn takes its input "
                             "shape from the dataset)")
        return spaces.get("small-cnn", input_shape=shape, num_classes=10), {
            "input_shape": list(shape), "num_classes": 10}
    unknown = set(opts) - {"C", "N", "ops"}
    if unknown:
        raise ValueError(f"--space-option: unknown option(s) {sorted(unknown)} for the cell "
                         "space; it takes C, N and ops")
    opts.setdefault("C", 8)
    opts.setdefault("N", 1)
    if isinstance(opts.get("ops"), str):
        opts["ops"] = [o for o in opts["ops"].split(",") if o]
    space = spaces.get("cell", **opts)
    return space, {"C": space.C, "N": space.N, "in_channels": shape[0], "num_classes": 10}


def _estimator(args, data, constraint, build_options):
    from ..nas import estimate

    common = dict(batch_size=args.batch_size, seed=args.seed, constraint=constraint,
                  build_options={k: v for k, v in build_options.items()
                                 if k in ("num_classes",)})
    if args.estimate == "shared":
        return estimate.WeightSharing(data["train"], data["val"], lr=args.lr or 0.05,
                                      steps=args.supernet_steps or 10**9, **common)
    if args.estimate == "full":
        return estimate.FullTraining(data["train"], data["val"], epochs=args.epochs or 10,
                                     train_limit=args.train_limit, lr=args.lr or 2e-3, **common)
    return estimate.PartialTraining(data["train"], data["val"], epochs=args.epochs or 1,
                                    train_limit=args.train_limit or 10_000, lr=args.lr or 2e-3,
                                    **common)


def _probe_step_seconds(estimator, space, arch, steps: int = 3) -> float:
    """Seconds per training batch of ``arch`` (after one warm-up batch)."""
    from ..functional.loss import cross_entropy
    from ..tensor import Tensor
    from .. import optim

    model = estimator.build(space, arch)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = estimator.train
    bs = min(estimator.batch_size, len(x))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = cross_entropy(model(Tensor._make(x[:bs])), Tensor._make(y[:bs]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(sum(times[1:]) / steps)


def _strategy(args, space, constraint):
    from ..nas.strategies import RandomSearch, RegularizedEvolution, Reinforce

    make = {"random": RandomSearch, "evolution": RegularizedEvolution, "reinforce": Reinforce}
    return make[args.strategy](space, seed=args.seed, constraint=constraint)


def pareto_front(points) -> list[int]:
    """Indices of the points ``(params, accuracy)`` no other point beats on both (fewer or
    equal parameters and higher or equal accuracy, one strictly), sorted by parameters."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


class _Recorder:
    """Everything the search writes into ``--out``, atomically, after every evaluation."""

    def __init__(self, out: Path, header: dict, space, build_options: dict):
        self.out, self.header, self.space, self.build_options = out, header, space, build_options
        self.evaluations: list[dict] = []
        self.t0 = time.monotonic()
        self.best_index: int | None = None

    def add(self, ev, macs: int | None) -> bool:
        rec = ev.to_dict()
        rec.update(n=len(self.evaluations) + 1, macs=macs,
                   found_at_s=round(time.monotonic() - self.t0, 2))
        self.evaluations.append(rec)
        improved = self.best_index is None or (
            rec["score"] is not None and rec["score"] > self.evaluations[self.best_index]["score"])
        if rec["score"] is not None and improved:
            self.best_index = len(self.evaluations) - 1
            return True
        return False

    def scored(self) -> list[dict]:
        return [e for e in self.evaluations if e["score"] is not None]

    def leaderboard(self, k: int = 10) -> str:
        rows = sorted(self.scored(), key=lambda e: -e["score"])[:k]
        lines = ["| rank | # | val accuracy | params | MACs | found at | architecture |",
                 "|---|---|---|---|---|---|---|"]
        for r, e in enumerate(rows, 1):
            arch = ", ".join(f"{k}={json.dumps(v)}" for k, v in e["arch"].items())
            lines.append(f"| {r} | {e['n']} | {e['score']:.4f} | {e['params']:,} | "
                         f"{(e['macs'] or 0):,} | {_fmt_time(e['found_at_s'])} | {arch} |")
        return "\n".join(lines)

    def write(self, status: str) -> None:
        from ..io.atomic import atomic_write_text
        from ..nas.space import save_arch

        scored = self.scored()
        front = pareto_front([(e["params"], e["score"]) for e in scored])
        best = self.evaluations[self.best_index] if self.best_index is not None else None
        record = {**self.header, "status": status,
                  "elapsed_s": round(time.monotonic() - self.t0, 2),
                  "evaluations": self.evaluations, "best": best,
                  "pareto_front": [scored[i]["n"] for i in front]}
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "results.json", json.dumps(record, indent=1))
        atomic_write_text(self.out / "leaderboard.md", self.leaderboard() + "\n")
        if best is not None:
            save_arch(self.out / "best.json", self.space.name, best["arch"], self.build_options)
        if scored:
            plot(record, self.out / "search.png")


def plot(record: dict, path: Path) -> None:
    """``search.png``: accuracy vs parameters (colour = minutes into the search, Pareto front
    drawn) and the best accuracy so far against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_open

    ev = [e for e in record["evaluations"] if e["score"] is not None]
    params = [e["params"] for e in ev]
    acc = [100 * e["score"] for e in ev]
    mins = [e["found_at_s"] / 60 for e in ev]
    front = [next(e for e in ev if e["n"] == n) for n in record["pareto_front"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    sc = ax.scatter(params, acc, c=mins, cmap="viridis", s=28, edgecolors="k", linewidths=0.3,
                    zorder=3)
    fx = [e["params"] for e in front]
    fy = [100 * e["score"] for e in front]
    ax.step(fx, fy, where="post", color="crimson", lw=1.4, zorder=2, label="Pareto front")
    ax.scatter(fx, fy, facecolors="none", edgecolors="crimson", s=70, lw=1.2, zorder=4)
    if record.get("max_params"):
        ax.axvline(record["max_params"], color="0.4", ls="--", lw=1,
                   label=f"--max-params {record['max_params']:,}")
    best = record["best"]
    if best is not None:
        ax.scatter([best["params"]], [100 * best["score"]], marker="*", s=220, color="gold",
                   edgecolors="k", zorder=5, label=f"best: {100 * best['score']:.2f} %")
    if len(set(params)) > 1 and max(params) / max(1, min(params)) > 8:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation accuracy (%)")
    # the axis starts below the worst architecture that learned anything (chance-level ones,
    # a few points at 10 %, would squash the rest into a line)
    learned = [v for v in acc if v > 15] or acc
    lo = min(learned)
    ax.set_ylim(max(0, lo - 2), min(100, max(acc) + 2))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(sc, ax=ax, label="found at (minutes)")
    ax.set_title(f"{record['space']} / {record['strategy']} / {record['estimate']}: "
                 f"{len(ev)} architectures", fontsize=10)
    order = sorted(range(len(ev)), key=lambda i: mins[i])
    running, best_so_far = [], -math.inf
    for i in order:
        best_so_far = max(best_so_far, acc[i])
        running.append(best_so_far)
    ax2.scatter(mins, acc, s=12, color="0.6", label="each architecture")
    ax2.step([mins[i] for i in order], running, where="post", color="C0", lw=1.6,
             label="best so far")
    ax2.axvline(record["budget_s"] / 60, color="k", ls=":", lw=1, label="budget")
    ax2.set_xlabel("minutes into the search")
    ax2.set_ylabel("validation accuracy (%)")
    ax2.set_ylim(max(0, lo - 2), min(100, max(acc) + 2))
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- run
def run(args) -> int:
    budget = parse_duration(args.budget)
    max_params = parse_count(args.max_params, "--max-params") if args.max_params else None
    max_macs = parse_count(args.max_macs, "--max-macs") if args.max_macs else None
    if not 0 < args.val_split < 1:
        raise ValueError(f"--val-split must be in (0, 1), got {args.val_split}")
    for flag, v in (("--epochs", args.epochs), ("--train-limit", args.train_limit),
                    ("--supernet-steps", args.supernet_steps), ("--batch-size", args.batch_size)):
        if v is not None and v <= 0:
            raise ValueError(f"{flag} must be positive, got {v}")
    if args.strategy == "darts" and args.estimate == "shared":
        raise ValueError("--strategy darts already shares one supernet's weights; its derived "
                         "cell is then trained: use --estimate partial (default) or full")
    if args.strategy == "darts" and args.space != "cell":
        raise ValueError("--strategy darts searches the cell space (a continuous relaxation of "
                         "its edge operations); use --space cell")
    out = Path(args.out or f"runs/search-{args.space}-{args.strategy}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if (out / "results.json").is_file() and not args.overwrite:
        raise ValueError(f"--out {out} already holds a search; --overwrite replaces it, or "
                         "choose another --out")
    started = time.monotonic()
    deadline = started + budget

    from ..nas import data as nas_data
    from ..nas.space import Constraint, count_macs

    print(f"loading {args.dataset} ...", flush=True)
    data = nas_data.load(args.dataset, val_split=args.val_split, seed=args.seed,
                         data_dir=args.data_dir)
    shape = tuple(int(v) for v in data["train"][0].shape[1:])
    space, build_options = _space(args, shape)
    if space.size < 1:
        raise ValueError(f"search space {space.name} is empty")
    constraint = (Constraint(max_params=max_params, max_macs=max_macs, input_shape=shape)
                  if (max_params or max_macs) else None)
    if constraint is not None:
        _check_some_fit(space, constraint, args.seed)
    import shlex

    header = {"command": "convnet " + shlex.join(getattr(args, "argv", ["search"])),
              "space": space.name, "space_size": space.size, "space_options":
              {k: v for k, v in build_options.items() if k not in ("num_classes",)},
              "strategy": args.strategy, "estimate": args.estimate, "budget_s": budget,
              "max_params": max_params, "max_macs": max_macs, "dataset": args.dataset,
              "train_images": len(data["train"][0]), "val_images": len(data["val"][0]),
              "seed": args.seed, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "machine": _machine()}
    rec = _Recorder(out, header, space, build_options)
    rec.t0 = started
    estimator = _estimator(args, data, constraint, build_options)
    cost = "" if constraint is None else f", {constraint!r}"
    print(f"space {space.name}: {space.size:,} architectures{cost}; strategy {args.strategy}, "
          f"estimate {args.estimate}; budget {_fmt_time(budget)}; out {out}", flush=True)

    def macs_of(arch):
        try:
            return int(count_macs(space, arch, input_shape=shape, **{
                k: v for k, v in build_options.items() if k in ("C", "N")}))
        except Exception:  # noqa: BLE001 - a cost figure must not end the search
            return None

    try:
        if args.strategy == "darts":
            status = _run_darts(args, space, data, estimator, rec, deadline, macs_of, budget)
        else:
            status = _run_strategy(args, space, estimator, constraint, rec, deadline, macs_of,
                                   budget)
    except KeyboardInterrupt:
        rec.write("interrupted")
        print(f"\ninterrupted: {len(rec.evaluations)} evaluations kept in {out}/results.json"
              + (f"; best so far in {out}/best.json" if rec.best_index is not None else ""),
              file=sys.stderr)
        return 130
    rec.write(status)
    if rec.best_index is None:
        raise ValueError("the search evaluated no architecture within the budget")
    best = rec.evaluations[rec.best_index]
    reused = rec.header.get("same_model_reused", 0)
    again = (f" ({reused} more proposal(s) built a model already scored and were given its score)"
             if reused else "")
    print(f"\n{status}: {len(rec.evaluations)} architectures in "
          f"{_fmt_time(time.monotonic() - started)}{again}")
    print(rec.leaderboard(5))
    print(f"\nbest: val accuracy {best['score']:.4f}, {best['params']:,} parameters -> {out}/best.json")
    print(f"results: {out}/results.json   plot: {out}/search.png")
    print(f"retrain it: convnet train --arch {out}/best.json --dataset {args.dataset} --epochs 15")
    return 0


def _check_some_fit(space, constraint, seed) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    smallest = None
    for _ in range(60):
        arch = space.sample(rng)
        if constraint.allows(space, arch):
            return
        params, macs = constraint.cost(space, arch)
        smallest = params if smallest is None else min(smallest, params)
    raise ValueError(f"no architecture of {space.name} fits {constraint!r} (60 random ones "
                     f"tried; the smallest had {smallest:,} parameters): raise the limit")


def _too_small(budget: float, needed: float, what: str) -> ValueError:
    return ValueError(f"--budget {_fmt_time(budget)} is too small for one evaluation: {what} "
                      f"takes about {_fmt_time(needed)} here (measured); raise --budget, or "
                      "lower --epochs / --train-limit")


def _run_strategy(args, space, estimator, constraint, rec, deadline, macs_of, budget) -> str:
    strategy = _strategy(args, space, constraint)
    first = strategy.ask()
    pending = first
    per_step = _probe_step_seconds(estimator, space, first)
    x = estimator.train[0]
    if args.estimate == "shared":
        steps = args.supernet_steps or max(1, int(0.4 * (deadline - time.monotonic()) / per_step))
        if args.supernet_steps and per_step * steps > deadline - time.monotonic():
            raise _too_small(budget, per_step * steps, f"training the supernet for {steps} steps")
        if steps < 50:
            raise _too_small(budget, per_step * 50 / 0.4, "training the supernet (50 steps at least)")
        estimator.steps = steps
        print(f"training the one-shot supernet: {steps} batches of {args.batch_size} "
              f"(about {_fmt_time(per_step * steps)})", flush=True)
        last = [time.monotonic()]

        def progress(step, loss):
            if time.monotonic() - last[0] > 15 or step == steps:
                last[0] = time.monotonic()
                print(f"  supernet step {step}/{steps}  loss {loss:.3f}", flush=True)
        # at most half of what is left, so that architectures can still be scored
        cutoff = time.monotonic() + 0.5 * (deadline - time.monotonic())
        estimator.train_supernet(space=space, deadline=None if args.supernet_steps else cutoff,
                                 callback=progress)
        if estimator.steps_done < steps:
            print(f"  supernet stopped at step {estimator.steps_done} (half the budget)", flush=True)
        estimator.steps = estimator.steps_done  # scoring must not train it further
        rec.header["supernet"] = {"steps": estimator.steps_done,
                                  "seconds": round(estimator.supernet_seconds, 2)}
        expected = 1.0
    else:
        steps_per_eval = math.ceil(len(x) / estimator.batch_size) * estimator.epochs
        expected = per_step * steps_per_eval * 1.15 + per_step * len(estimator.val[0]) / (
            3 * estimator.batch_size)
        if expected > deadline - time.monotonic():
            raise _too_small(budget, expected, f"{args.estimate} training of one architecture "
                             f"({estimator.epochs:g} epoch(s) of {len(x):,} images)")
    durations: list[float] = []
    scored = _SameModel(lambda arch: estimator.build(space, arch))
    while True:
        left = deadline - time.monotonic()
        if durations:
            expected = max(durations[-5:]) if args.estimate != "shared" else max(durations)
        if expected > left:
            return "budget spent"
        arch = pending if pending is not None else strategy.ask()
        pending = None
        known = scored.lookup(arch)
        if known is not None:  # the model of an architecture already scored: no retraining
            strategy.tell(arch, known)
            if scored.repeats_in_a_row >= _SameModel.GIVE_UP:
                return "space exhausted"
            continue
        ev = estimator(space, arch, deadline=deadline) if args.estimate != "shared" else \
            estimator(space, arch)
        if ev.stopped:
            return "budget spent"  # cut short by the deadline: not a fair score, not told
        durations.append(ev.seconds)
        scored.remember(arch, ev.score)
        rec.header["same_model_reused"] = scored.reused
        strategy.tell(arch, ev.score)
        improved = rec.add(ev, macs_of(arch))
        e = rec.evaluations[-1]
        best = rec.evaluations[rec.best_index]
        print(f"[{_fmt_time(e['found_at_s'])}/{_fmt_time(budget)}] #{e['n']:<3d} val {ev.score:.4f}  "
              f"{ev.params:>8,} params  {ev.seconds:6.1f} s   best {best['score']:.4f} (#{best['n']})",
              flush=True)
        rec.write("running")
        if improved and len(rec.evaluations) > 1:
            print(rec.leaderboard(5), flush=True)


class _SameModel:
    """Scores by model, not by architecture dict: an architecture whose model was already
    scored (it differs only in choices the model does not use) gets that score again instead
    of a second training, which would only measure noise and spend the budget."""

    GIVE_UP = 2000  # proposals in a row that were all already scored: the space is exhausted

    def __init__(self, build):
        self.build = build  # arch -> model, as the estimator builds it
        self.scores: dict[str, float] = {}
        self.reused = self.repeats_in_a_row = 0
        self._key = None

    def lookup(self, arch) -> float | None:
        from ..nas.space import model_fingerprint

        self._key = model_fingerprint(self.build(arch))
        score = self.scores.get(self._key)
        if score is None:
            self.repeats_in_a_row = 0
        else:
            self.reused += 1
            self.repeats_in_a_row += 1
        return score

    def remember(self, arch, score: float) -> None:
        from ..nas.space import model_fingerprint

        key = self._key if self._key is not None else model_fingerprint(self.build(arch))
        self.scores[key] = float(score)
        self._key = None


def _run_darts(args, space, data, estimator, rec, deadline, macs_of, budget) -> str:
    import numpy as np

    from ..nas.darts import DARTS

    x, y = estimator.train
    half = len(x) // 2
    bs = args.batch_size
    darts = DARTS(space, order=1, alpha_lr=3e-3, seed=args.seed,
                  in_channels=int(x.shape[1]), num_classes=10)
    rng = np.random.default_rng(args.seed)

    def batches(xs, ys):
        perm = rng.permutation(len(xs))
        return [(xs[perm[i:i + bs]], ys[perm[i:i + bs]]) for i in range(0, len(xs) - bs + 1, bs)]

    per_step = _probe_step_seconds(estimator, space, {e: "nor_conv_3x3" if "nor_conv_3x3" in v
                                                      else v[-1] for e, v in space.choices.items()})
    final = per_step * math.ceil(len(x) / bs) * estimator.epochs * 1.15
    epoch_guess = per_step * 2 * (half // bs) * len(space.ops)
    if final + epoch_guess > deadline - time.monotonic():
        raise _too_small(budget, final + epoch_guess, "one DARTS epoch plus the final training")
    durations = []
    search_start, search_time = time.monotonic(), deadline - time.monotonic() - final
    while deadline - time.monotonic() > final + (max(durations) if durations else epoch_guess):
        t0 = time.monotonic()
        # the first quarter of the time trains the supernet weights only: with untrained
        # weights the parameter-free skip_connect wins the mixture and DARTS collapses onto it
        if t0 - search_start < 0.25 * search_time:
            darts.warmup_epochs = darts.epoch + 1
        arch = darts.search(batches(x[:half], y[:half]), batches(x[half:], y[half:]),
                            epochs=darts.epoch + 1)
        durations.append(time.monotonic() - t0)
        hist = darts.history[-1]
        phase = ("weights only (warm-up)" if darts.epoch <= darts.warmup_epochs else
                 f"val loss {hist['val_loss']:.3f}")
        print(f"[{_fmt_time(time.monotonic() - rec.t0)}/{_fmt_time(budget)}] DARTS epoch "
              f"{darts.epoch}: train loss {hist['train_loss']:.3f}, {phase}; "
              f"cell {'|'.join(arch.values())}", flush=True)
    arch = darts.derive()
    print(f"DARTS derived {'|'.join(arch.values())} after {darts.epoch} epochs; training it "
          f"({args.estimate})", flush=True)
    ev = estimator(space, arch)
    rec.add(ev, macs_of(arch))
    rec.header["darts"] = {"epochs": darts.epoch, "warmup_epochs": darts.warmup_epochs, "history": [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in h.items()}
        for h in darts.history],
        "alpha": darts.supernet.alpha.numpy().tolist()}
    return "DARTS finished"


def _machine() -> dict:
    import os

    from .info_cmd import _cpu_model

    cpu = _cpu_model()
    return {"cpu": cpu, "cores": os.cpu_count(), "load": list(os.getloadavg())}
