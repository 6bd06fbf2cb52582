"""Data-parallel training over MPI: throughput with 1 and 2 ranks, convnet against torch DDP.

    python benchmarks/distributed_scaling.py [--repeats 3] [--plot PNG] [--json FILE] [--no-torch]

Each configuration is a fresh job, ``mpiexec -n K python this_file --worker ...``, timing
training steps (forward, cross-entropy, backward, gradient mean over the ranks, SGD with
momentum) at a fixed *global* batch ``B`` on random data held in memory, each rank taking
``B / K`` images of every batch:

* LeNet-5 on 1x28x28, ``B = 64``;
* ResNet-20 on 3x32x32, ``B = 128``, BatchNorm converted to SyncBatchNorm (statistics over
  the global batch); and once more with plain per-rank BatchNorm (``resnet20, local BN``),
  which is what torch's DDP runs here: torch's ``SyncBatchNorm`` refuses CPU tensors.

The setups: ``K`` ranks with one BLAS/numba/torch thread each (``K`` = 1 and 2), and one
process with 2 threads, the alternative way to use both cores. convnet's ranks average
their gradients through :class:`convnet.distributed.DistributedOptimizer` (mpi4py); torch's
through ``torch.nn.parallel.DistributedDataParallel`` with the ``gloo`` backend on
127.0.0.1, started by the same ``mpiexec`` (each process reads its rank from the launcher's
environment). After warm-up steps and a barrier, rank 0's wall time over the timed steps
gives the step time and ``images/s = B / step``. ``comm`` is the mean over the ranks of
:func:`convnet.distributed.comm_seconds` over the timed steps: time inside collectives,
*including the wait for the slower rank*, so on shared cores it also measures imbalance.
torch's DDP overlaps its all-reduce with the backward pass, so it has no such number. To
separate bytes from waiting, the 2-rank convnet job also times the collectives alone, back to
back after a barrier: an all-reduce of each model's gradients and of a SyncBatchNorm-sized
message.

``--repeats`` rounds run every configuration once, in alternating order (these machines are
noisy); the tables give the median over rounds. ``speed-up`` is images/s over the same
framework's 1-rank/1-thread images/s; ``convnet/torch`` is convnet's images/s over torch's
for the same setup (above 1: convnet is faster; the project's torch time / convnet time).
The default 3 rounds take about 3 minutes on 2 cores; ``--scale 0.2`` is a quick check.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# case -> (image shape, global batch, warm-up steps, timed steps)
CASES = {
    "lenet5": ((1, 28, 28), 64, 5, 60),
    "resnet20": ((3, 32, 32), 128, 2, 8),
    "resnet20, local BN": ((3, 32, 32), 128, 2, 8),
}
# (framework, ranks, threads per rank), in the order of the tables
SETUPS = [("convnet", 1, 1), ("convnet", 2, 1), ("convnet", 1, 2),
          ("torch", 1, 1), ("torch", 2, 1), ("torch", 1, 2)]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
MARK = "DISTRIBUTED_SCALING_RESULT "


def setup_name(ranks: int, threads: int) -> str:
    return f"{ranks} rank{'s' if ranks > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"


def cases_for(framework: str, ranks: int) -> list[str]:
    """The cases a job runs: torch has no CPU SyncBatchNorm (its ResNet-20 is the local-BN
    one), and with one rank local and synchronized BatchNorm are the same computation."""
    if framework == "torch":
        return ["lenet5", "resnet20, local BN"]
    return ["lenet5", "resnet20"] + (["resnet20, local BN"] if ranks > 1 else [])


# --------------------------------------------------------------------------- workers

def _time_steps(step, warmup: int, steps: int, barrier, *after_barrier) -> tuple[float, list]:
    """Run ``warmup`` untimed steps, line the ranks up (``barrier``, then ``after_barrier``
    callables such as resetting the communication clock), then time ``steps`` steps:
    ``(total seconds, [seconds of each step])``."""
    for _ in range(warmup):
        step()
    barrier()
    for fn in after_barrier:
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, times


def _steps(args, warmup: int, steps: int) -> tuple[int, int]:
    return max(1, round(warmup * args.scale)), max(2, round(steps * args.scale))


def worker_convnet(args) -> None:
    import convnet as cn
    import convnet.distributed as dist
    import convnet.functional as F
    from convnet import models, optim

    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    results = []
    for case in cases_for("convnet", world):
        shape, batch, warmup, steps = CASES[case]
        warmup, steps = _steps(args, warmup, steps)
        cn.manual_seed(0)
        model = models.create(case.split(",")[0], 10, shape[0])
        if case == "resnet20":
            model = dist.convert_sync_batchnorm(model)
        model.train()
        opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        rng = np.random.default_rng(rank)  # each rank its own shard of the global batch
        x = cn.Tensor._make(rng.standard_normal((batch // world, *shape)).astype(np.float32))
        y = cn.Tensor._make(rng.integers(0, 10, batch // world))

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        wall, times = _time_steps(step, warmup, steps, dist.barrier, dist.reset_comm_seconds)
        comm = dist.all_gather_object(dist.comm_seconds() / steps)
        results.append({"case": case, "batch": batch, "steps": steps, "step_s": wall / steps,
                        "step_median_s": statistics.median(times),
                        "comm_s": statistics.fmean(comm), "comm_per_rank_s": comm})
    bare = bare_collectives(results) if world > 1 else {}
    if rank == 0:
        from mpi4py import MPI

        extra = {"mpi": MPI.Get_library_version().splitlines()[0].strip(), "bare": bare}
        print(MARK + json.dumps({"results": results, **extra}), flush=True)


def bare_collectives(results: list[dict]) -> dict:
    """Collectives alone, back to back after a barrier (no compute, so no waiting for a slower
    rank): an all-reduce of each model's gradient bucket, and of SyncBatchNorm's small
    messages. Returns ``{name: seconds per call}`` (median of 5 batches of calls)."""
    import convnet.distributed as dist
    from convnet import models

    sizes = {}
    for case in ("lenet5", "resnet20"):
        n = sum(p.numel() for p in models.create(case, 10, CASES[case][0][0]).parameters())
        sizes[f"all-reduce {case}'s gradients ({n:,} float32, {4 * n / 1e6:.2f} MB)"] = \
            np.zeros(n + 20, np.float32)  # + the bucket's have-a-gradient flags
    sizes["all-reduce 128 float64 (a SyncBatchNorm backward)"] = np.zeros(128, np.float64)
    out = {}
    for name, buf in sizes.items():
        calls = 100 if buf.nbytes < 1e5 else 20
        per = []
        for _ in range(5):
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(calls):
                dist.allreduce(buf, "sum", inplace=True)
            per.append((time.perf_counter() - t0) / calls)
        out[name] = statistics.median(per)
    return out


def _launcher_rank_size() -> tuple[int, int]:
    env = os.environ
    for r, s in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                 ("SLURM_PROCID", "SLURM_NTASKS")):
        if r in env and s in env:
            return int(env[r]), int(env[s])
    return 0, 1


def worker_torch(args) -> None:
    import torch
    import torch.distributed as td

    from tests.models import torch_refs

    torch.set_num_threads(args.threads)
    rank, world = _launcher_rank_size()
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                          world_size=world)
    builders = {"lenet5": lambda c: torch_refs.LeNet5(10, c),
                "resnet20, local BN": lambda c: torch_refs.CifarResNet(20, 10, c)}
    results = []
    for case in cases_for("torch", world):
        shape, batch, warmup, steps = CASES[case]
        warmup, steps = _steps(args, warmup, steps)
        torch.manual_seed(0)
        ddp = torch.nn.parallel.DistributedDataParallel(builders[case](shape[0]))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(rank)
        x = torch.from_numpy(rng.standard_normal((batch // world, *shape)).astype(np.float32))
        y = torch.from_numpy(rng.integers(0, 10, batch // world))

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ddp(x), y).backward()  # all-reduce in backward
            opt.step()

        wall, times = _time_steps(step, warmup, steps, td.barrier)
        results.append({"case": case, "batch": batch, "steps": steps, "step_s": wall / steps,
                        "step_median_s": statistics.median(times), "comm_s": None})
    td.barrier()
    td.destroy_process_group()
    if rank == 0:
        print(MARK + json.dumps({"results": results}), flush=True)


# --------------------------------------------------------------------------- driver

def _mpiexec() -> str:
    from convnet.cli._distributed import find_mpiexec

    found = find_mpiexec()
    if found is None:
        sys.exit("distributed_scaling: mpiexec not found; pip install 'convnet[mpi]'")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(framework: str, ranks: int, threads: int, scale: float) -> dict:
    """One ``mpiexec -n ranks`` job; rank 0's JSON, or ``{"error": ...}``."""
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()),
           "--worker", framework, "--threads", str(threads), "--scale", str(scale)]
    if framework == "torch":
        cmd += ["--port", str(_free_port())]
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARIABLES},
           "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    try:
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}
    for line in r.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
    return {"error": f"exit code {r.returncode}: " + " | ".join(tail)}


def _cpu_model() -> str:
    from convnet.cli.info_cmd import _cpu_model as cpu

    return cpu()


def summarize(rounds: list[dict]) -> dict:
    """{(framework, ranks, threads, case): medians over the rounds}."""
    out = {}
    for key in {k for r in rounds for k in r}:
        rows = [r[key] for r in rounds if key in r]
        step = statistics.median(x["step_s"] for x in rows)
        comm = [x["comm_s"] for x in rows if x["comm_s"] is not None]
        out[key] = {"step_s": step, "images_per_s": rows[0]["batch"] / step,
                    "batch": rows[0]["batch"], "rounds": len(rows),
                    "comm_s": statistics.median(comm) if comm else None,
                    "comm_share": statistics.median(x["comm_s"] / x["step_s"] for x in rows)
                    if comm else None}
    return out


def print_tables(summary: dict, torch_error: str | None) -> None:
    print("\n### Data-parallel training steps (median over rounds)\n")
    print("| model, global batch | framework | setup | step ms | images/s | comm ms/step "
          "(share) | speed-up |")
    print("|---|---|---|---:|---:|---:|---:|")
    for case, (_, batch, _, _) in CASES.items():
        for fw, k, t in SETUPS:
            row = summary.get((fw, k, t, case))
            if row is None:
                continue
            # convnet's local-BN ResNet-20 runs only with 2 ranks; with 1 it is "resnet20"
            same = "resnet20" if (fw, case) == ("convnet", "resnet20, local BN") else case
            base = summary.get((fw, 1, 1, same))
            comm = ("-" if row["comm_s"] is None or k == 1 else
                    f"{row['comm_s'] * 1e3:.1f} ({row['comm_share']:.0%})")
            speed = f"{row['images_per_s'] / base['images_per_s']:.2f}x" if base else "-"
            print(f"| {case}, {batch} | {fw} | {setup_name(k, t)} | {row['step_s'] * 1e3:.1f} | "
                  f"{row['images_per_s']:,.0f} | {comm} | {speed} |")
    print("\ncomm: seconds inside convnet's collectives per step, mean over the ranks; waiting "
          "for the slower rank included (torch's DDP overlaps its all-reduce with backward)")
    if torch_error:
        print(f"\ntorch DistributedDataParallel (gloo): {torch_error}")
        return
    print("\n### convnet against torch (images/s ratio, above 1: convnet is faster)\n")
    print("| model | " + " | ".join(setup_name(k, t) for _, k, t in SETUPS[:3]) + " |")
    print("|---|" + "---:|" * 3)
    for case in ("lenet5", "resnet20"):
        cells = []
        for _, k, t in SETUPS[:3]:
            cn_row = summary.get(("convnet", k, t, case))
            th_row = summary.get(("torch", k, t, "resnet20, local BN" if case == "resnet20"
                                  else case))
            cells.append(f"{cn_row['images_per_s'] / th_row['images_per_s']:.2f}"
                         if cn_row and th_row else "-")
        label = case if case == "lenet5" else "resnet20 (convnet SyncBN, torch local BN)"
        print(f"| {label} | " + " | ".join(cells) + " |")
    row = [summary.get(("convnet", 2, 1, "resnet20, local BN")),
           summary.get(("torch", 2, 1, "resnet20, local BN"))]
    if all(row):
        print(f"| resnet20, both local BN | - | {row[0]['images_per_s'] / row[1]['images_per_s']:.2f}"
              " | - |")


def plot(summary: dict, path: Path, header: str) -> None:
    """Images/s per setup, convnet next to torch; the hatched top slice of a convnet bar is
    the share of its step spent in collectives (waiting included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    setups = [(1, 1), (2, 1), (1, 2)]
    colors = {"convnet": "#3a6ea5", "convnet, local BN": "#8fb3d9", "torch": "#e08a2c"}
    panels = ((axes[0], "LeNet-5, global batch 64", [("convnet", "lenet5"), ("torch", "lenet5")]),
              (axes[1], "ResNet-20, global batch 128",
               [("convnet", "resnet20"), ("convnet, local BN", "resnet20, local BN"),
                ("torch", "resnet20, local BN")]))
    for ax, title, bars in panels:
        width = 0.8 / len(bars)
        for i, (k, t) in enumerate(setups):
            group = [(label, summary.get((label.split(",")[0], k, t, case)))
                     for label, case in bars]
            group = [(label, row) for label, row in group if row is not None]
            for j, (label, row) in enumerate(group):  # the bars present, centred on the tick
                x = i + (j - (len(group) - 1) / 2) * width
                v = row["images_per_s"]
                ax.bar(x, v, width, color=colors[label])
                share = row["comm_share"] if k > 1 else None
                if share:
                    ax.bar(x, v * share, width, bottom=v * (1 - share), color="none",
                           edgecolor="white", hatch="////", linewidth=0)
                    ax.text(x, v * (1 - share) / 2, f"comm\n{share:.0%}", ha="center",
                            va="center", color="white" if label == "convnet" else "black",
                            fontsize=8)
                ax.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(setups)))
        ax.set_xticklabels([f"{k} rank{'s' if k > 1 else ''}\n{t} thread{'s' if t > 1 else ''}"
                            + (" each" if k > 1 else "") for k, t in setups])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("training images/s")
        ax.margins(y=0.12)
    handles = [Patch(color=colors["convnet"], label="convnet (ResNet-20: SyncBatchNorm)"),
               Patch(color=colors["convnet, local BN"], label="convnet, per-rank BatchNorm"),
               Patch(color=colors["torch"], label="torch DDP, gloo (per-rank BatchNorm)"),
               Patch(facecolor="#777777", edgecolor="white", hatch="////",
                     label="share of the step in MPI collectives (waiting included)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(header, fontsize=9)
    fig.tight_layout(rect=(0, 0.11, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="rounds over all setups (median)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the warm-up and timed step counts (0.2: a quick check)")
    ap.add_argument("--no-torch", action="store_true", help="time convnet only")
    ap.add_argument("--plot", type=Path, help="write the figure here (PNG)")
    ap.add_argument("--json", type=Path, help="write every round's results here")
    ap.add_argument("--worker", choices=("convnet", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "convnet":
        worker_convnet(args)
        return 0
    if args.worker == "torch":
        worker_torch(args)
        return 0
    if args.repeats < 1:
        ap.error(f"--repeats: expected a positive integer, got {args.repeats}")

    from convnet import backends

    info = backends.info()
    load0 = os.getloadavg()
    header = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {_cpu_model()}, "
              f"{os.cpu_count()} cores, load {load0[0]:.2f}; convnet backend {info['backend']}, "
              f"numpy {np.__version__}, one thread per rank (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS)")
    print(header, flush=True)
    setups = [s for s in SETUPS if not (args.no_torch and s[0] == "torch")]
    rounds, bare, mpi, torch_error = [], [], None, None
    start = time.perf_counter()
    for r in range(args.repeats):
        found = {}
        for fw, k, t in (setups if r % 2 == 0 else setups[::-1]):
            if fw == "torch" and torch_error:
                continue
            out = run_job(fw, k, t, args.scale)
            if "error" in out:
                if fw == "torch":
                    torch_error = out["error"]
                    print(f"torch gloo job failed ({setup_name(k, t)}): {torch_error}",
                          flush=True)
                    continue
                sys.exit(f"distributed_scaling: convnet job {setup_name(k, t)} failed: "
                         f"{out['error']}")
            mpi = out.get("mpi", mpi)
            if out.get("bare"):
                bare.append(out["bare"])
            for row in out["results"]:
                found[(fw, k, t, row["case"])] = row
        rounds.append(found)
        print(f"round {r + 1}/{args.repeats} done ({time.perf_counter() - start:.0f} s)",
              flush=True)
    load1 = os.getloadavg()
    summary = summarize(rounds)
    versions = f"MPI: {mpi}"
    if not args.no_torch and not torch_error:
        import torch

        versions += f"; torch {torch.__version__} (gloo on 127.0.0.1)"
    print(f"{versions}; Python {platform.python_version()}; load average after: "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; {time.perf_counter() - start:.0f} s")
    print_tables(summary, "not timed (--no-torch)" if args.no_torch else
                 torch_error and f"did not run here: {torch_error}")
    if bare:
        print("\n### convnet's collectives alone, 2 ranks (no compute, no waiting; median)\n")
        print("| collective | ms per call |")
        print("|---|---:|")
        for name in bare[0]:
            print(f"| {name} | {statistics.median(b[name] for b in bare) * 1e3:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "mpi": mpi, "bare": bare,
                                         "torch_error": torch_error,
                                         "rounds": [{" | ".join(map(str, k)): v
                                                     for k, v in r.items()} for r in rounds]},
                                        indent=1) + "\n")
    if args.plot:
        plot(summary, args.plot, header.split(";")[0] + f"; median of {args.repeats} rounds")
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
