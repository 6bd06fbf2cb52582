"""Training-loop overhead: convnet's Trainer + DataLoader against a bare forward/backward loop.

The bare loop runs forward, cross-entropy, backward and the optimizer step over batches that
are already normalised tensors in memory. The Trainer epoch does the same work plus everything
a real run needs: shuffling, per-batch ToTensor + Normalize (+ augmentation in one row) in
background threads, loss/accuracy bookkeeping, and optionally the tqdm progress bar.
Both are timed alternately in one process (these machines are noisy); overhead is
``trainer_time / bare_time - 1`` per pair, median reported. A torch row gives the same bare
loop in PyTorch for scale.

Usage: python benchmarks/training_loop.py [--model lenet5] [--images 2048] [--repeats 7]
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from contextlib import redirect_stderr
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import convnet as cn  # noqa: E402
from convnet import models  # noqa: E402
from convnet.data import DataLoader, datasets  # noqa: E402
from convnet.data import transforms as T  # noqa: E402
from convnet.data.dataset import Subset  # noqa: E402
from convnet.functional import cross_entropy  # noqa: E402
from convnet.training import Trainer  # noqa: E402

MEAN, STD = (0.1307,), (0.3081,)


def build(model_name: str, n_images: int, batch: int):
    cn.manual_seed(0)
    model = models.create(model_name)
    opt = cn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    base = datasets.BundledMNIST(train=True)
    idx = np.arange(n_images)
    x = ((base.images[idx].astype(np.float32) / 255 - MEAN[0]) / STD[0]).astype(np.float32)
    y = base.targets[idx]
    batches = [(cn.Tensor._make(x[i:i + batch]), cn.Tensor._make(y[i:i + batch]))
               for i in range(0, n_images, batch)]

    def bare():
        model.train()
        for xb, yb in batches:
            loss = cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def trainer_fn(augment: bool, progress: bool, workers: int):
        steps = [T.ToTensor()] + ([T.RandomCrop(28, padding=2)] if augment else []) + [T.Normalize(MEAN, STD)]
        ds = Subset(datasets.BundledMNIST(train=True, transform=T.Compose(steps)), idx)
        loader = DataLoader(ds, batch, shuffle=True, num_workers=workers, seed=0)
        tr = Trainer(model, opt, loader, None, epochs=1, progress=progress, log=None)

        def run():
            with redirect_stderr(io.StringIO()):  # the bar's output is not what we measure
                tr.train_epoch()
        return run

    return bare, trainer_fn


def torch_bare(n_images: int, batch: int):
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10))
    opt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(min(batch, n_images - i), 1, 28, 28, generator=g),
                torch.randint(0, 10, (min(batch, n_images - i),), generator=g))
               for i in range(0, n_images, batch)]

    def run():
        for xb, yb in batches:
            loss = torch.nn.functional.cross_entropy(tm(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return run


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="OpenBLAS threads (default: OpenBLAS's own; 1 avoids spin-waiting on busy cores)")
    args = ap.parse_args()
    if args.threads:
        from convnet.cli._blas import set_blas_threads

        set_blas_threads(args.threads)
    n, bs = args.images, args.batch_size
    bare, make = build(args.model, n, bs)
    cases = [
        ("Trainer, 2 loader threads, no bar", make(False, False, 2)),
        ("Trainer, 2 loader threads, tqdm bar", make(False, True, 2)),
        ("Trainer, 0 loader threads (inline), no bar", make(False, False, 0)),
        ("Trainer + RandomCrop augmentation, 2 threads", make(True, False, 2)),
    ]
    for _, fn in cases:  # warm up (first runs on these VMs are slow)
        fn()
    bare()
    rows = []
    for name, fn in cases:
        tb, tt, ratios = [], [], []
        for r in range(args.repeats):
            a, b = (timed(bare), timed(fn)) if r % 2 == 0 else tuple(reversed((timed(fn), timed(bare))))
            tb.append(a)
            tt.append(b)
            ratios.append(b / a)
        rows.append((name, statistics.median(tb), statistics.median(tt), statistics.median(ratios) - 1))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n### Training-loop overhead ({args.model}, {n} bundled MNIST images per epoch, batch "
          f"{bs}, float32)\n")
    print(f"{now}; {platform.machine()} machine, {os.cpu_count()} cores (shared), NumPy {np.__version__}, "
          f"BLAS threads: {args.threads or 'default'}; median of {args.repeats} alternating pairs.\n")
    print("| case | bare loop s/epoch | with Trainer s/epoch | overhead | Trainer img/s |")
    print("|---|---:|---:|---:|---:|")
    for name, b, t, ov in rows:
        print(f"| {name} | {b:.3f} | {t:.3f} | {ov * 100:+.1f}% | {n / t:,.0f} |")
    if not args.no_torch and args.model == "lenet5":
        tfn = torch_bare(n, bs)
        tfn()
        tt = statistics.median(timed(tfn) for _ in range(args.repeats))
        tb = statistics.median(timed(bare) for _ in range(args.repeats))
        print(f"\nFor scale, the bare loop in PyTorch 2 threads (same LeNet-5 layout): {tt:.3f} s/epoch "
              f"({n / tt:,.0f} img/s) vs convnet {tb:.3f} s/epoch ({n / tb:,.0f} img/s).")


if __name__ == "__main__":
    main()
