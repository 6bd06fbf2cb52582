"""ReLU kernels: numba backend vs NumPy backend vs torch (float32, CPU, same thread count).

Times the kernels alone (arrays in, arrays out, no autograd): forward ``max(x, 0)`` against
``torch.relu`` and backward (``g`` where ``y > 0``) against torch's ``threshold_backward``, on
the ReLU shapes of LeNet-5 and ResNet-20 at batch 128. Each backend is timed alternately with
torch in one process (:func:`benchmarks.common.time_pair`); ratios are torch / convnet.

Run: ``python -m benchmarks.backend_activation [--repeats 15] [--threads 1] [--fresh-memory]``
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
    ("LeNet 6x28x28", (128, 6, 28, 28)),
    ("ResNet 16x32x32", (128, 16, 32, 32)),
    ("ResNet 32x16x16", (128, 32, 16, 16)),
    ("ResNet 64x8x8", (128, 64, 8, 8)),
]


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
    import numba
    import torch

    from convnet.backends.numba_kernels import activation as nb
    from convnet.kernels import activation as ref

    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        y = ref.relu_forward(x)
        xt, gt, yt = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(y)
        nb.relu_forward(x), nb.relu_backward(g, y)  # compile (or load the cache) first
        t_fwd = lambda: torch.relu(xt)  # noqa: E731
        t_bwd = lambda: torch.ops.aten.threshold_backward(gt, yt, 0)  # noqa: E731
        for kind, fn_nb, fn_np, fn_t in [
            ("forward", lambda: nb.relu_forward(x), lambda: ref.relu_forward(x), t_fwd),
            ("backward", lambda: nb.relu_backward(g, y), lambda: ref.relu_backward(g, y), t_bwd),
        ]:
            r_nb = time_pair(fn_nb, fn_t, repeats=args.repeats)
            r_np = time_pair(fn_np, fn_t, repeats=args.repeats)
            rows.append((f"{name} {kind}", r_nb, r_np))

    print(f"\n### ReLU kernels, float32, batch 128, {args.threads} thread(s)\n")
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
