"""Depthwise 3x3 forward: the numba study kernel vs convnet's NumPy conv path vs torch.

Float32, no bias, no autograd: ``depthwise3x3_forward`` (not wired into ``F.conv2d`` yet)
against ``convnet.functional.conv2d(groups=C)`` on the NumPy backend under ``no_grad`` and
``torch.nn.functional.conv2d(groups=C)``, on the depthwise layers of MobileNet v1 for 32x32
images (``small_input=True``). Each is timed alternately with torch in one process
(:func:`benchmarks.common.time_pair`); ratios are torch / convnet.

``--train`` times forward + backward instead (input and weight gradients, random cotangent)
through ``F.conv2d(groups=C)`` with the numba backend (compiled forward, input gradient and
weight gradient) and the NumPy backend, against torch, on three MobileNet-like layers
(:data:`TRAIN_CASES`).

Run: ``python -m benchmarks.backend_depthwise [--batch 128] [--repeats 9] [--threads 1] [--fresh-memory] [--train]``
(by default freed memory is kept, as the ``convnet`` CLI does, for both frameworks)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics

import numpy as np

from benchmarks.common import setup_threads, time_pair

# channels, size, stride: MobileNet v1 (small_input) depthwise layers
CASES = [(32, 32, 1), (128, 32, 2), (128, 16, 1), (256, 16, 2), (512, 8, 1), (1024, 4, 1)]
TRAIN_CASES = [(64, 16, 1), (128, 16, 2), (32, 32, 1)]


def train_table(batch: int, repeats: int, threads: int) -> None:
    """Forward + backward of ``F.conv2d(groups=C)``, numba and NumPy backends vs torch."""
    import numba
    import torch
    import torch.nn.functional as TF

    import convnet as cn
    import convnet.functional as F
    from convnet import backends

    rng = np.random.default_rng(0)
    rows = []
    for c, size, s in TRAIN_CASES:
        x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
        w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        g = rng.standard_normal((batch, c, (size - 1) // s + 1, (size - 1) // s + 1)).astype(
            np.float32)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        gt = torch.from_numpy(g)
        xc, wc = cn.tensor(x, requires_grad=True), cn.tensor(w, requires_grad=True)
        gc = cn.tensor(g)

        def fn_t():
            xt.grad = wt.grad = None
            TF.conv2d(xt, wt, stride=s, padding=1, groups=c).backward(gt)

        def fn_c():
            xc.grad = wc.grad = None
            F.conv2d(xc, wc, stride=s, padding=1, groups=c).backward(gc)

        fn_t()
        res, errs = {}, {}
        for name in ("numba", "numpy"):
            backends.use(name)
            fn_c()  # compiles (or loads the cache)
            errs[name] = max(float(np.abs(a.grad.numpy() - b.grad.numpy()).max()
                                   / np.abs(b.grad.numpy()).max()) for a, b in ((xc, xt), (wc, wt)))
            res[name] = time_pair(fn_c, fn_t, repeats=repeats, warmup=1)
        rows.append((f"{c}ch @{size}x{size} s{s}", res["numba"], res["numpy"],
                     max(errs.values())))
    print(f"\n### Depthwise 3x3 forward + backward (F.conv2d, grads of x and w), float32, "
          f"batch {batch}, {threads} thread(s)\n")
    print(f"{platform.machine()}, numba {numba.__version__} ({numba.threading_layer()}), "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}\n")
    print("| case | numba ms | numpy ms | torch ms | torch/numba | torch/numpy | max rel err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, a, b, err in rows:
        print(f"| {name} | {a['convnet_s'] * 1e3:.2f} | {b['convnet_s'] * 1e3:.2f} | "
              f"{a['torch_s'] * 1e3:.2f} | {a['ratio']:.2f} | {b['ratio']:.2f} | {err:.1e} |")
    gm_nb = statistics.geometric_mean([a["ratio"] for _, a, _, _ in rows])
    gm_np = statistics.geometric_mean([b["ratio"] for _, _, b, _ in rows])
    print(f"\ngeometric mean torch/convnet: numba {gm_nb:.2f}, numpy {gm_np:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh-memory", action="store_true",
                    help="let glibc unmap freed blocks (each new array then page-faults)")
    ap.add_argument("--train", action="store_true",
                    help="forward + backward through F.conv2d on both backends")
    args = ap.parse_args()
    setup_threads(args.threads)
    if not args.fresh_memory:  # what the convnet CLI does; torch's arrays are reused too
        from convnet.kernels.allocator import retain_freed_memory

        retain_freed_memory()
    if args.train:
        import numba

        numba.set_num_threads(args.threads)
        train_table(args.batch, args.repeats, args.threads)
        return
    import numba
    import torch
    import torch.nn.functional as TF

    import convnet as cn
    import convnet.functional as F
    from convnet import backends
    from convnet.backends.numba_kernels.depthwise import depthwise3x3_forward

    numba.set_num_threads(args.threads)
    backends.use("numpy")
    rng = np.random.default_rng(0)
    rows = []
    for c, size, s in CASES:
        x = rng.standard_normal((args.batch, c, size, size)).astype(np.float32)
        w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        xc, wc = cn.tensor(x), cn.tensor(w)
        ref = TF.conv2d(xt, wt, stride=s, padding=1, groups=c).numpy()
        got = depthwise3x3_forward(x, w, s, 1)  # compiles (or loads the cache)
        err = float(np.abs(got - ref).max() / np.abs(ref).max())

        def fn_np():
            with cn.no_grad():
                return F.conv2d(xc, wc, stride=s, padding=1, groups=c)

        fn_t = lambda: TF.conv2d(xt, wt, stride=s, padding=1, groups=c)  # noqa: E731
        r_nb = time_pair(lambda: depthwise3x3_forward(x, w, s, 1), fn_t, repeats=args.repeats)
        r_np = time_pair(fn_np, fn_t, repeats=args.repeats, warmup=1)
        rows.append((f"{c}ch @{size}x{size} s{s}", r_nb, r_np, err))

    print(f"\n### Depthwise 3x3 forward, float32, batch {args.batch}, {args.threads} thread(s)\n")
    print(f"{platform.machine()}, numba {numba.__version__} ({numba.threading_layer()}), "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}\n")
    print("| case | numba ms | numpy ms | torch ms | torch/numba | torch/numpy | max err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, a, b, err in rows:
        print(f"| {name} | {a['convnet_s'] * 1e3:.2f} | {b['convnet_s'] * 1e3:.2f} | "
              f"{a['torch_s'] * 1e3:.2f} | {a['ratio']:.2f} | {b['ratio']:.2f} | {err:.1e} |")
    gm_nb = statistics.geometric_mean([a["ratio"] for _, a, _, _ in rows])
    gm_np = statistics.geometric_mean([b["ratio"] for _, _, b, _ in rows])
    print(f"\ngeometric mean torch/convnet: numba {gm_nb:.2f}, numpy {gm_np:.2f}")


if __name__ == "__main__":
    main()
