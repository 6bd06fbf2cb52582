"""Winograd F(2x2, 3x3) forward study: per-stage times against torch and convnet's conv forward.

Float32, no bias, no autograd, ResNet-20's 3x3 layers (stride 1, padding 1): for each case the
four stages of :func:`convnet.backends.numba_kernels.winograd.winograd3x3_forward` are timed
alone (weight transform, input transform, the 16 GEMMs, output transform; medians), then the
whole call, ``torch.nn.functional.conv2d`` and ``convnet.functional.conv2d`` on the NumPy
backend under ``no_grad`` (im2col + GEMM, :func:`convnet.kernels.conv.conv_forward`), each timed
alternately with torch in one process (:func:`benchmarks.common.time_pair`). numba, OpenBLAS and
torch get the same thread count (numba's OpenMP layer shares libgomp with torch).

Run: ``python -m benchmarks.backend_winograd [--batch 128] [--repeats 7] [--threads 1 2]``
(freed memory is kept, as the ``convnet`` CLI does, for both frameworks)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from benchmarks.common import time_pair

# channels, size: ResNet-20's three stages (3x3, stride 1, padding 1, C -> C)
CASES = [(16, 32), (32, 16), (64, 8)]


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(batch: int, repeats: int, threads: int) -> None:
    import numba
    import torch
    import torch.nn.functional as TF

    import convnet as cn
    import convnet.functional as F
    from convnet.backends.numba_kernels import winograd as wg
    from convnet.cli._blas import set_blas_threads

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    set_blas_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for c, size in CASES:
        x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
        w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        xc, wc = cn.tensor(x), cn.tensor(w)
        ref = TF.conv2d(xt, wt, padding=1).numpy()
        err = float(np.abs(wg.winograd3x3_forward(x, w, 1) - ref).max() / np.abs(ref).max())

        u, v = wg.weight_transform(w), wg.input_transform(x, 1)
        out = wg._staggered(c, v.shape[2], v.dtype)  # as winograd3x3_forward's
        m = np.matmul(u, v, out=out)
        stages = {
            "weights": _median_time(lambda: wg.weight_transform(w), repeats),
            "input": _median_time(lambda: wg.input_transform(x, 1), repeats),
            "gemm": _median_time(lambda: np.matmul(u, v, out=out), repeats),
            "output": _median_time(lambda: wg.output_transform(m, batch, size, size), repeats),
        }

        def fn_np():
            with cn.no_grad():
                return F.conv2d(xc, wc, padding=1)

        fn_t = lambda: TF.conv2d(xt, wt, padding=1)  # noqa: E731
        r_wg = time_pair(lambda: wg.winograd3x3_forward(x, w, 1), fn_t, repeats=repeats, warmup=1)
        r_np = time_pair(fn_np, fn_t, repeats=repeats, warmup=1)
        rows.append((f"{c}->{c} @{size}x{size}", stages, r_wg, r_np, err))

    print(f"\n### Winograd F(2x2,3x3) forward, float32, batch {batch}, {threads} thread(s)\n")
    print(f"{platform.machine()}, numba {numba.__version__} ({numba.threading_layer()}), "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}\n")
    print("| layer | U ms | V ms | GEMMs ms | Y ms | Winograd ms | convnet ms | torch ms "
          "| torch/Winograd | torch/convnet | convnet/Winograd | max rel err |")
    print("|---|" + "---:|" * 11)
    for name, st, a, b, err in rows:
        print(f"| {name} | {st['weights'] * 1e3:.2f} | {st['input'] * 1e3:.2f} | "
              f"{st['gemm'] * 1e3:.2f} | {st['output'] * 1e3:.2f} | {a['convnet_s'] * 1e3:.2f} | "
              f"{b['convnet_s'] * 1e3:.2f} | {a['torch_s'] * 1e3:.2f} | {a['ratio']:.2f} | "
              f"{b['ratio']:.2f} | {b['convnet_s'] / a['convnet_s']:.2f} | {err:.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from convnet import backends
    from convnet.kernels.allocator import retain_freed_memory

    retain_freed_memory()  # what the convnet CLI does; torch's arrays are reused too
    backends.use("numpy")
    for threads in args.threads:
        table(args.batch, args.repeats, threads)


if __name__ == "__main__":
    main()
