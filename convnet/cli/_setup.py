"""Shared by the CLI commands: datasets by name, transforms, models and configs."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import datasets as D
from ..data import transforms as T
from ..data.dataset import Subset, random_split

DATASET_NAMES = ["mnist-bundled", "mnist", "fashion-mnist", "cifar10", "folder", "mnist-detect",
                 "fashion-detect"]
# canvases of several objects with boxes (convnet.data.datasets.MNISTDetection): --task detect
DETECT_DATASETS = ("mnist-detect", "fashion-detect")
DENSE_MODELS = ("unet",)  # per-pixel outputs: trained with --task segment
FOREGROUND = 0.1  # raw intensity (0..1) above which a pixel belongs to the object
AUGMENTS = ["none", "crop", "flip", "vflip", "affine", "rotate", "erase"]


@dataclass
class DatasetInfo:
    channels: int
    size: int
    mean: tuple
    std: tuple
    classes: list


_INFO = {
    "mnist-bundled": DatasetInfo(1, 28, (0.1307,), (0.3081,), D.BundledMNIST.classes),
    "mnist": DatasetInfo(1, 28, (0.1307,), (0.3081,), D.MNIST.classes),
    "fashion-mnist": DatasetInfo(1, 28, (0.2860,), (0.3530,), D.FashionMNIST.classes),
    "cifar10": DatasetInfo(3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           D.CIFAR10.classes),
}


def _folder_split(root: Path, split: str) -> Path | None:
    for name in ([split] if split == "train" else [split, "val", "valid"]):
        if (root / name).is_dir():
            return root / name
    return None


def dataset_info(cfg: dict) -> DatasetInfo:
    name = cfg["dataset"]
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if name in DETECT_DATASETS:
        from .detect import detection_info

        return detection_info(cfg)
    if name != "folder":
        return _INFO[name]
    if not cfg.get("data_dir"):
        raise ValueError("--dataset folder needs --data-dir ROOT with ROOT/<class>/<image> "
                         "(or ROOT/train/<class>/... and ROOT/test/<class>/...)")
    root = Path(cfg["data_dir"])
    probe = D.ImageFolder(_folder_split(root, "train") or root, size=cfg.get("image_size") or 32,
                          mode="L" if cfg.get("grayscale") else "RGB")
    c = probe.num_channels
    return DatasetInfo(c, cfg.get("image_size") or 32, (0.5,) * c, (0.5,) * c, probe.classes)


def detectors() -> list[str]:
    """The zoo's detection models (family ``Detection``)."""
    from .. import models

    return [n for n in models.list_models() if models.model_info(n).family == "Detection"]


def resolve_task(cfg: dict) -> str:
    """``classify``, ``segment`` or ``detect`` (``auto``: segment exactly the dense models,
    detect exactly the detectors); a model or dataset that does not fit the task is refused."""
    task = cfg.get("task") or "auto"
    dense = cfg["model"] in DENSE_MODELS
    detector = cfg["model"] in detectors()
    canvases = cfg.get("dataset") in DETECT_DATASETS
    if task == "auto":
        task = "detect" if detector else "segment" if dense else "classify"
    if task == "detect" and not detector:
        raise ValueError(f"--task detect: {cfg['model']} is not a detector; detectors: "
                         f"{', '.join(detectors())}")
    if task != "detect" and detector:
        raise ValueError(f"--task {task}: {cfg['model']} is a detector (boxes, not one label "
                         "per image); use --task detect")
    if task == "detect" and not canvases:
        raise ValueError(f"--task detect: --dataset {cfg.get('dataset')} has no boxes; use "
                         f"{' or '.join(DETECT_DATASETS)}")
    if task != "detect" and canvases:
        raise ValueError(f"--dataset {cfg['dataset']} is for detection (--task detect with "
                         f"{' or '.join(detectors())}); {cfg['model']} needs a classification "
                         "dataset such as mnist-bundled")
    if task == "detect":
        return task
    if task == "classify" and dense:
        raise ValueError(f"--task classify: {cfg['model']} predicts one label per pixel; "
                         "use --task segment")
    if task == "segment" and not dense:
        raise ValueError(f"--task segment: {cfg['model']} is a classifier (one label per "
                         f"image); dense models: {', '.join(DENSE_MODELS)}")
    return task


def task_info(cfg: dict, info: DatasetInfo) -> DatasetInfo:
    """For segmentation the labels are the background plus the dataset's classes."""
    if cfg.get("task") != "segment":
        return info
    return DatasetInfo(info.channels, info.size, info.mean, info.std,
                       ["background"] + list(info.classes))


def _foreground_threshold(info: DatasetInfo) -> float:
    """:data:`FOREGROUND` in the units of the normalised image (channel means)."""
    return float((FOREGROUND - np.mean(info.mean)) / np.mean(info.std))


def make_transform(cfg: dict, info: DatasetInfo, train: bool) -> T.Compose:
    steps = [T.ToTensor()]
    if train:
        augs = [a for a in (cfg.get("augment") or "none").split(",") if a and a != "none"]
        bad = [a for a in augs if a not in AUGMENTS]
        if bad:
            raise ValueError(f"--augment: unknown {bad}; choose from {', '.join(AUGMENTS)} "
                             "(comma-separated)")
        s = info.size
        for a in augs:
            if a == "crop":
                steps.append(T.RandomCrop(s, padding=max(2, s // 8)))
            elif a == "flip":
                steps.append(T.RandomHorizontalFlip())
            elif a == "vflip":
                steps.append(T.RandomVerticalFlip())
            elif a == "affine":
                steps.append(T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)))
            elif a == "rotate":
                steps.append(T.RandomRotation(15))
        steps.append(T.Normalize(info.mean, info.std))
        if "erase" in augs:
            steps.append(T.RandomErasing(p=0.5))
    else:
        steps.append(T.Normalize(info.mean, info.std))
    return T.Compose(steps)


def make_dataset(cfg: dict, info: DatasetInfo, train: bool, transform):
    """The train or test split of ``cfg['dataset']`` with ``transform`` (with per-pixel
    targets when ``cfg['task']`` is ``segment``)."""
    ds = _make_split(cfg, info, train, transform)
    if cfg.get("task") == "segment":
        ds = D.ForegroundSegmentation(ds, _foreground_threshold(info))
    return ds


def _make_split(cfg: dict, info: DatasetInfo, train: bool, transform):
    name, root = cfg["dataset"], cfg.get("data_dir")
    if name == "folder":
        base = Path(root)
        mode, size = ("L" if cfg.get("grayscale") else "RGB"), info.size
        split_dir = _folder_split(base, "train" if train else "test")
        if split_dir is not None and _folder_split(base, "test") is not None:
            return D.ImageFolder(split_dir, transform=transform, mode=mode, size=size)
        # one folder of classes: hold out 20% for testing, with a fixed generator
        full = D.ImageFolder(base, transform=transform, mode=mode, size=size)
        n_test = max(1, len(full) // 5)
        tr, te = random_split(full, [len(full) - n_test, n_test], np.random.default_rng(12345))
        return tr if train else te
    cls = {"mnist-bundled": D.BundledMNIST, "mnist": D.MNIST, "fashion-mnist": D.FashionMNIST,
           "cifar10": D.CIFAR10}[name]
    ds = cls(root, train=train, transform=transform, download=bool(cfg.get("download")))
    limit = cfg.get("limit_train" if train else "limit_test")
    if limit:
        ds = Subset(ds, np.arange(min(int(limit), len(ds))))
    return ds


def model_options(cfg: dict, info: DatasetInfo) -> dict:
    """The options ``cfg["model"]`` is built with for ``info``'s images (``info.size``
    square), checked without building anything: a misspelt ``--model`` or ``--model-option``
    and an image size the network cannot take are one-line errors, the latter naming the
    minimum side and the option that fixes it. A model whose stem would shrink the images away
    gets ``small_input=True`` when that fixes it, said once on stderr and recorded in
    ``cfg["model_adapted"]`` (the decision is the same on every rebuild, so runs reload).
    """
    import sys

    from .. import models

    if cfg.get("arch"):  # a searched architecture (`convnet train --arch`): built by convnet.nas
        return {}
    name, user = cfg["model"], dict(cfg.get("model_options") or {})
    for key, value in (("num_classes", len(info.classes)), ("in_channels", info.channels)):
        if key in user:
            raise ValueError(f"--model-option {key}: set from the dataset ({value} here); "
                             "remove the option")
    try:
        opts, added = models.fit_input(name, info.size, **user)
    except models.InputSizeError as e:
        resize = "--image-size" if cfg.get("dataset") == "folder" else None
        raise ValueError(e.message(cli=True, resize_option=resize)) from None
    if added and "model_adapted" not in cfg:
        rule = models.input_rule(name, **{k: v for k, v in opts.items() if k not in added})
        how = " ".join(f"--model-option {k}={json.dumps(v)}" for k, v in added.items())
        print(f"note: {name} {rule.problem(info.size, info.size)}; building it with {how}",
              file=sys.stderr)
        cfg["model_adapted"] = added
    return opts


def build_model(cfg: dict, info: DatasetInfo):
    """The model of ``cfg`` for ``info``'s images, with :func:`model_options`."""
    from .. import models

    opts = model_options(cfg, info)
    if cfg.get("arch"):
        from ..nas.build import build_record

        model = build_record(cfg["arch"], num_classes=len(info.classes),
                             in_channels=info.channels, image_size=info.size)
    else:
        model = models.create(cfg["model"], num_classes=len(info.classes),
                              in_channels=info.channels, **opts)
    if cfg.get("dtype", "float32") == "float64":
        model = model.double()
    return model


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training output folder (no config.json); "
                                "give the --out folder of a `convnet train` run")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt config ({e})") from None
