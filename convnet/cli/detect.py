"""``--task detect``: the detection side of ``convnet train``, ``evaluate`` and ``predict``.

Detectors (``retinanet_tiny``, ``fasterrcnn_tiny``) train on canvases of several digits
(``mnist-detect``: :class:`~convnet.data.datasets.MNISTDetection`) or Fashion-MNIST items
(``fashion-detect``) with :class:`~convnet.training.detection.DetectionTrainer`, which keeps
the Trainer's checkpoints, exact resume and metrics.json, and measures COCO mAP
(:func:`convnet.metrics.mean_average_precision`) where a classifier measures accuracy.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

# Canvases are drawn with this seed: every run sees the same training and test canvases (the
# validation canvases held out of the training ones depend on --seed, as for classifiers).
CANVAS_SEED = 0
# Settings of `convnet train --task detect` that differ from the classifiers' defaults (read
# from the detectors' benchmark, benchmarks/detection_train.py: Adam 2e-3, batch 16, a linear
# warm-up then cosine decay per step, gradient norm clipped at 10).
DETECT_DEFAULTS = {
    "train_canvases": 10000, "test_canvases": 1000, "canvas_size": 64, "batch_size": 16,
    "optimizer": "adam", "lr": 2e-3, "scheduler": "cosine", "warmup_steps": 100,
    "clip_grad": 10.0,
}
# Epochs per detector, sized for the budgets on 2 shared cores (20 / 30 minutes of
# training at the probe's ~37 / ~15 images/s over 9,000 training canvases).
DETECT_EPOCHS = {"retinanet_tiny": 4, "fasterrcnn_tiny": 2}
DETECT_AUGMENTS = ("none", "scale")
# Options of classifier runs that mean nothing for canvases (refused with a pointer).
NOT_FOR_DETECT = {"limit_train": "--train-canvases", "limit_test": "--test-canvases",
                  "image_size": "--canvas-size", "grayscale": None, "label_smoothing": None}
CANVAS_OPTIONS = ("train_canvases", "test_canvases", "canvas_size", "warmup_steps", "clip_grad")


def _dataset_class(name: str):
    from ..data import datasets as D

    return D.MNISTDetection if name == "mnist-detect" else D.FashionMNISTDetection


def detection_info(cfg: dict):
    """:class:`~._setup.DatasetInfo` of a canvas dataset: 1 channel in [0, 1] (the detectors
    take raw pixels), ``canvas_size``, and the labels ``['__background__', classes...]``."""
    from ._setup import DatasetInfo

    cls = _dataset_class(cfg["dataset"])
    size = int(cfg.get("canvas_size") or DETECT_DEFAULTS["canvas_size"])
    return DatasetInfo(1, size, (0.0,), (1.0,), ["__background__"] + list(cls.source_classes))


def apply_defaults(cfg: dict, given: dict) -> None:
    """Fill the detection defaults the command line left out; refuse classifier-only options."""
    for key, instead in NOT_FOR_DETECT.items():
        if key in given:
            hint = f"; use {instead}" if instead else ""
            raise ValueError(f"--{key.replace('_', '-')} does not apply to --task detect{hint}")
    for key, value in DETECT_DEFAULTS.items():
        if key not in given:
            cfg[key] = value
    if "epochs" not in given:
        cfg["epochs"] = DETECT_EPOCHS.get(cfg["model"], 4)
    augs = [a for a in (cfg.get("augment") or "none").split(",") if a]
    bad = [a for a in augs if a not in DETECT_AUGMENTS]
    if bad:
        raise ValueError(f"--augment {','.join(bad)}: not a detection augmentation; --task detect "
                         f"takes {', '.join(DETECT_AUGMENTS)} (scale: resize by 0.8-1.25 and "
                         "crop/pad back to the canvas, boxes moved with the pixels; no flips: a "
                         "mirrored digit is no digit)")
    for key, lo in (("train_canvases", 2), ("test_canvases", 1), ("warmup_steps", 0)):
        if int(cfg[key]) < lo:
            raise ValueError(f"--{key.replace('_', '-')} must be >= {lo}, got {cfg[key]}")
    if float(cfg["clip_grad"]) < 0:
        raise ValueError(f"--clip-grad must be >= 0 (0: no clipping), got {cfg['clip_grad']}")
    largest = round(28 * 1.6)  # MNISTDetection's default scale (0.6, 1.6) of a 28 px frame
    if int(cfg["canvas_size"]) < largest:
        raise ValueError(f"--canvas-size {cfg['canvas_size']}: smaller than the largest object "
                         f"({largest} px: 28 px items scaled up to 1.6x); use >= {largest}")


def detection_dataset(cfg: dict, train: bool, augment: bool = False):
    """The training or test canvases of ``cfg`` (``augment``: the --augment pipeline)."""
    from ..data import detection_transforms as DT

    transforms = None
    augs = [a for a in (cfg.get("augment") or "none").split(",") if a and a != "none"]
    if augment and "scale" in augs:
        s = int(cfg["canvas_size"])
        transforms = DT.Compose([DT.RandomScale((0.8, 1.25)),
                                 DT.RandomCrop(s, pad_if_needed=True)])
    kwargs = {"train": train, "canvas_size": int(cfg["canvas_size"]), "seed": CANVAS_SEED,
              "length": int(cfg["train_canvases" if train else "test_canvases"]),
              "transforms": transforms}
    root = cfg.get("data_dir")
    if cfg["dataset"] == "mnist-detect":
        # the bundled digits unless a folder of the full MNIST files is given
        kwargs.update(source="mnist" if root else "bundled", root=root,
                      download=bool(cfg.get("download")))
    else:
        kwargs.update(root=root, download=bool(cfg.get("download")))
    return _dataset_class(cfg["dataset"])(**kwargs)


def dataset_settings(cfg: dict, ds) -> dict:
    """What metrics.json records about the canvases."""
    return {"dataset": cfg["dataset"], "source": getattr(ds.source, "__class__").__name__,
            "train_canvases": int(cfg["train_canvases"]),
            "test_canvases": int(cfg["test_canvases"]), "canvas_size": int(cfg["canvas_size"]),
            "objects_per_canvas": [ds.min_objects, ds.max_objects], "scale": list(ds.scale),
            "max_overlap_iou": ds.max_overlap_iou, "canvas_seed": CANVAS_SEED}


def make_scheduler(cfg: dict, opt, steps_per_epoch: int):
    """Per-step learning rate: a linear warm-up over ``warmup_steps``, then the schedule of
    ``--scheduler`` over the run's ``epochs * steps_per_epoch`` steps (cosine to 0, step decay
    every ``step_size`` epochs, exponential per epoch, or constant for ``none``).

    A plain function inside :class:`~convnet.optim.lr_scheduler.LambdaLR` (checkpoints keep
    only its step count), so a resumed run with more --epochs recomputes the stretched
    schedule. ``onecycle`` is the classifiers' OneCycleLR (its own warm-up)."""
    from ..optim import lr_scheduler as S

    name, epochs = cfg["scheduler"], int(cfg["epochs"])
    total, warm = max(1, epochs * steps_per_epoch), int(cfg.get("warmup_steps") or 0)
    spe = max(1, steps_per_epoch)
    if name == "onecycle":
        return S.OneCycleLR(opt, max_lr=float(cfg["lr"]), total_steps=total), "batch"
    gamma, step_size = float(cfg["gamma"]), int(cfg["step_size"])

    def factor(step: int) -> float:
        w = min(1.0, (step + 1) / warm) if warm else 1.0
        if name == "cosine":
            return w * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if name == "step":
            return w * gamma ** (step // (step_size * spe))
        if name == "exponential":
            return w * gamma ** (step // spe)
        return w

    return S.LambdaLR(opt, factor), "batch"


def collate():
    from ..data.datasets import collate_detection

    return collate_detection


def run_train(args, cfg: dict, out: Path) -> int:
    """``convnet train --task detect``: the classifier flow of :func:`.train.run` with canvases,
    detector losses and COCO mAP."""
    from .. import manual_seed
    from ..data import DataLoader
    from ..data.dataset import Subset
    from ..training import EarlyStopping, RestoreBestWeights
    from ..training.detection import DetectionTrainer
    from ._setup import build_model, model_options
    from .train import interrupted_message, plural, prepare_run_folder, validation_record

    manual_seed(int(cfg["seed"]))
    info = detection_info(cfg)
    model_options(cfg, info)
    train_set = detection_dataset(cfg, True, augment=True)
    test_set = detection_dataset(cfg, False)
    val_set, val_split = None, float(cfg["val_split"])
    if val_split > 0:  # hold canvases out of training, chosen by the seed
        perm = np.random.default_rng([int(cfg["seed"]), 7]).permutation(len(train_set))
        n_val = max(1, int(len(train_set) * val_split))
        val_set = Subset(detection_dataset(cfg, True), perm[:n_val])
        train_set = Subset(train_set, perm[n_val:])
    bs, workers = int(cfg["batch_size"]), int(cfg["workers"])
    train_loader = DataLoader(train_set, bs, shuffle=True, num_workers=workers,
                              seed=int(cfg["seed"]), collate_fn=collate())
    eval_bs = max(bs, 50)
    val_loader = (DataLoader(val_set, eval_bs, num_workers=min(workers, 1), collate_fn=collate())
                  if val_set is not None else None)
    test_loader = DataLoader(test_set, eval_bs, num_workers=min(workers, 1), collate_fn=collate())

    model = build_model(cfg, info)
    from .train import make_optimizer

    opt = make_optimizer(cfg, model.parameters())
    sched, sched_step = make_scheduler(cfg, opt, len(train_loader))
    patience = int(cfg["early_stopping"] or 0)
    callbacks = [EarlyStopping("val_map", patience, mode="max")] if patience else []
    if cfg.get("restore_best"):
        callbacks.append(RestoreBestWeights("val_map", mode="max"))
    cfg["class_names"], cfg["in_channels"] = list(info.classes), info.channels
    cfg["image_size_used"] = info.size
    cfg["mean"], cfg["std"] = list(info.mean), list(info.std)
    n_params = sum(p._data.size for p in model.parameters())
    cfg["title"] = f"{cfg['model']} on {cfg['dataset']}" + (
        f" (validation: {val_split:.0%} of the training canvases)" if val_set is not None else "")
    progress = "auto" if args.progress is None else bool(args.progress)
    trainer = DetectionTrainer(model, opt, train_loader, val_loader, scheduler=sched,
                               scheduler_step=sched_step, epochs=int(cfg["epochs"]),
                               out_dir=out, callbacks=callbacks, class_names=info.classes,
                               progress=progress, config=cfg,
                               clip_grad_norm=float(cfg["clip_grad"]) or None)
    prepare_run_folder(trainer, args, cfg, opt, out,
                       lambda: make_scheduler(cfg, opt, len(train_loader)), len(train_loader))
    held = (f"{len(val_set):,} validation ({val_split:.0%} of the training canvases)"
            if val_set is not None else "no validation (--val-split 0)")
    print(f"training {cfg['model']} ({n_params:,} parameters) on {cfg['dataset']} "
          f"({info.size}x{info.size} canvases): {len(train_set):,} train / {held}, "
          f"{plural(int(cfg['epochs']), 'epoch')}, {cfg['optimizer']} lr {cfg['lr']} "
          f"({cfg['scheduler']}, {cfg['warmup_steps']} warm-up steps), batch {bs}; the "
          f"{len(test_set):,} test canvases are evaluated once, at the end", flush=True)
    start = time.perf_counter()
    try:
        trainer.fit()
        wall = time.perf_counter() - start
        test = trainer.evaluate(test_loader, confusion=True, proposals=True)
    except KeyboardInterrupt:
        print(interrupted_message(trainer, out), file=sys.stderr)
        return 130
    extra = {k if k.startswith("per_class") or k == "proposal_recall_100" else "test_" + k: v
             for k, v in test.items()}
    extra.update({"class_names": list(info.classes), "parameters": int(n_params),
                  "wall_time_s_last_session": wall,
                  "data": dataset_settings(cfg, test_set),
                  "validation": validation_record(val_set, val_split, cfg, "training canvases")})
    if trainer.history and val_set is not None:
        best = max(trainer.history, key=lambda h: h["val_map"])
        extra["best_epoch"] = best["epoch"]  # by validation mAP, the criterion of --restore-best
    extra["weights_epoch"] = trainer.restored_epoch or trainer.epoch
    trainer.write_metrics(out, extra)
    which = (f"weights of epoch {trainer.restored_epoch}" if trainer.restored_epoch else
             f"after {plural(trainer.epoch, 'epoch')}")
    recall = (f", RPN proposal recall@100 {test['proposal_recall_100']:.4f}"
              if "proposal_recall_100" in test else "")
    print(f"test mAP@0.5 {test['map_50']:.4f}, COCO mAP {test['map']:.4f}, mAP@0.75 "
          f"{test['map_75']:.4f}, mAR@100 {test['mar_100']:.4f}{recall} on "
          f"{len(test_set):,} held-out canvases, {which}; training time "
          f"{trainer.train_time:.1f}s")
    print(f"checkpoint: {out / 'model.safetensors'} (resume state: "
          f"{out / 'checkpoint.safetensors'})")
    print(f"curves:     {out / 'curves.png'}")
    print(f"metrics:    {out / 'metrics.json'}")
    return 0


# ------------------------------------------------------------------------------- evaluate
def evaluate_run(args, cfg: dict, info, model) -> int:
    """``convnet evaluate`` of a detection run: COCO metrics and a per-class AP table."""
    from ..data import DataLoader
    from ..training.detection import evaluate_detection

    ds = detection_dataset(cfg, args.split == "train")
    loader = DataLoader(ds, min(args.batch_size, 50), num_workers=1, collate_fn=collate())
    res = evaluate_detection(model, loader, info.classes, proposals=True)
    if args.json:
        print(json.dumps({"split": args.split, **res, "class_names": info.classes}, indent=2))
        return 0
    print(f"{cfg['model']} on {cfg['dataset']} ({args.split} split: {res['images']:,} canvases "
          f"of {info.size}x{info.size}, {res['objects']:,} objects)")
    print(f"COCO mAP {res['map']:.4f}   mAP@0.5 {res['map_50']:.4f}   mAP@0.75 "
          f"{res['map_75']:.4f}   mAR@100 {res['mar_100']:.4f}")
    print(f"by size (COCO areas): mAP small {_num(res['map_small'])}   medium "
          f"{_num(res['map_medium'])}   large {_num(res['map_large'])}")
    if "proposal_recall_100" in res:
        print(f"RPN proposal recall@100 (IoU 0.5) {res['proposal_recall_100']:.4f}")
    print(f"\n  {'class':<14} {'AP':>7} {'AP@0.5':>7} {'AR@100':>7}")
    for name in info.classes[1:]:
        print(f"  {name:<14} {_num(res['per_class_ap'][name]):>7} "
              f"{_num(res['per_class_ap50'][name]):>7} {_num(res['per_class_ar100'][name]):>7}")
    return 0


def _num(v) -> str:
    return "n/a" if v is None or v < 0 else f"{v:.4f}"


# -------------------------------------------------------------------------------- predict
def load_canvas(path: Path, channels: int, invert: str):
    """Image file -> (``(C, H, W)`` float32 in [0, 1], inverted?). The detector sees the file
    at its own size (no resize: its objects should be 12-45 px, as on the canvases). Dark ink
    on a light background is inverted to the canvases' white on black (``invert='auto'``:
    when the median of the border pixels is above 0.5)."""
    from ..data.user_images import read_image

    im = read_image(path, "L" if channels == 1 else "RGB")
    a = np.asarray(im, dtype=np.float32) / 255
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if invert == "auto":
        border = np.concatenate([a[:, 0].ravel(), a[:, -1].ravel(), a[:, :, 0].ravel(),
                                 a[:, :, -1].ravel()])
        flip = bool(np.median(border) > 0.5)
    else:
        flip = invert == "yes"
    return (1 - a if flip else a), flip


def predict_run(args, cfg: dict, info, model) -> int:
    """``convnet predict`` of a detection run: boxes drawn into NAME_boxes.png, one line each."""
    from .. import no_grad
    from ..tensor import Tensor
    from .main import CLIError
    from .predict import expand, unique_stems

    if args.save_input:
        raise CLIError("--save-input: a detection run sees the image as it is; the picture "
                       "with its boxes is written as NAME_boxes.png")
    thr = 0.5 if args.score_threshold is None else float(args.score_threshold)
    if not 0 <= thr <= 1:
        raise CLIError(f"--score-threshold: expected a score in [0, 1], got {thr}")
    paths, empty = expand(args.images)
    results, errors = [], []
    for folder, e in empty:
        errors.append(e)
        print(f"convnet predict: error: {e}", file=sys.stderr)
        results.append({"image": str(folder), "error": e})
    dtype = next(iter(model.parameters()))._data.dtype
    model.eval()
    for path, name in zip(paths, unique_stems(paths)):
        try:
            x, inverted = load_canvas(path, info.channels, args.invert)
        except (FileNotFoundError, ValueError) as e:
            errors.append(str(e))
            print(f"convnet predict: error: {e}", file=sys.stderr)
            results.append({"image": str(path), "error": str(e)})
            continue
        with no_grad():
            det = model(Tensor._make(x[None].astype(dtype)))[0]
        boxes, scores = det["boxes"].numpy(), det["scores"].numpy()
        labels = det["labels"].numpy()
        keep = np.flatnonzero(scores >= thr)
        found = [{"class": info.classes[int(labels[i])] if 0 < labels[i] < len(info.classes)
                  else f"label {int(labels[i])}", "label": int(labels[i]),
                  "score": float(scores[i]), "box": [round(float(v), 2) for v in boxes[i]]}
                 for i in keep]
        folder = Path(args.out) if args.out else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        out_path = folder / f"{name}_boxes.png"
        scale = args.scale or max(1, min(8, 512 // max(x.shape[1:])))
        draw_detections(x, found, scale).save(out_path)
        results.append({"image": str(path), "inverted": inverted, "size": list(x.shape[1:]),
                        "score_threshold": thr, "output": str(out_path), "detections": found})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                continue
            how = "   [inverted]" if r["inverted"] else ""
            print(f"{r['image']}: {len(r['detections'])} object"
                  f"{'' if len(r['detections']) == 1 else 's'} with score >= "
                  f"{r['score_threshold']:g} -> {r['output']}{how}")
            for d in r["detections"]:
                x1, y1, x2, y2 = d["box"]
                print(f"  {d['class']:<12} {d['score']:.3f}  box ({x1:.1f}, {y1:.1f}, {x2:.1f}, "
                      f"{y2:.1f})")
    return 2 if errors else 0


def draw_detections(pixels: np.ndarray, found: list[dict], scale: int):
    """The model's input (``(C, H, W)`` in [0, 1]) enlarged ``scale`` times (nearest), with
    each detection's box in its class colour and ``class score`` above it (inside the
    picture when the box touches the top)."""
    from PIL import Image, ImageDraw, ImageFont

    from .predict import _palette

    a = np.clip(pixels, 0, 1)
    a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a
    rgb = (a.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8).repeat(scale, 0).repeat(scale, 1)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=max(10, 3 * scale))
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    palette = _palette(max([d["label"] for d in found] + [0]) + 1)
    width = max(1, scale // 3)
    for d in sorted(found, key=lambda d: d["score"]):  # the best drawn last, on top
        colour = tuple(palette[d["label"]]) if d["label"] > 0 else (255, 255, 255)
        x1, y1, x2, y2 = (v * scale for v in d["box"])
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
        text = f"{d['class']} {d['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        h = bottom - top
        ty = y1 - h - 3 if y1 - h - 3 >= 0 else y1 + width  # above the box, else inside it
        draw.rectangle([x1, ty, x1 + (right - left) + 4, ty + h + 3], fill=colour)
        draw.text((x1 + 2 - left, ty + 1 - top), text, fill=(0, 0, 0), font=font)
    return img
