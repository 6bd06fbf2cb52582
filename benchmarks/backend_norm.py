"""Batch-norm kernels: numba backend vs NumPy backend vs torch (float32, CPU, same threads).

Times the kernels alone (arrays in, arrays out, no autograd) on the batch-norm shapes of
ResNet-20 at batch 128: training forward (``normalize_forward`` against aten's
``native_batch_norm`` with batch statistics), backward (``normalize_backward``, all three
gradients, against ``native_batch_norm_backward``) and eval (``scale_shift_forward`` against
``native_batch_norm`` with running statistics). Each backend is timed alternately with torch
in one process (:func:`benchmarks.common.time_pair`); ratios are torch / convnet.

Run: ``python -m benchmarks.backend_norm [--repeats 15] [--threads 1] [--fresh-memory]``
(by default freed memory is kept, as the ``convnet`` CLI does, for both frameworks)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics

import numpy as np

from benchmarks.common import setup_threads, time_pair

SHAPES = [
    ("ResNet 16x32x32", (128, 16, 32, 32)),
    ("ResNet 32x16x16", (128, 32, 16, 16)),
    ("ResNet 64x8x8", (128, 64, 8, 8)),
]
EPS = 1e-5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh-memory", action="store_true",
                    help="let glibc unmap freed blocks (each new array then page-faults)")
    args = ap.parse_args()
    setup_threads(args.threads)
    if not args.fresh_memory:  # what the convnet CLI does; torch's arrays are reused too
        from convnet.kernels.allocator import retain_freed_memory

        retain_freed_memory()
    from convnet import backends

    backends.use("numba")  # sets numba's cache folder before numba is imported
    import numba
    import torch

    from convnet.backends.numba_kernels import norm as nb
    from convnet.kernels import norm as ref

    numba.set_num_threads(args.threads)
    aten = torch.ops.aten
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in SHAPES:
        n, c = shape[:2]
        s3 = (n, c, shape[2] * shape[3])
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(c).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        rm, rv = rng.standard_normal(c).astype(np.float32), (rng.random(c) + 0.5).astype(np.float32)
        scale = (w / np.sqrt(rv + EPS)).astype(np.float32)
        shift = (b - rm * scale).astype(np.float32)
        xt, gt, wt, bt, rmt, rvt = map(torch.from_numpy, (x, g, w, b, rm, rv))
        _, xc, _, _, invstd = ref.normalize_forward(x, s3, s3, w, b, EPS)
        _, tmean, tinvstd = aten.native_batch_norm(xt, wt, bt, None, None, True, 0.1, EPS)

        def t_fwd():
            return aten.native_batch_norm(xt, wt, bt, None, None, True, 0.1, EPS)

        def t_bwd():
            return aten.native_batch_norm_backward(gt, xt, wt, None, None, tmean, tinvstd,
                                                   True, EPS, [True, True, True])

        def t_eval():
            return aten.native_batch_norm(xt, wt, bt, rmt, rvt, False, 0.1, EPS)

        cases = [
            ("train forward", lambda k: k.normalize_forward(x, s3, s3, w, b, EPS), t_fwd),
            ("backward", lambda k: k.normalize_backward(g, xc, invstd, s3, w, True), t_bwd),
            ("eval forward", lambda k: k.scale_shift_forward(x, scale, shift), t_eval),
        ]
        for kind, fn, fn_t in cases:
            fn(nb)  # compile (or load the cache) first
            r_nb = time_pair(lambda: fn(nb), fn_t, repeats=args.repeats)
            r_np = time_pair(lambda: fn(ref), fn_t, repeats=args.repeats)
            rows.append((f"{name} {kind}", r_nb, r_np))

    print(f"\n### Batch-norm kernels, float32, batch 128, {args.threads} thread(s)\n")
    print(f"{platform.processor() or platform.machine()}, numba {numba.__version__} "
          f"({numba.threading_layer()}), torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.2f}\n")
    print("| case | numba ms | numpy ms | torch ms | torch/numba | torch/numpy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a['convnet_s'] * 1e3:.3f} | {b['convnet_s'] * 1e3:.3f} | "
              f"{a['torch_s'] * 1e3:.3f} | {a['ratio']:.2f} | {b['ratio']:.2f} |")
    gm_nb = statistics.geometric_mean([a["ratio"] for _, a, _ in rows])
    gm_np = statistics.geometric_mean([b["ratio"] for _, _, b in rows])
    print(f"\ngeometric mean torch/convnet: numba {gm_nb:.2f}, numpy {gm_np:.2f}")


if __name__ == "__main__":
    main()
