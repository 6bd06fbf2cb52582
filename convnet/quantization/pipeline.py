"""Quantize a trained run: fuse, calibrate (or fine-tune with QAT), convert, measure, save.

:func:`quantize_run` is what ``convnet quantize RUN --out RUN-int8`` runs (and what ``convnet
export --quantized`` calls). It loads the float run, wraps the model in ``QuantWrapper``,
fuses every ``Conv2d -> BatchNorm2d [-> ReLU]``, ``Conv2d -> ReLU`` and ``Linear -> ReLU``
that follow each other inside an ``nn.Sequential`` (:func:`fusion_groups`), observes N
training images (no augmentation) with a qconfig preset, converts, and writes a run folder
that ``convnet evaluate`` / ``predict`` / ``summary`` read like any other::

    RUN-int8/config.json        the float run's config plus "quantization": the recipe
    RUN-int8/model.safetensors  int8 weights + JSON metadata (serialize.py)
    RUN-int8/metrics.json       float and int8 test accuracy, weights-file bytes and ratio,
                                inference ms per image for both, bytes per layer
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..nn.modules.module import Module

__all__ = ["fusion_groups", "quantize_run", "QCONFIGS"]

QCONFIGS = ("x86", "fbgemm", "qnnpack")


def fusion_groups(model: Module) -> list[list[str]]:
    """The module paths ``fuse_modules`` can fuse, found by walking every ``nn.Sequential``:
    consecutive ``Conv2d, BatchNorm2d, ReLU`` / ``Conv2d, BatchNorm2d`` / ``Conv2d, ReLU`` /
    ``Linear, ReLU`` (a Sequential runs its children in order, so neighbours are what
    follows in the computation; other containers' forward may reorder, so they are left)."""
    from .. import nn
    from .intrinsic import _FusedModule

    patterns = [(nn.Conv2d, nn.BatchNorm2d, nn.ReLU), (nn.Conv2d, nn.BatchNorm2d),
                (nn.Conv2d, nn.ReLU), (nn.Linear, nn.ReLU)]
    groups = []
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential) or isinstance(seq, _FusedModule):
            continue
        kids = list(seq._modules.items())
        i = 0
        while i < len(kids):
            for pattern in patterns:
                names = [n for n, _ in kids[i:i + len(pattern)]]
                mods = [m for _, m in kids[i:i + len(pattern)]]
                if len(mods) == len(pattern) and all(type(m) is t for m, t in zip(mods,
                                                                                  pattern)):
                    groups.append([f"{prefix}.{n}" if prefix else n for n in names])
                    i += len(pattern) - 1
                    break
            i += 1
    return groups


def _time_per_image(model: Module, x, repeats: int) -> float:
    """Median seconds per image of ``model(x)`` (after one warm-up call)."""
    from ..autograd.grad_mode import no_grad

    with no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return float(np.median(times)) / x.shape[0]


def _weights_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def quantize_run(run_dir, out, calibrate: int = 1000, qconfig: str = "x86", qat_epochs: int = 0,
                 fuse: bool = True, batch_size: int = 256, data_dir: str | None = None,
                 overwrite: bool = False, qat_lr: float = 1e-3, progress: bool | str = "auto",
                 log: Callable[[str], None] | None = print) -> dict:
    """Post-training static quantization (or QAT with ``qat_epochs``) of a ``convnet train``
    classification run; writes ``out`` (module docstring) and returns its metrics dict.

    Args:
        run_dir: the float run folder.
        out: the folder to write (refused if it holds files, unless ``overwrite``).
        calibrate: training images the observers see (>= 1).
        qconfig: ``"x86"`` (default), ``"fbgemm"`` or ``"qnnpack"`` (the presets of
            :func:`convnet.quantization.get_default_qconfig`).
        qat_epochs: > 0 fine-tunes with fake quantization (``prepare_qat``) for that many
            epochs (SGD, ``qat_lr``, momentum 0.9) on the training images before converting.
        fuse: fuse conv/bn/relu and linear/relu first (default True).
        batch_size: batch size of calibration, fine-tuning and evaluation.
        data_dir: where the dataset lives now (default: as when trained).
        log: receives the progress lines (None: silent).

    Raises ValueError for bad arguments, "calibrating with no data", runs that are not
    classifiers, and models with layers that have no quantized version (all named).
    """
    from .. import manual_seed
    from ..autograd.grad_mode import no_grad
    from ..cli._setup import make_dataset, make_transform, model_options
    from ..cli.evaluate import load_run
    from ..data import DataLoader
    from ..data.dataset import Subset
    from ..tensor import Tensor
    from ..training import evaluate
    from .convert import convert, find_unsupported
    from .fuse import fuse_modules, fuse_modules_qat
    from .prepare import prepare, prepare_qat
    from .qconfig import get_default_qat_qconfig, get_default_qconfig
    from .serialize import quantized_size_bytes, save_quantized
    from .stubs import QuantWrapper

    say = log or (lambda line: None)
    run_dir, out = Path(run_dir), Path(out)
    if qconfig not in QCONFIGS:
        raise ValueError(f"quantize: --qconfig must be one of {', '.join(QCONFIGS)}, "
                         f"got {qconfig!r}")
    if isinstance(calibrate, bool) or not isinstance(calibrate, int) or calibrate < 0:
        raise ValueError(f"quantize: --calibrate must be a number of images >= 1, got "
                         f"{calibrate!r}")
    if calibrate == 0:
        raise ValueError("quantize: calibrating with no data (--calibrate 0): the observers "
                         "need images to measure activation ranges; use --calibrate 1000")
    if qat_epochs < 0 or batch_size < 1:
        raise ValueError(f"quantize: --qat must be >= 0 and --batch-size >= 1, got "
                         f"{qat_epochs} and {batch_size}")
    if out.resolve() == run_dir.resolve():
        raise ValueError("quantize: --out must differ from the float run's folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"quantize: --out {out} already holds files; --overwrite replaces "
                         "them, or choose another --out")

    cfg, info, float_model = load_run(run_dir)
    if cfg.get("quantization"):
        raise ValueError(f"quantize: {run_dir} is already quantized; give the float run")
    if cfg.get("task") in ("segment", "detect"):
        raise ValueError(f"quantize: {run_dir} is a {cfg['task']} run; only classification "
                         "runs are supported")
    if data_dir:
        cfg["data_dir"] = data_dir
    cfg["download"] = False
    eval_tf = make_transform(cfg, info, False)
    train_set = make_dataset(cfg, info, True, eval_tf)
    test_set = make_dataset(cfg, info, False, eval_tf)
    n_cal = min(calibrate, len(train_set))
    if n_cal == 0:
        raise ValueError(f"quantize: calibrating with no data: the training set of {run_dir} "
                         "is empty")
    if len(test_set) == 0:
        raise ValueError(f"quantize: the test set of {run_dir} is empty")
    manual_seed(int(cfg.get("seed", 0)))

    # 1. fuse and wrap; prepare
    qat = qat_epochs > 0
    model = copy.deepcopy(float_model)
    groups = fusion_groups(model) if fuse else []
    model.train(qat)
    fused = (fuse_modules_qat if qat else fuse_modules)(model, groups) if groups else model
    wrapped = QuantWrapper(fused)
    wrapped.qconfig = (get_default_qat_qconfig if qat else get_default_qconfig)(qconfig)
    prepared = (prepare_qat if qat else prepare)(wrapped.train(qat), inplace=True)
    bad = find_unsupported(prepared)
    if bad:  # before spending time on calibration
        listed = ", ".join(f"{p.removeprefix('module.')} ({t})" for p, t in bad)
        raise ValueError(f"quantize: {cfg['model']} has {len(bad)} layer(s) with no quantized "
                         f"version: {listed}. Supported: Conv2d, Linear, ReLU, ReLU6, pooling, "
                         "Flatten, Dropout, Identity, and Conv2d/Linear with a BatchNorm or "
                         "ReLU right after them in an nn.Sequential (fused)")
    fused_text = ", ".join("+".join(g) for g in groups) or "nothing"
    qat_kind = (f"QAT, {qat_epochs} epoch{'s' if qat_epochs > 1 else ''}" if qat
                else "post-training, static")
    say(f"quantizing {run_dir} ({cfg['model']} on {cfg['dataset']}) with the {qconfig} qconfig "
        f"({qat_kind}); "
        f"fused: {fused_text}")

    # 2. calibrate (for QAT: initialises the fake-quant ranges before fine-tuning)
    cal_loader = DataLoader(Subset(train_set, np.arange(n_cal)), batch_size)
    start = time.perf_counter()
    prepared.eval()
    params = list(float_model.parameters())
    dtype = params[0]._data.dtype if params else np.dtype(np.float32)  # float64 runs
    with no_grad():
        for x, _ in cal_loader:
            x = x._data if isinstance(x, Tensor) else np.asarray(x)
            prepared(Tensor._make(x.astype(dtype, copy=False)))
    say(f"calibrated on {n_cal:,} training images in {time.perf_counter() - start:.1f} s")

    # 3. QAT fine-tuning
    if qat:
        from .. import optim
        from ..training import Trainer

        train_aug = make_dataset(cfg, info, True, make_transform(cfg, info, True))
        loader = DataLoader(train_aug, batch_size, shuffle=True, seed=int(cfg.get("seed", 0)))
        opt = optim.SGD(prepared.parameters(), lr=qat_lr, momentum=0.9)
        prepared.train()
        Trainer(prepared, opt, loader, None, epochs=qat_epochs, progress=progress,
                num_classes=len(info.classes), log=log).fit()
        prepared.eval()

    # 4. convert, and check the model runs on quantized tensors
    quantized = convert(prepared, inplace=True)
    probe = next(iter(DataLoader(Subset(test_set, np.arange(min(2, len(test_set)))), 2)))[0]
    try:
        with no_grad():
            quantized(probe)
    except TypeError as e:
        if "QTensor" not in str(e):
            raise
        raise ValueError(f"quantize: {cfg['model']}'s forward computes on tensors between its "
                         f"layers ({e}); only models whose layers run in sequence (or that use "
                         "FloatFunctional for adds) can be quantized") from None

    # 5. measure: accuracy, size, speed
    test_loader = DataLoader(test_set, batch_size)
    float_res = evaluate(float_model, test_loader, num_classes=len(info.classes))
    int8_res = evaluate(quantized, test_loader, num_classes=len(info.classes))
    bench = next(iter(DataLoader(Subset(test_set, np.arange(min(batch_size, len(test_set)))),
                                 batch_size)))[0]
    bench = Tensor._make(bench._data.astype(dtype, copy=False))  # the float run's dtype
    one = bench[:1]
    ms_float, ms_int8 = [], []
    for _ in range(2):  # alternate, so that a busy moment hits both
        ms_float.append(_time_per_image(float_model, bench, 2) * 1e3)
        ms_int8.append(_time_per_image(quantized, bench, 2) * 1e3)
    lat_float = _time_per_image(float_model, one, 10) * 1e3
    lat_int8 = _time_per_image(quantized, one, 10) * 1e3

    # 6. write the folder
    out.mkdir(parents=True, exist_ok=True)
    recipe = {"qconfig": qconfig, "calibration_images": n_cal, "qat_epochs": qat_epochs,
              "qat_lr": qat_lr if qat else None, "fused": groups, "wrapper": "QuantWrapper",
              "weights": "qint8 per-channel symmetric" if qconfig != "qnnpack"
              else "qint8 per-tensor symmetric",
              "activations": "quint8 affine", "source_run": str(run_dir),
              "model": cfg["model"],
              # everything the float model was built with (classes, channels, adaptations),
              # so that load_quantized(file) alone rebuilds the same network
              "model_options": {"num_classes": len(info.classes), "in_channels": info.channels,
                                **model_options(cfg, info)}}
    weights = out / "model.safetensors"
    save_quantized(quantized, weights, recipe=recipe)
    from ..io.atomic import atomic_write_text

    qcfg = dict(cfg, quantization=recipe)
    atomic_write_text(out / "config.json", json.dumps(qcfg, indent=2) + "\n")
    float_bytes, int8_bytes = _weights_bytes(run_dir / "model.safetensors"), weights.stat().st_size
    metrics = {
        "float_test_accuracy": float_res["accuracy"], "int8_test_accuracy": int8_res["accuracy"],
        "accuracy_drop_points": round(100 * (float_res["accuracy"] - int8_res["accuracy"]), 4),
        "float_test_loss": float_res["loss"], "int8_test_loss": int8_res["loss"],
        "test_images": len(test_set),
        "weights_bytes_float": float_bytes, "weights_bytes_int8": int8_bytes,
        "weights_size_ratio": round(float_bytes / int8_bytes, 3) if int8_bytes else None,
        "ms_per_image_float": round(float(np.median(ms_float)), 4),
        "ms_per_image_int8": round(float(np.median(ms_int8)), 4),
        "timing_batch_size": int(bench.shape[0]),
        "ms_batch1_float": round(lat_float, 4), "ms_batch1_int8": round(lat_int8, 4),
        "per_class_accuracy_int8": int8_res.get("per_class_accuracy"),
        "bytes_per_layer_float": quantized_size_bytes(float_model),
        "bytes_per_layer_int8": quantized_size_bytes(quantized),
        "quantization": recipe,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    drop = metrics["accuracy_drop_points"]
    say(f"test accuracy: {dtype} {float_res['accuracy']:.4f}, int8 {int8_res['accuracy']:.4f} "
        f"({round(-drop, 2) + 0.0:+.2f} points) on {len(test_set):,} images")  # no -0.00
    say(f"weights file: {float_bytes:,} -> {int8_bytes:,} bytes "
        f"({metrics['weights_size_ratio']}x smaller)")
    say(f"inference, ms per image: {dtype} {metrics['ms_per_image_float']:.3f}, int8 "
        f"{metrics['ms_per_image_int8']:.3f} (batch {bench.shape[0]}); batch 1: "
        f"{lat_float:.2f} / {lat_int8:.2f} ms")
    say(f"wrote {out}/ (config.json, model.safetensors, metrics.json)")
    return metrics
