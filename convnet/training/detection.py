"""Training and measuring detectors with the :class:`~convnet.training.Trainer` machinery.

A detector (torchvision's interface: :mod:`convnet.models.detection`) differs from a classifier
in two places only, and :class:`DetectionTrainer` overrides just those:

- a training step is ``losses = model(images, targets)``, a dict of named losses (RetinaNet:
  ``classification``, ``bbox_regression``; Faster R-CNN: ``loss_classifier``, ...) whose sum
  is back-propagated; each part is averaged over the epoch and logged as ``train_<part>``;
- evaluation runs the model in eval mode (a list of ``{'boxes', 'scores', 'labels'}``) and
  scores the detections with COCO's mean average precision
  (:func:`convnet.metrics.mean_average_precision`): ``map`` (IoU 0.50:0.95), ``map_50``,
  ``map_75``, ``mar_100`` and per class.

Everything else - the epoch loop, callbacks, checkpoints, exact resume, metrics.json - is the
Trainer's own. Batches are ``(images, targets)`` as
:func:`~convnet.data.datasets.collate_detection` builds them.
"""
from __future__ import annotations

import io
import math
import os
import time
from typing import Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.utils.clip_grad import clip_grad_norm_
from ..tensor import Tensor
from .trainer import Trainer

__all__ = ["DetectionTrainer", "evaluate_detection", "plot_detection_curves", "proposal_recall"]


def _cast_images(images, dtype: np.dtype):
    """A batch ``(N, C, H, W)`` or a list of ``(C, H, W)`` images in the model's dtype."""
    if isinstance(images, (list, tuple)):
        return [_cast_images(im, dtype) for im in images]
    arr = images._data if isinstance(images, Tensor) else np.asarray(images)
    return Tensor._make(arr.astype(dtype, copy=False) if arr.dtype.kind == "f" else
                        arr.astype(dtype))


def _cast_targets(targets: Sequence[dict], dtype: np.dtype) -> list[dict]:
    """Targets with boxes in the model's dtype (labels stay integers)."""
    out = []
    for t in targets:
        boxes = t["boxes"]
        arr = boxes._data if isinstance(boxes, Tensor) else np.asarray(boxes)
        out.append({**t, "boxes": Tensor._make(arr.astype(dtype, copy=False).reshape(-1, 4))})
    return out


def _numpy(x) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _images_in(images) -> int:
    return len(images) if isinstance(images, (list, tuple)) else int(images.shape[0])


@no_grad()
def evaluate_detection(model, loader, class_names: Sequence[str] | None = None, dtype=None,
                       proposals: bool = False) -> dict:
    """COCO mAP of ``model``'s detections on ``loader`` (``(images, targets)`` batches), in
    eval mode (the model's mode is restored afterwards).

    Returns the numbers of :func:`~convnet.metrics.mean_average_precision` (``map``,
    ``map_50``, ``map_75``, ``map_small``/``medium``/``large``, ``mar_1``, ``mar_10``,
    ``mar_100``, ...) plus ``images``, ``objects``, ``detections``, ``eval_time_s``; with
    ``class_names`` (index = label, entry 0 the background) also ``per_class_ap``,
    ``per_class_ap50`` and ``per_class_ar100``: ``{name: value}`` for labels
    ``1..len(class_names) - 1`` (``None`` for a class without ground truth). With
    ``proposals`` and a two-stage model (one with ``.proposals(images)``), also
    ``proposal_recall_100``: the fraction of ground-truth boxes that one of the first 100
    proposals of their image overlaps with IoU >= 0.5 (:func:`proposal_recall`).
    """
    from ..metrics import mean_average_precision

    if dtype is None:
        params = list(model.parameters())
        dtype = params[0]._data.dtype if params else np.dtype(np.float32)
    was_training = model.training
    model.eval()
    preds, gts, props = [], [], []
    start = time.perf_counter()
    try:
        for images, targets in loader:
            images = _cast_images(images, dtype)
            for out in model(images):
                preds.append({k: _numpy(out[k]) for k in ("boxes", "scores", "labels")})
            gts.extend({"boxes": _numpy(t["boxes"]).reshape(-1, 4),
                        "labels": _numpy(t["labels"])} for t in targets)
            if proposals and hasattr(model, "proposals"):
                props.extend(_numpy(p["boxes"]) for p in model.proposals(images))
    finally:
        model.train(was_training)
    elapsed = time.perf_counter() - start
    res = mean_average_precision(preds, gts)
    out = {k: v for k, v in res.items() if not isinstance(v, list)}
    out.update({"images": len(gts), "objects": int(sum(len(g["labels"]) for g in gts)),
                "detections": int(sum(len(p["labels"]) for p in preds)),
                "eval_time_s": elapsed})
    if class_names is not None:
        at50 = mean_average_precision(preds, gts, iou_thresholds=(0.5,))
        for key, src, name in (("per_class_ap", res, "map_per_class"),
                               ("per_class_ap50", at50, "map_per_class"),
                               ("per_class_ar100", res, "mar_100_per_class")):
            by_label = dict(zip(src["classes"], src[name]))
            out[key] = {class_names[c]: (None if by_label.get(c, -1) < 0 else by_label[c])
                        for c in range(1, len(class_names))}
    if props:
        out["proposal_recall_100"] = proposal_recall(props, gts, 100, 0.5)
    return out


def proposal_recall(proposals: Sequence[np.ndarray], targets: Sequence[dict], top: int = 100,
                    iou: float = 0.5) -> float:
    """Fraction of ground-truth boxes (over all images) with IoU >= ``iou`` to at least one of
    the first ``top`` proposals of their image (proposals ``(P, 4)`` xyxy, best first).
    ``nan`` when there is no ground truth."""
    from ..ops import box_iou

    found = total = 0
    for p, t in zip(proposals, targets):
        g = np.asarray(t["boxes"], np.float64).reshape(-1, 4)
        total += len(g)
        p = np.asarray(p, np.float64).reshape(-1, 4)[:top]
        if len(g) and len(p):
            ious = box_iou(Tensor._make(g), Tensor._make(p))._data
            found += int(np.count_nonzero(ious.max(axis=1) >= iou))
    return found / total if total else float("nan")


class DetectionTrainer(Trainer):
    """:class:`Trainer` for torchvision-style detectors.

    Takes the Trainer's arguments (``loss_fn``, ``num_classes`` and ``topk`` are unused: the
    model computes its losses; ``class_names``, index = label and entry 0 the background, name
    the per-class AP of :meth:`evaluate`) and ``clip_grad_norm`` (rescale the gradients to
    this joint L2 norm before each step when larger; None: no clipping). Epoch records hold ``train_loss`` (the sum
    of the parts), ``train_<part>`` for every loss the model returns, ``lr``,
    ``images_per_s``, ``train_time_s`` and, with a validation loader, ``val_map``,
    ``val_map_50``, ``val_map_75`` and ``val_mar_100``.
    """

    VAL_KEYS = ("map", "map_50", "map_75", "mar_100")

    def __init__(self, *args, clip_grad_norm: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"DetectionTrainer: clip_grad_norm must be positive or None, got "
                             f"{clip_grad_norm!r}")
        self.clip_grad_norm = clip_grad_norm
        self._params = [p for p in self.model.parameters() if p.requires_grad]

    def train_epoch(self) -> dict:
        model, opt = self.model, self.optimizer
        model.train()
        sums: dict[str, float] = {}
        total, images, batches = 0.0, 0, 0
        n_total = len(self.train_loader.dataset) if hasattr(self.train_loader, "dataset") else 0
        bar = self._bar(n_total, f"epoch {self.epoch + 1}/{self.epochs}")
        start = time.perf_counter()
        for i, (x, targets) in enumerate(self.train_loader):
            x = _cast_images(x, self.dtype)
            losses = model(x, _cast_targets(targets, self.dtype))
            if not isinstance(losses, dict) or not losses:
                raise TypeError("DetectionTrainer: in train mode the model must return a dict "
                                f"of losses, got {type(losses).__name__}")
            loss = None
            for v in losses.values():
                loss = v if loss is None else loss + v
            opt.zero_grad()
            loss.backward()
            if self.clip_grad_norm is not None:  # a bad early batch must not wreck the heads
                clip_grad_norm_(self._params, self.clip_grad_norm)
            opt.step()
            if self.scheduler is not None and self.scheduler_step == "batch":
                self.scheduler.step()
            value = float(loss._data)
            if not math.isfinite(value):
                parts = ", ".join(f"{k} {float(v._data):.4g}" for k, v in losses.items())
                raise FloatingPointError(f"DetectionTrainer: loss became {value} at epoch "
                                         f"{self.epoch + 1}, batch {i} ({parts}); lower the "
                                         "learning rate")
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v._data)
            total += value
            batches += 1
            n = _images_in(x)
            images += n
            if bar is not None:
                bar.update(n)
                if i % 5 == 0:
                    bar.set_postfix(loss=f"{total / batches:.4f}", refresh=False)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        d = max(batches, 1)
        out = {"train_loss": total / d}
        out.update({f"train_{k}": v / d for k, v in sums.items()})
        out["train_time_s"] = elapsed
        out["images_per_s"] = images / elapsed if elapsed > 0 else float("nan")
        return out

    def evaluate(self, loader, confusion: bool = False, proposals: bool = False) -> dict:
        """COCO mAP on ``loader`` (:func:`evaluate_detection`); per-class AP when
        ``confusion`` (the Trainer's name for "the detailed report")."""
        res = evaluate_detection(self.model, loader,
                                 self.class_names if confusion else None, self.dtype, proposals)
        if not confusion:  # the per-epoch validation record keeps the headline numbers
            res = {k: res[k] for k in self.VAL_KEYS}
        return res

    def _format(self, logs: dict) -> str:
        parts = [f"epoch {logs['epoch']:>3}/{self.epochs}", f"loss {logs['train_loss']:.4f}"]
        parts += [f"{k[len('train_'):]} {v:.4f}" for k, v in logs.items()
                  if k.startswith("train_") and k not in ("train_loss", "train_time_s")]
        if "val_map" in logs:
            parts += [f"val mAP@0.5 {logs['val_map_50']:.4f}", f"mAP {logs['val_map']:.4f}"]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['images_per_s']:.1f} img/s",
                  f"{logs['train_time_s']:.1f}s"]
        return "  ".join(parts)

    def plot(self, path) -> None:
        plot_detection_curves(self.history, path, title=self.config.get("title", ""))


def plot_detection_curves(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Training losses (the sum and each part) and validation mAP per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_write_bytes

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    keys = [k for k in history[0] if k.startswith("train_") and k != "train_time_s"]
    for k in keys:
        ax_loss.plot(epochs, [h.get(k) for h in history], marker="o",
                     label="total" if k == "train_loss" else k[len("train_"):],
                     linewidth=2.5 if k == "train_loss" else 1.2)
    for k, label in (("val_map_50", "mAP@0.5"), ("val_map", "mAP@[0.5:0.95]"),
                     ("val_mar_100", "mAR@100")):
        if any(k in h for h in history):
            ax_map.plot(epochs, [h.get(k) for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss (mean over batches)", title="training losses")
    ax_map.set(xlabel="epoch", ylabel="COCO metric", title="validation", ylim=(0, 1))
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not fractions
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
