"""Pooling and normalization layers, convnet vs torch (float32, CPU, same thread count).

Shapes are those of LeNet-5 (pooling after the two convs) and ResNet-20 (batch norm at the
three stages, global average pooling), batch 128. Each case times the forward pass (no
graph) and a training step (forward + backward with a fixed random cotangent).

Run: ``python -m benchmarks.pool_norm [--repeats 15] [--threads 2]`` (``--threads 1`` gives
the fair comparison on a loaded machine: NumPy ufuncs are single-threaded anyway).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform

import numpy as np

from benchmarks.common import print_table, setup_threads, time_pair


def _cases():
    import torch

    import convnet as cn
    import convnet.nn as nn

    B = 128
    specs = [
        # name, convnet layer, torch layer, input shape
        ("LeNet AvgPool2d(2) 6x28x28", nn.AvgPool2d(2), torch.nn.AvgPool2d(2), (B, 6, 28, 28)),
        ("LeNet AvgPool2d(2) 16x10x10", nn.AvgPool2d(2), torch.nn.AvgPool2d(2), (B, 16, 10, 10)),
        ("LeNet MaxPool2d(2) 6x28x28", nn.MaxPool2d(2), torch.nn.MaxPool2d(2), (B, 6, 28, 28)),
        ("LeNet MaxPool2d(2) 16x10x10", nn.MaxPool2d(2), torch.nn.MaxPool2d(2), (B, 16, 10, 10)),
        ("MaxPool2d(3, 2, 1) 16x32x32", nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1),
         (B, 16, 32, 32)),
        ("ResNet BatchNorm2d 16x32x32", nn.BatchNorm2d(16), torch.nn.BatchNorm2d(16),
         (B, 16, 32, 32)),
        ("ResNet BatchNorm2d 32x16x16", nn.BatchNorm2d(32), torch.nn.BatchNorm2d(32),
         (B, 32, 16, 16)),
        ("ResNet BatchNorm2d 64x8x8", nn.BatchNorm2d(64), torch.nn.BatchNorm2d(64),
         (B, 64, 8, 8)),
        ("ResNet global AdaptiveAvgPool2d(1) 64x8x8", nn.AdaptiveAvgPool2d(1),
         torch.nn.AdaptiveAvgPool2d(1), (B, 64, 8, 8)),
    ]
    rng = np.random.default_rng(0)
    for name, ours, ref, shape in specs:
        x = rng.standard_normal(shape).astype(np.float32)
        yield name, ours, ref, x, cn, torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    setup_threads(args.threads)
    fwd_rows, train_rows, eval_rows = [], [], []
    for name, ours, ref, x, cn, torch in _cases():
        xc, xt = cn.tensor(x), torch.tensor(x)
        with cn.no_grad():
            g_np = np.random.default_rng(1).standard_normal(ours(xc).shape).astype(np.float32)
        gc, gt = cn.tensor(g_np), torch.tensor(g_np)

        def cn_fwd():
            with cn.no_grad():
                ours(xc)

        def th_fwd():
            with torch.no_grad():
                ref(xt)

        xcg = cn.tensor(x, requires_grad=True)
        xtg = torch.tensor(x, requires_grad=True)

        def cn_train():
            ours(xcg).backward(gc)

        def th_train():
            ref(xtg).backward(gt)

        fwd_rows.append((name, time_pair(cn_fwd, th_fwd, repeats=args.repeats)))
        train_rows.append((name, time_pair(cn_train, th_train, repeats=args.repeats)))
        if "BatchNorm" in name:
            ours.eval()
            ref.eval()
            eval_rows.append((name + " (eval)", time_pair(cn_fwd, th_fwd, repeats=args.repeats)))
            ours.train()
            ref.train()
    fold_rows = _conv_bn_eval_rows(args.repeats)
    print(f"# pooling and normalization, float32, batch 128, {args.threads} threads "
          f"({datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores)")
    print_table("forward, training mode (no graph)", fwd_rows)
    print_table("forward + backward", train_rows)
    print_table("batch norm forward, eval mode", eval_rows)
    print_table("conv 3x3 + batch norm, eval mode (torch: eager Conv2d -> BatchNorm2d)",
                fold_rows)


def _conv_bn_eval_rows(repeats: int) -> list:
    """Inference of conv -> batch norm at the ResNet-20 stages: convnet unfolded and folded
    (``nn.utils.fuse_conv_bn_eval``) against torch's eager pair."""
    import torch

    import convnet as cn
    import convnet.nn as nn

    rows = []
    rng = np.random.default_rng(2)
    for c, size in ((16, 32), (32, 16), (64, 8)):
        x = rng.standard_normal((128, c, size, size)).astype(np.float32)
        conv, bn = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        bn.running_mean.data[:] = rng.standard_normal(c)
        bn.running_var.data[:] = rng.random(c) + 0.5
        conv.eval(), bn.eval()
        fused = nn.utils.fuse_conv_bn_eval(conv, bn)
        tconv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).eval()
        tbn = torch.nn.BatchNorm2d(c).eval()
        xc, xt = cn.tensor(x), torch.tensor(x)

        def unfolded():
            with cn.no_grad():
                bn(conv(xc))

        def folded():
            with cn.no_grad():
                fused(xc)

        def th():
            with torch.no_grad():
                tbn(tconv(xt))

        name = f"conv {c}->{c} 3x3 + BN, {size}x{size}"
        rows.append((name + ", convnet unfolded", time_pair(unfolded, th, repeats=repeats)))
        rows.append((name + ", convnet folded", time_pair(folded, th, repeats=repeats)))
    return rows


if __name__ == "__main__":
    main()
