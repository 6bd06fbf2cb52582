"""``convnet evaluate DIR``: accuracy, per-class accuracy and confusion matrix of a trained run
(for a detection run: COCO mAP, mAP@0.5, mAP@0.75, mAR@100 and the AP of each class)."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a trained run on its test set",
                              description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` run")
    p.add_argument("--data-dir", help="where the dataset lives now (default: as when trained)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="default test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    from .main import add_threads_option

    add_threads_option(p)
    p.set_defaults(func=run)


def load_run(run_dir: Path):
    """(config, info, model) of a training run with its weights loaded, in eval mode."""
    from ..training.checkpoint import load_weights
    from ._setup import DatasetInfo, build_model, read_config

    cfg = read_config(run_dir)
    info = DatasetInfo(int(cfg["in_channels"]), int(cfg["image_size_used"]), tuple(cfg["mean"]),
                       tuple(cfg["std"]), list(cfg["class_names"]))
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{run_dir}: no model.safetensors (was the run interrupted before "
                                "its first epoch finished?)")
    if cfg.get("quantization"):  # a `convnet quantize` folder: int8 layers in the float model
        from ..quantization.serialize import load_quantized

        return cfg, info, load_quantized(weights, lambda: build_model(cfg, info))
    model = build_model(cfg, info)
    load_weights(model, weights)
    model.eval()
    return cfg, info, model


def run(args) -> int:
    from ..data import DataLoader
    from ..training import evaluate
    from ._setup import make_dataset, make_transform

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    run_dir = Path(args.run_dir)
    cfg, info, model = load_run(run_dir)
    if args.data_dir:
        cfg["data_dir"] = args.data_dir
    cfg["download"] = False
    if cfg.get("task") == "detect":
        from .detect import evaluate_run

        return evaluate_run(args, cfg, info, model)
    ds = make_dataset(cfg, info, args.split == "train", make_transform(cfg, info, False))
    loader = DataLoader(ds, args.batch_size, num_workers=1)
    res = evaluate(model, loader, num_classes=len(info.classes))
    conf = res.pop("_confusion")
    if args.json:
        report = {"split": args.split, "images": len(ds), **res, "class_names": info.classes}
        print(json.dumps(report, indent=2))
        return 0
    print(f"{cfg['model']} on {cfg['dataset']} ({args.split} split, {len(ds):,} images)")
    if "mean_iou" in res:  # a segmentation run: every pixel is a sample
        print(f"pixel accuracy {res['accuracy']:.4f}   mean IoU {res['mean_iou']:.4f}   "
              f"loss {res['loss']:.4f}")
        print("\nper-class IoU:")
        for name, iou in zip(info.classes, res["per_class_iou"]):
            print(f"  {name:<14} {'   n/a' if iou is None else f'{iou:.4f}'}")
    else:
        print(f"accuracy {res['accuracy']:.4f}   top-5 "
              f"{res.get('top5_accuracy', float('nan')):.4f}   loss {res['loss']:.4f}")
    print("\nper-class accuracy:")
    for name, acc in zip(info.classes, res["per_class_accuracy"]):
        print(f"  {name:<14} {'   n/a' if acc is None else f'{acc:.4f}'}")
    print("\nconfusion matrix (rows: true class, columns: predicted):")
    print(conf.format(info.classes))
    return 0
