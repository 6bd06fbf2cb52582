"""Speed/accuracy probe for the detectors (not a test): train ``retinanet_tiny`` and/or
``fasterrcnn_tiny`` on MNISTDetection canvases for a time (or step) budget, then report
training images/s and COCO mAP / mAP@0.5 / mAR@100 on held-out canvases (and, for Faster
R-CNN, the RPN's proposal recall@100 at IoU 0.5). Optionally draws predictions on a few test
canvases into a PNG.

    python benchmarks/detection_train.py --model retinanet_tiny --minutes 4 --picture /tmp/r.png
    python benchmarks/detection_train.py --model fasterrcnn_tiny --steps 300 --test 500

The schedule: Adam, linear warm-up over ``--warmup`` steps, then cosine decay to 0 at the end
of the budget (by elapsed time with ``--minutes``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import convnet as cn  # noqa: E402
from convnet import models  # noqa: E402
from convnet.data.datasets import MNISTDetection  # noqa: E402
from convnet.metrics import mean_average_precision  # noqa: E402


def batches(ds, batch_size, rng):
    while True:
        idx = rng.integers(0, len(ds), size=batch_size)
        items = [ds[int(i)] for i in idx]
        yield cn.stack([x for x, _ in items]), [t for _, t in items]


def evaluate(model, ds, batch_size=50):
    model.eval()
    preds, gts, props, t0 = [], [], [], time.perf_counter()
    with cn.no_grad():
        for lo in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(lo, min(lo + batch_size, len(ds)))]
            images = cn.stack([x for x, _ in items])
            preds += model(images)
            gts += [t for _, t in items]
            if hasattr(model, "proposals"):
                props += model.proposals(images)
    seconds = time.perf_counter() - t0
    m = mean_average_precision(preds, gts, class_metrics=False)
    out = {"map": m["map"], "map_50": m["map_50"], "mar_100": m["mar_100"],
           "eval_images_per_s": len(ds) / seconds}
    if props:
        found = total = 0
        for p, t in zip(props, gts):
            gt = t["boxes"]
            total += gt.shape[0]
            if gt.shape[0] and p["boxes"].shape[0]:
                iou = cn.ops.box_iou(gt, p["boxes"][:100]).numpy()
                found += int((iou.max(axis=1) >= 0.5).sum())
        out["proposal_recall_100"] = found / max(1, total)
    model.train()
    return out, preds, gts


def draw(ds, preds, gts, path, n=8, scale=4):
    from PIL import Image, ImageDraw

    tiles = []
    for i in range(n):
        img = (ds[i][0].numpy()[0] * 255).astype(np.uint8)
        im = Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale),
                                         Image.Resampling.NEAREST).convert("RGB")
        d = ImageDraw.Draw(im)
        for b in gts[i]["boxes"].numpy():
            d.rectangle([float(v) * scale for v in b], outline=(0, 200, 0))
        p = preds[i]
        for b, s, lab in zip(p["boxes"].numpy(), p["scores"].numpy(), p["labels"].numpy()):
            if s < 0.3:
                continue
            d.rectangle([float(v) * scale for v in b], outline=(255, 60, 60))
            d.text((float(b[0]) * scale + 2, float(b[1]) * scale + 1),
                   f"{ds.classes[int(lab)] if int(lab) < len(ds.classes) else lab}:{s:.2f}",
                   fill=(255, 255, 0))
        tiles.append(im)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * 4, h * ((n + 3) // 4)))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 4) * w, (i // 4) * h))
    sheet.save(path)


def run(name, args):
    cn.manual_seed(args.seed)
    train = MNISTDetection(train=True, length=args.train, seed=args.seed)
    test = MNISTDetection(train=False, length=args.test, seed=args.seed + 1)
    model = models.create(name, num_classes=train.num_classes, in_channels=1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = cn.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)
    data = batches(train, args.batch_size, rng)
    budget = args.minutes * 60 if args.minutes else None
    start, step, seen, log = time.perf_counter(), 0, 0, []
    while True:
        elapsed = time.perf_counter() - start
        frac = elapsed / budget if budget else step / args.steps
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        images, targets = next(data)
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        cn.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        step += 1
        seen += len(targets)
        if step % args.log_every == 0:
            row = {"step": step, "s": round(time.perf_counter() - start, 1),
                   **{k: round(v.item(), 4) for k, v in losses.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
    train_s = time.perf_counter() - start
    metrics, preds, gts = evaluate(model, test)
    result = {"model": name, "steps": step, "batch_size": args.batch_size,
              "train_seconds": round(train_s, 1), "train_images_per_s": round(seen / train_s, 1),
              "test_canvases": len(test), **{k: round(v, 4) for k, v in metrics.items()}}
    print(json.dumps(result), flush=True)
    if args.picture:
        root, ext = os.path.splitext(args.picture)
        path = f"{root}_{name}{ext or '.png'}"
        draw(test, preds, gts, path)
        print(f"predictions drawn in {path}")
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="both",
                   choices=["retinanet_tiny", "fasterrcnn_tiny", "both"])
    p.add_argument("--minutes", type=float, default=None, help="training time budget")
    p.add_argument("--steps", type=int, default=200, help="steps when --minutes is not given")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=None,
                   help="accepted from `make bench` (run_all passes it to every module); unused")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--train", type=int, default=60000, help="training canvases (drawn at random)")
    p.add_argument("--test", type=int, default=1000, help="held-out canvases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--picture", default=None, help="PNG of predictions on 8 test canvases")
    args = p.parse_args(argv)
    names = ["retinanet_tiny", "fasterrcnn_tiny"] if args.model == "both" else [args.model]
    return [run(n, args) for n in names]


if __name__ == "__main__":
    main()
