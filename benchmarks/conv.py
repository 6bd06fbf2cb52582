"""Benchmark: conv2d forward+backward on real network shapes, convnet vs torch (same process).

Run: ``python -m benchmarks.conv [--repeats 15] [--quick] [--memory]``. Prints a Markdown table
(ratio = torch time / convnet time; above 1 means convnet is faster) and, with ``--memory``,
the peak extra resident memory of one forward+backward of a ResNet-20 3x3 layer at batch 128
for each framework (measured in fresh subprocesses: ``VmHWM`` after resetting it).

Threads: ``--threads`` sets torch's; NumPy's OpenBLAS follows ``OPENBLAS_NUM_THREADS`` (default:
one per core), and convnet's conv kernels deal batch chunks to that many worker threads. For a
1-thread table run ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m benchmarks.conv
--threads 1``.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import print_table, setup_threads, time_pair

# name, N, C_in, H, W, C_out, K, stride, padding, dilation, groups, transposed
SHAPES = [
    ("LeNet-5 conv1 1->6 5x5 28x28 p2", 128, 1, 28, 28, 6, 5, 1, 2, 1, 1, False),
    ("LeNet-5 conv2 6->16 5x5 14x14", 128, 6, 14, 14, 16, 5, 1, 0, 1, 1, False),
    ("ResNet-20 16->16 3x3 32x32", 128, 16, 32, 32, 16, 3, 1, 1, 1, 1, False),
    ("ResNet-20 16->32 3x3 s2 32x32", 128, 16, 32, 32, 32, 3, 2, 1, 1, 1, False),
    ("ResNet-20 32->32 3x3 16x16", 128, 32, 16, 16, 32, 3, 1, 1, 1, 1, False),
    ("ResNet-20 64->64 3x3 8x8", 128, 64, 8, 8, 64, 3, 1, 1, 1, 1, False),
    ("MobileNet dw 64 3x3 16x16", 128, 64, 16, 16, 64, 3, 1, 1, 1, 64, False),
    ("MobileNet dw 128 3x3 s2 16x16", 128, 128, 16, 16, 128, 3, 2, 1, 1, 128, False),
    ("MobileNet pw 64->128 1x1 16x16", 128, 64, 16, 16, 128, 1, 1, 0, 1, 1, False),
    ("MobileNet pw 128->128 1x1 8x8", 128, 128, 8, 8, 128, 1, 1, 0, 1, 1, False),
    ("dilated 32->32 3x3 d2 16x16", 128, 32, 16, 16, 32, 3, 1, 2, 2, 1, False),
    ("transposed 32->16 4x4 s2 16x16", 128, 32, 16, 16, 16, 4, 2, 1, 1, 1, True),
]


def make_pair(spec, dtype=np.float32):
    import torch
    import torch.nn.functional as TF

    import convnet as cn
    import convnet.functional as F

    _, n, c, h, w, o, k, s, p, d, g, transposed = spec
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wshape = (c, o // g, k, k) if transposed else (o, c // g, k, k)
    wt = (rng.standard_normal(wshape) * 0.1).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    xc, wc, bc = (cn.tensor(a, requires_grad=True) for a in (x, wt, b))
    xt, wtt, bt = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))
    if transposed:
        def fc():
            return F.conv_transpose2d(xc, wc, bc, s, p, 0, g, d)

        def ft():
            return TF.conv_transpose2d(xt, wtt, bt, s, p, 0, g, d)
    else:
        def fc():
            return F.conv2d(xc, wc, bc, s, p, d, g)

        def ft():
            return TF.conv2d(xt, wtt, bt, s, p, d, g)
    if transposed:
        out_hw = [(v - 1) * s - 2 * p + d * (k - 1) + 1 for v in (h, w)]
    else:
        out_hw = [(v + 2 * p - d * (k - 1) - 1) // s + 1 for v in (h, w)]
    gy = rng.standard_normal((n, o, *out_hw)).astype(dtype)
    gyc, gyt = cn.tensor(gy), torch.tensor(gy)

    def run_cn():
        for t in (xc, wc, bc):
            t.grad = None
        fc().backward(gyc)

    def run_th():
        for t in (xt, wtt, bt):
            t.grad = None
        ft().backward(gyt)

    return run_cn, run_th


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _memory_child(framework: str) -> None:
    """Print the peak extra RSS (MiB) of fwd+bwd of the ResNet-20 16->16 layer: first call,
    then a second call (steady state, caches and scratch already allocated)."""
    spec = SHAPES[2]
    run_cn, run_th = make_pair(spec)
    fn = run_cn if framework == "convnet" else run_th
    peaks = []
    for _ in range(2):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the RSS high-water mark (VmHWM)
        before = _rss_kib("VmRSS")
        fn()
        peaks.append((_rss_kib("VmHWM") - before) / 1024)
    print(f"{peaks[0]} {peaks[1]}")


def measure_memory() -> dict:
    out = {}
    for fw in ("convnet", "torch"):
        # Large blocks as fresh mmaps, unmapped on free: RSS then tracks live memory exactly,
        # instead of hiding allocations inside heap pages touched earlier (imports, setup).
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        res = subprocess.run([sys.executable, "-m", "benchmarks.conv", "--memory-child", fw],
                             capture_output=True, text=True, check=True, env=env,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out[fw] = [float(v) for v in res.stdout.strip().splitlines()[-1].split()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--only", default="", help="substring filter on case names")
    ap.add_argument("--memory-child", default="")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads; set OPENBLAS_NUM_THREADS to match for numpy")
    args = ap.parse_args()
    setup_threads(args.threads)
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    repeats, warmup = (3, 1) if args.quick else (args.repeats, 3)
    rows = []
    for spec in SHAPES:
        if args.only and args.only not in spec[0]:
            continue
        run_cn, run_th = make_pair(spec)
        rows.append((spec[0] + f" (N={spec[1]})", time_pair(run_cn, run_th, repeats, warmup)))
        print(f"{rows[-1][0]}: ratio {rows[-1][1]['ratio']:.2f}", file=sys.stderr, flush=True)
    print(f"conv2d forward+backward, float32, {time.strftime('%Y-%m-%d')}, "
          f"{platform.machine()} {os.cpu_count()} cores, numpy {np.__version__}")
    print_table("conv2d forward + backward (torch time / convnet time)", rows)
    if args.memory:
        mem = measure_memory()
        print("\n### Peak extra memory, ResNet-20 16->16 3x3 layer, batch 128, fwd+bwd\n")
        print("| framework | first call (MiB) | second call (MiB) |")
        print("|---|---:|---:|")
        for fw, (first, second) in mem.items():
            print(f"| {fw} | {first:.1f} | {second:.1f} |")
        ratios = [c / max(t, 1e-9) for c, t in zip(mem["convnet"], mem["torch"])]
        print(f"\nconvnet / torch: first call {ratios[0]:.2f}, second call {ratios[1]:.2f}")


if __name__ == "__main__":
    main()
