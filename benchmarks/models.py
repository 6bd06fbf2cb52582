"""Model-zoo benchmark: convnet against the same architectures built from torch.nn.

Inference (eval mode, no grad) and one training step (forward, cross-entropy, backward, SGD
with momentum) at batch 128, timed alternately in one process (``benchmarks/common.py``).

    python -m benchmarks.models [--repeats 7] [--only resnet20,mobilenet_v1] [--fused]
                                [--retain-memory]

``--retain-memory`` calls ``convnet.kernels.allocator.retain_freed_memory()`` first (what the
``convnet`` CLI does). It changes glibc's allocator for the whole process, so torch's arrays
are reused too: both sides run with the same allocator either way.

Training epochs on Fashion-MNIST (60,000 images) are estimated as 469 steps of batch 128.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "2")

from benchmarks.common import print_table, setup_threads, time_pair  # noqa: E402


def _cases():
    import convnet.models as models
    from tests.models import torch_refs

    # name -> (convnet builder, torch builder, input shape per image)
    return {
        "resnet20": (lambda: models.create("resnet20", 10, 3),
                     lambda: torch_refs.CifarResNet(20, 10, 3), (3, 32, 32)),
        "mobilenet_v1": (lambda: models.create("mobilenet_v1", 10, 3, small_input=True),
                         lambda: torch_refs.MobileNetV1(10, 3, small_input=True), (3, 32, 32)),
        "lenet5": (lambda: models.create("lenet5", 10, 1),
                   lambda: torch_refs.LeNet5(10, 1), (1, 28, 28)),
        "resnet20-fmnist": (lambda: models.create("resnet20", 10, 1),
                            lambda: torch_refs.CifarResNet(20, 10, 1), (1, 28, 28)),
        "mobilenet_v2-fmnist": (
            lambda: models.create("mobilenet_v2", 10, 1, small_input=True, width_mult=0.5),
            lambda: torch_refs.MobileNetV2(10, 1, width_mult=0.5, small_input=True), (1, 28, 28)),
        "shufflenet_v2_x0_5-fmnist": (
            lambda: models.create("shufflenet_v2_x0_5", 10, 1, small_input=True),
            lambda: torch_refs.ShuffleNetV2(widths=(24, 48, 96, 192, 1024), num_classes=10,
                                            in_channels=1, small_input=True), (1, 28, 28)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--fused", action="store_true",
                        help="also time inference with batch norm folded into the convs")
    parser.add_argument("--retain-memory", action="store_true",
                        help="keep freed memory for reuse (glibc), for both frameworks")
    args = parser.parse_args()
    if args.retain_memory:
        from convnet.kernels.allocator import retain_freed_memory

        print(f"retain_freed_memory: {retain_freed_memory()}")
    setup_threads(2)
    import torch

    import convnet as cn
    import convnet.functional as F
    from convnet import optim

    cases = _cases()
    names = [n for n in cases if not args.only or n in args.only.split(",")]
    infer_rows, train_rows = [], []
    for name in names:
        make_cn, make_th, shape = cases[name]
        cn.manual_seed(0)
        torch.manual_seed(0)
        m_cn, m_th = make_cn(), make_th()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((args.batch,) + shape).astype(np.float32)
        y = rng.integers(0, 10, args.batch)
        x_cn, x_th = cn.tensor(x), torch.tensor(x)
        y_cn, y_th = cn.tensor(y), torch.tensor(y)

        m_cn.eval()
        m_th.eval()

        def infer_cn():
            with cn.no_grad():
                m_cn(x_cn)

        def infer_th():
            with torch.no_grad():
                m_th(x_th)

        infer_rows.append((f"{name} infer b{args.batch}",
                           time_pair(infer_cn, infer_th, args.repeats, warmup=2)))
        if args.fused:
            # batch norm folded into the convs on both sides (torch through torch.fx), so the
            # ratio compares the fused inference paths
            f_cn = cn.nn.utils.fuse_conv_bn(m_cn, x_cn[:2])
            from torch.fx.experimental.optimization import fuse as fx_fuse
            f_th = fx_fuse(m_th)

            def infer_cn_fused():
                with cn.no_grad():
                    f_cn(x_cn)

            def infer_th_fused():
                with torch.no_grad():
                    f_th(x_th)

            infer_rows.append((f"{name} infer b{args.batch}, BN folded (both)",
                               time_pair(infer_cn_fused, infer_th_fused, args.repeats,
                                         warmup=2)))
            infer_rows.append((f"{name} infer b{args.batch}, convnet folded / torch eager",
                               time_pair(infer_cn_fused, infer_th, args.repeats, warmup=2)))
        if args.no_train:
            continue
        m_cn.train()
        m_th.train()
        o_cn = optim.SGD(m_cn.parameters(), lr=0.01, momentum=0.9)
        o_th = torch.optim.SGD(m_th.parameters(), lr=0.01, momentum=0.9)

        def train_cn():
            o_cn.zero_grad()
            F.cross_entropy(m_cn(x_cn), y_cn).backward()
            o_cn.step()

        def train_th():
            o_th.zero_grad()
            torch.nn.functional.cross_entropy(m_th(x_th), y_th).backward()
            o_th.step()

        train_rows.append((f"{name} train step b{args.batch}",
                           time_pair(train_cn, train_th, max(3, args.repeats // 2), warmup=1)))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"{os.cpu_count()} cores, numpy {np.__version__}, torch {torch.__version__}")
    print_table("Model inference (images/s = batch / time)", infer_rows)
    for name, r in infer_rows:
        print(f"- {name}: convnet {args.batch / r['convnet_s']:,.0f} img/s, "
              f"torch {args.batch / r['torch_s']:,.0f} img/s")
    if train_rows:
        print_table("Model training step (forward + backward + SGD momentum)", train_rows)
        for name, r in train_rows:
            steps = int(np.ceil(60000 / args.batch))
            print(f"- {name}: est. Fashion-MNIST epoch ({steps} steps) convnet "
                  f"{r['convnet_s'] * steps:.0f} s, torch {r['torch_s'] * steps:.0f} s")


if __name__ == "__main__":
    main()
