"""Classification metrics accumulated batch by batch: loss, top-k accuracy, confusion matrix.

Dense predictions (segmentation: logits ``(N, K, *S)``, targets ``(N, *S)``) count every pixel
as a sample, so accuracy is pixel accuracy, and the confusion matrix gives per-class IoU.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["topk_correct", "ConfusionMatrix", "MetricAccumulator"]


def topk_correct(logits: np.ndarray, targets: np.ndarray,
                 ks: Sequence[int] = (1,)) -> dict[int, int]:
    """How many rows have their target among the ``k`` largest logits, for each ``k``.

    ``logits (N, K)``, ``targets (N,)``. The classes of a row are ranked as a stable descending
    sort (``torch.topk``/``argmax`` convention): ties go to the lower class index, and NaN ranks
    above every number. The target's rank is

        #{j : s_j > s_t} + #{j < t : s_j == s_t} + #{j : s_j is NaN}  (NaN target: #{j < t : NaN})

    and the row is correct for ``k`` when that rank is below ``k``. So all-equal logits are
    correct only for class 0 (chance level), never for every row.
    """
    logits, targets = np.asarray(logits), np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"topk_correct: logits must be (N, K) and targets (N,), got "
                         f"{logits.shape} and {targets.shape}")
    n, n_cls = logits.shape
    target_score = logits[np.arange(n), targets][:, None]
    below_target = np.arange(n_cls)[None, :] < targets[:, None]
    nan = np.isnan(logits)
    target_nan = nan[np.arange(n), targets][:, None]
    with np.errstate(invalid="ignore"):
        ahead = (logits > target_score) | ((logits == target_score) & below_target)
    # a NaN class is ahead of a numeric target; among NaNs the lower index is ahead
    ahead = np.where(target_nan, nan & below_target, ahead | nan)
    rank = ahead.sum(axis=1)
    return {k: int((rank < k).sum()) for k in ks}


class ConfusionMatrix:
    """``matrix[t, p]`` counts samples of true class ``t`` predicted as ``p``."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, preds: np.ndarray, targets: np.ndarray) -> None:
        k = self.num_classes
        idx = np.asarray(targets, dtype=np.int64) * k + np.asarray(preds, dtype=np.int64)
        self.matrix += np.bincount(idx, minlength=k * k).reshape(k, k)

    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def iou(self) -> np.ndarray:
        """Intersection over union of each class, ``TP / (TP + FP + FN)`` (NaN if absent)."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / union

    def mean_iou(self) -> float:
        """Mean of :meth:`iou` over the classes that occur (in targets or predictions)."""
        v = self.iou()
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class (NaN for classes with no samples)."""
        support = self.matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / support

    def format(self, class_names: Sequence[str] | None = None) -> str:
        """The matrix as aligned text: rows are true classes labelled ``index name``, columns
        predicted classes headed by their index, every column at least two spaces apart."""
        k = self.num_classes
        labels = [f"{i:>{len(str(k - 1))}}" + (f" {class_names[i]}" if class_names else "")
                  for i in range(k)]
        lw = max(len("true \\ predicted"), *(len(s) for s in labels)) + 1
        w = max(len(str(int(self.matrix.max()))), len(str(k - 1))) + 2
        lines = ["true \\ predicted".ljust(lw) + "".join(str(i).rjust(w) for i in range(k))]
        for label, row in zip(labels, self.matrix):
            lines.append(label.ljust(lw) + "".join(str(int(v)).rjust(w) for v in row))
        return "\n".join(lines)


class MetricAccumulator:
    """Running sums over an epoch: mean loss, top-1 / top-k accuracy, optional confusion."""

    def __init__(self, num_classes: int | None = None, topk: Sequence[int] = (1, 5)) -> None:
        self.topk = tuple(topk)
        self.loss_sum, self.count = 0.0, 0
        self.correct = {k: 0 for k in self.topk}
        self.confusion = ConfusionMatrix(num_classes) if num_classes else None
        self.dense = False  # set once per-pixel (segmentation) predictions are seen
        self.images = 0  # samples seen (``count`` counts pixels for dense predictions)

    def update(self, loss: float, logits: np.ndarray, targets: np.ndarray) -> None:
        logits, targets = np.asarray(logits), np.asarray(targets)
        self.images += len(targets)
        if logits.ndim > 2:  # (N, K, *S) with (N, *S): one sample per pixel
            if targets.shape != (logits.shape[0],) + logits.shape[2:]:
                raise ValueError(f"MetricAccumulator: dense logits {logits.shape} need targets "
                                 f"{(logits.shape[0],) + logits.shape[2:]}, got {targets.shape}")
            self.dense = True
            logits = np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
            targets = targets.reshape(-1)
        n = len(targets)
        self.loss_sum += float(loss) * n
        self.count += n
        for k, c in topk_correct(logits, targets, self.topk).items():
            self.correct[k] += c
        if self.confusion is not None:
            self.confusion.update(np.argmax(logits, axis=1), targets)

    def result(self, prefix: str = "") -> dict:
        out = {f"{prefix}loss": self.loss_sum / max(self.count, 1)}
        for k in self.topk:
            name = "accuracy" if k == 1 else f"top{k}_accuracy"
            out[f"{prefix}{name}"] = self.correct[k] / max(self.count, 1)
        if self.dense and self.confusion is not None:
            out[f"{prefix}mean_iou"] = self.confusion.mean_iou()
        return out
