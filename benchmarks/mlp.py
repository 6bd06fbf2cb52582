"""MLP training step (784-512-256-10, batch 256, float32) and autograd overhead per op.

Usage: python benchmarks/mlp.py [--repeats N]
Prints Markdown tables; ratio = torch time / convnet time (above 1: convnet faster).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import convnet as cn  # noqa: E402
import convnet.nn as nn  # noqa: E402
from benchmarks.common import print_table, setup_threads, time_pair  # noqa: E402


def mlp_step_pair(batch: int = 256):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    cmodel = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    tmodel = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                 torch.nn.ReLU(), torch.nn.Linear(256, 10))
    copt = cn.optim.SGD(cmodel.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    cx, cy = cn.tensor(x), cn.tensor(y)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def cstep():
        copt.zero_grad()
        cn.functional.cross_entropy(cmodel(cx), cy).backward()
        copt.step()

    def tstep():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    return cstep, tstep


def autograd_overhead_us(n_ops: int = 2000) -> float:
    """Per-op cost of graph recording + backward on a 1-element tensor, minus NumPy's own work."""
    a = cn.tensor([1.0], requires_grad=True)
    b = cn.tensor([1.0])
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        y = a
        for _ in range(n_ops):
            y = y * b
        y.sum().backward()
        graph = time.perf_counter() - start
        arr, barr = np.array([1.0]), np.array([1.0])
        start = time.perf_counter()
        z = arr
        for _ in range(n_ops):
            z = z * barr  # forward work
            _ = z * barr  # the backward multiply
        raw = time.perf_counter() - start
        best = min(best, (graph - raw) / n_ops * 1e6)
        a.grad = None
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    setup_threads(2)
    cstep, tstep = mlp_step_pair()
    r = time_pair(cstep, tstep, repeats=args.repeats, warmup=5)
    print_table("MLP training step, 784-512-256-10, batch 256, float32", [("train step", r)])
    print(f"\nautograd overhead per op: {autograd_overhead_us():.1f} us")


if __name__ == "__main__":
    main()
