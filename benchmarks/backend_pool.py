"""Pooling kernels, backend against backend: numba vs NumPy vs torch (float32, CPU).

Times the kernels themselves (arrays in, arrays out, no autograd): the numba kernels of
:mod:`convnet.backends.numba_kernels.pool`, the NumPy reference kernels of
:mod:`convnet.kernels.pool` and torch's ATen ops, each case as pairs run back to back
(:func:`benchmarks.common.time_pair`, medians). "fwd" is the training forward (max pooling
records the winning offsets / torch's indices), "bwd" the input gradient.

Run: ``python -m benchmarks.backend_pool [--repeats 15] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

from benchmarks.common import setup_threads, time_pair


def _cases(B: int):
    # name, kind, input shape, kernel, stride, padding
    return [
        ("MaxPool2d(2) 6x28x28", "max", (B, 6, 28, 28), 2, 2, 0),
        ("MaxPool2d(2) 16x10x10", "max", (B, 16, 10, 10), 2, 2, 0),
        ("MaxPool2d(3, 2, 1) 64x32x32", "max", (B, 64, 32, 32), 3, 2, 1),
        ("AvgPool2d(2) 6x28x28", "avg", (B, 6, 28, 28), 2, 2, 0),
        ("AvgPool2d(3, 1, 1) 16x32x32", "avg", (B, 16, 32, 32), 3, 1, 1),
    ]


def _fns(kind, x, k, s, p):
    """{backend: (forward, backward)} zero-argument callables for one case."""
    import torch

    from convnet.backends.numba_kernels import pool as NB
    from convnet.kernels import pool as NP

    ks, ss, ps, ds = (k, k), (s, s), (p, p), (1, 1)
    xt = torch.from_numpy(x)
    fns = {}
    if kind == "max":
        for name, mod in (("numba", NB), ("numpy", NP)):
            out, arg = mod.max_pool_forward(x, ks, ss, ps, ds, False, True)
            g = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
            fns[name] = (lambda mod=mod: mod.max_pool_forward(x, ks, ss, ps, ds, False, True),
                         lambda mod=mod, g=g, arg=arg: mod.max_pool_backward(
                             g, arg, x.shape, ks, ss, ps, ds))
        out, idx = torch.ops.aten.max_pool2d_with_indices(xt, ks, ss, ps, ds, False)
        gt = torch.from_numpy(g)
        fns["torch"] = (lambda: torch.ops.aten.max_pool2d_with_indices(xt, ks, ss, ps, ds, False),
                        lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                            gt, xt, ks, ss, ps, ds, False, idx))
    else:
        for name, mod in (("numba", NB), ("numpy", NP)):
            out, div = mod.avg_pool_forward(x, ks, ss, ps, False, True, None)
            g = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
            fns[name] = (lambda mod=mod: mod.avg_pool_forward(x, ks, ss, ps, False, True, None),
                         lambda mod=mod, g=g, div=div: mod.avg_pool_backward(
                             g, div, x.shape, ks, ss, ps))
        gt = torch.from_numpy(g)
        fns["torch"] = (lambda: torch.ops.aten.avg_pool2d(xt, ks, ss, ps, False, True, None),
                        lambda: torch.ops.aten.avg_pool2d_backward(
                            gt, xt, ks, ss, ps, False, True, None))
    return fns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    import numba

    setup_threads(args.threads)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, kind, shape, k, s, p in _cases(args.batch):
        x = rng.standard_normal(shape).astype(np.float32)
        fns = _fns(kind, x, k, s, p)
        for which, label in ((0, "fwd"), (1, "bwd")):
            nb = time_pair(fns["numba"][which], fns["torch"][which], repeats=args.repeats)
            npy = time_pair(fns["numpy"][which], fns["torch"][which], repeats=args.repeats)
            rows.append((f"{name} {label}", nb, npy))
    print(f"\n### Pooling kernels, float32, batch {args.batch}, {args.threads} thread(s) "
          f"(numba {numba.__version__}, {numba.threading_layer()}; {platform.processor() or platform.machine()})\n")
    print("| case | numba ms | numpy ms | torch ms | torch/numba | torch/numpy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, nb, npy in rows:
        print(f"| {name} | {nb['convnet_s'] * 1e3:.2f} | {npy['convnet_s'] * 1e3:.2f} | "
              f"{nb['torch_s'] * 1e3:.2f} | {nb['ratio']:.2f} | {npy['ratio']:.2f} |")
    ratios = [nb["ratio"] for _, nb, _ in rows]
    print(f"\ngeometric mean torch/numba: {float(np.exp(np.mean(np.log(ratios)))):.2f}; "
          f"torch/numpy: {float(np.exp(np.mean(np.log([r[2]['ratio'] for r in rows])))):.2f}")


if __name__ == "__main__":
    main()
