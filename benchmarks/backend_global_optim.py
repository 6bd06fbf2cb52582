"""Global average pooling kernels and optimizer steps, backend against backend: numba vs NumPy
vs torch (float32, CPU).

Global pooling: the kernels themselves (arrays in, arrays out): the numba kernels of
:mod:`convnet.backends.numba_kernels.global_pool`, the NumPy reference kernels of
:mod:`convnet.kernels.pool`, and what torch runs for ``adaptive_avg_pool2d(x, 1)`` (``mean``
over H, W; its backward ``g.expand(shape) / (H W)``). Optimizer steps: one whole
``convnet.optim.SGD``/``Adam`` ``step()`` on the numba and on the NumPy backend against
``torch.optim``'s default (single-tensor) ``step()``, on ResNet-20's parameter shapes
(0.27 M parameters, 59 tensors) and a 4.1 M-parameter list (seven 256x256x3x3 convs with
biases). Every case runs as pairs back to back (:func:`benchmarks.common.time_pair`, medians).

Run: ``python -m benchmarks.backend_global_optim [--repeats 15] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import math
import platform

import numpy as np

from benchmarks.common import setup_threads, time_pair


def _pool_fns(x):
    """{backend: (forward, backward)} zero-argument callables for one input."""
    import torch

    from convnet.backends.numba_kernels import global_pool as NB
    from convnet.kernels import pool as NP

    g = np.random.default_rng(1).standard_normal(x.shape[:2] + (1, 1)).astype(x.dtype)
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    count = math.prod(x.shape[2:])
    fns = {name: (lambda mod=mod: mod.global_avg_pool_forward(x),
                  lambda mod=mod: mod.global_avg_pool_backward(g, x.shape))
           for name, mod in (("numba", NB), ("numpy", NP))}
    fns["torch"] = (lambda: torch.mean(xt, (2, 3), keepdim=True),
                    lambda: gt.expand(x.shape) / count)
    return fns


def _shapes(which: str) -> list[tuple[int, ...]]:
    if which == "resnet20":
        from convnet import models

        return [tuple(p.shape) for p in models.create("resnet20").parameters()]
    return [(256, 256, 3, 3), (256,)] * 7


def _step_fns(shapes, kind: str):
    """{backend: step} for one optimizer on fresh float32 parameters with fixed gradients."""
    import torch

    import convnet as cn
    from convnet import backends, optim

    rng = np.random.default_rng(2)
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    make = {"sgd": (lambda p: optim.SGD(p, 1e-3, momentum=0.9),
                    lambda p: torch.optim.SGD(p, 1e-3, momentum=0.9)),
            "adam": (lambda p: optim.Adam(p, 1e-3), lambda p: torch.optim.Adam(p, 1e-3))}[kind]
    fns = {}
    for backend in ("numba", "numpy"):
        ps = [cn.tensor(a.copy(), requires_grad=True) for a in init]
        for p, g in zip(ps, grads):
            p.grad = cn.tensor(g)
        opt = make[0](ps)

        def step(opt=opt, backend=backend):
            backends.use(backend)
            opt.step()
        fns[backend] = step
    tps = [torch.tensor(a, requires_grad=True) for a in init]
    for p, g in zip(tps, grads):
        p.grad = torch.from_numpy(g)
    fns["torch"] = make[1](tps).step
    return fns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    import numba
    import torch

    from convnet import backends

    before = backends.name()
    backends.use("numba")
    setup_threads(args.threads)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for shape in ((args.batch, 64, 8, 8), (args.batch, 1024, 4, 4), (args.batch, 256, 7, 7)):
        fns = _pool_fns(rng.standard_normal(shape).astype(np.float32))
        for which, label in ((0, "fwd"), (1, "bwd")):
            nb = time_pair(fns["numba"][which], fns["torch"][which], repeats=args.repeats)
            npy = time_pair(fns["numpy"][which], fns["torch"][which], repeats=args.repeats)
            rows.append((f"global avg pool {'x'.join(map(str, shape))} {label}", nb, npy))
    with torch.no_grad():
        for which in ("resnet20", "4M"):
            shapes = _shapes(which)
            n = sum(math.prod(s) for s in shapes)
            for kind, label in (("sgd", "SGD momentum"), ("adam", "Adam")):
                fns = _step_fns(shapes, kind)
                nb = time_pair(fns["numba"], fns["torch"], repeats=args.repeats)
                npy = time_pair(fns["numpy"], fns["torch"], repeats=args.repeats)
                rows.append((f"{label} step, {which} ({len(shapes)} tensors, {n / 1e6:.2f} M)",
                             nb, npy))
    backends.use(before)
    print(f"\n### Global average pooling kernels and optimizer steps, float32, "
          f"{args.threads} thread(s) (numba {numba.__version__}, {numba.threading_layer()}; "
          f"{platform.processor() or platform.machine()})\n")
    print("| case | numba ms | numpy ms | torch ms | torch/numba | torch/numpy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, nb, npy in rows:
        print(f"| {name} | {nb['convnet_s'] * 1e3:.3f} | {npy['convnet_s'] * 1e3:.3f} | "
              f"{nb['torch_s'] * 1e3:.3f} | {nb['ratio']:.2f} | {npy['ratio']:.2f} |")
    ratios = [nb["ratio"] for _, nb, _ in rows]
    print(f"\ngeometric mean torch/numba: {float(np.exp(np.mean(np.log(ratios)))):.2f}; "
          f"torch/numpy: {float(np.exp(np.mean(np.log([r[2]['ratio'] for r in rows])))):.2f}")


if __name__ == "__main__":
    main()
