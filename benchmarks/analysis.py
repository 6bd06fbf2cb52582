"""Analysis tools against hand-written torch equivalents: Grad-CAM and saliency on LeNet-5
(batch 64, float32), a classic filter on the sample photograph, and summary() tracing cost.

Usage: python benchmarks/analysis.py [--repeats N]
Prints Markdown tables; ratio = torch time / convnet time (above 1: convnet faster).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import convnet as cn  # noqa: E402
from benchmarks.common import print_table, setup_threads, time_pair  # noqa: E402
from convnet import filters, models, viz  # noqa: E402
from convnet.analysis import SAMPLE_IMAGE, grad_cam, saliency_map, summary  # noqa: E402

tf = torch.nn.functional


def torch_lenet(cmodel):
    """torch LeNet-5 (max pooling) with the convnet model's weights."""
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10))
    src = [p.numpy() for p in cmodel.parameters()]
    with torch.no_grad():
        for p, s in zip(t.parameters(), src):
            p.copy_(torch.from_numpy(s))
    return t.eval()


def torch_grad_cam(t, x, layer_idx=4):
    acts = []
    def hook(m, i, o):
        o.retain_grad()
        acts.append(o)

    h = t[layer_idx].register_forward_hook(hook)
    scores = t(x)
    h.remove()
    top = scores.argmax(1)
    scores.gather(1, top[:, None]).sum().backward()
    a = acts[0]
    cam = torch.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    cam = tf.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    return (cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]).detach()


def torch_saliency(t, x):
    x = x.detach().requires_grad_(True)
    scores = t(x)
    scores.gather(1, scores.argmax(1)[:, None]).sum().backward()
    s = x.grad.abs().amax(1)
    return s / s.flatten(1).amax(1)[:, None, None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (set OPENBLAS_NUM_THREADS to the same for NumPy)")
    args = ap.parse_args()
    setup_threads(args.threads)
    cn.manual_seed(0)
    cmodel = models.create("lenet5", pooling="max").eval()
    tmodel = torch_lenet(cmodel)
    x = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
    tx = torch.from_numpy(x)
    ref = torch_grad_cam(tmodel, tx).numpy()
    np.testing.assert_allclose(grad_cam(cmodel, x, "features.4", upsample="resize"), ref, atol=1e-4)
    rows = [
        ("grad_cam LeNet-5 b64 (resize)",
         time_pair(lambda: grad_cam(cmodel, x, "features.4", upsample="resize"),
                   lambda: torch_grad_cam(tmodel, tx), args.repeats)),
        ("grad_cam LeNet-5 b64 (field-aligned; torch: resize)",
         time_pair(lambda: grad_cam(cmodel, x, "features.4"),
                   lambda: torch_grad_cam(tmodel, tx), args.repeats)),
        ("saliency LeNet-5 b64",
         time_pair(lambda: saliency_map(cmodel, x), lambda: torch_saliency(tmodel, tx), args.repeats)),
    ]
    photo = viz.load_image(SAMPLE_IMAGE, "RGB").astype(np.float32)[None]
    k = filters.kernel("sobel_x").astype(np.float32)
    tw = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(k, (3, 1, 3, 3))))
    tp = torch.from_numpy(photo)
    np.testing.assert_allclose(filters.apply(photo, "sobel_x"),
                               tf.conv2d(tf.pad(tp, (1, 1, 1, 1), mode="reflect"), tw,
                                         groups=3).numpy(),
                               atol=1e-5)
    rows.append(("filters.apply sobel_x 3x256x218",
                 time_pair(lambda: filters.apply(photo, "sobel_x"),
                           lambda: tf.conv2d(tf.pad(tp, (1, 1, 1, 1), mode="reflect"), tw, groups=3),
                           args.repeats)))
    print_table(f"Analysis tools (float32, {args.threads} thread(s))", rows)

    # summary() has no torch counterpart: report its cost next to one forward pass
    print("\n### summary() tracing cost (no torch counterpart)\n")
    print("| model | input | summary ms | one forward ms (no_grad) |")
    print("|---|---|---:|---:|")
    for name, shape in (("lenet5", (1, 28, 28)), ("resnet20", (3, 32, 32))):
        m = models.create(name, in_channels=shape[0]).eval()
        xin = cn.tensor(np.zeros((1, *shape), np.float32))
        summary(m, shape)
        t0 = time.perf_counter()
        for _ in range(5):
            summary(m, shape)
        ts = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        with cn.no_grad():
            for _ in range(5):
                m(xin)
        tf_ = (time.perf_counter() - t0) / 5
        print(f"| {name} | {shape} | {ts * 1e3:.1f} | {tf_ * 1e3:.1f} |")


if __name__ == "__main__":
    main()
