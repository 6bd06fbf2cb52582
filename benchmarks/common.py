"""Shared timing harness: convnet against torch in one process.

These machines are noisy, so each repeat times convnet and torch back to back
(alternating which goes first) and the ratio is taken pair by pair; medians are
reported. ``ratio = torch_time / convnet_time``: above 1 means convnet is faster.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable


def setup_threads(n: int = 2) -> None:
    """Give both frameworks the same number of threads (call before importing torch work)."""
    import torch

    torch.set_num_threads(n)


def time_pair(
    convnet_fn: Callable[[], object],
    torch_fn: Callable[[], object],
    repeats: int = 15,
    warmup: int = 3,
) -> dict:
    """Time two zero-argument callables alternately; return medians (seconds) and ratio."""
    for _ in range(warmup):
        convnet_fn()
        torch_fn()
    t_cn, t_th, ratios = [], [], []
    for i in range(repeats):
        order = (convnet_fn, torch_fn) if i % 2 == 0 else (torch_fn, convnet_fn)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        t_cn.append(times[convnet_fn])
        t_th.append(times[torch_fn])
        ratios.append(times[torch_fn] / times[convnet_fn])
    return {
        "convnet_s": statistics.median(t_cn),
        "torch_s": statistics.median(t_th),
        "ratio": statistics.median(ratios),
    }


def print_table(title: str, rows: list[tuple[str, dict]]) -> None:
    """Print rows as a Markdown table (paste into BENCHMARKS.md)."""
    print(f"\n### {title}\n")
    print("| case | convnet ms | torch ms | torch/convnet |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['convnet_s'] * 1e3:.2f} | {r['torch_s'] * 1e3:.2f} | {r['ratio']:.2f} |")
    if rows:
        gm = statistics.geometric_mean([r["ratio"] for _, r in rows])
        print(f"\ngeometric mean ratio: {gm:.2f} (threads: torch {os.environ.get('OMP_NUM_THREADS', 'default')})")
