"""``Trainer``: the epoch loop with evaluation, metrics, checkpoints, resume and early stopping.

Each epoch trains on ``train_loader`` (forward, loss, backward, optimizer step, scheduler
step), evaluates on ``val_loader``, appends one record to ``history``, runs the callbacks and,
when ``out_dir`` is set, writes ``checkpoint.safetensors`` (everything needed to resume),
``model.safetensors``, ``metrics.json`` and ``curves.png`` - each atomically.

Resuming restores the model, optimizer, scheduler, loader epoch/seed, the global random
generator and the callbacks, so a run stopped after epoch ``k`` and resumed produces the same
numbers as one that never stopped (same seed).

The per-batch bookkeeping is a few scalar operations; the benchmark
``benchmarks/training_loop.py`` measures it against a bare forward/backward loop.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import random as cn_random
from ..autograd.grad_mode import no_grad
from ..io.atomic import atomic_write_text
from ..tensor import Tensor
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint, save_weights, to_jsonable
from .metrics import MetricAccumulator

__all__ = ["Trainer", "evaluate"]


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _default_loss():
    from ..functional import cross_entropy

    return cross_entropy


def _to_model_dtype(x, dtype: np.dtype) -> Tensor:
    arr = x._data if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype != dtype and arr.dtype.kind in "fu":
        arr = arr.astype(dtype)
    return Tensor._make(arr)


@no_grad()
def evaluate(model, loader, loss_fn: Callable | None = None, num_classes: int | None = None,
             topk: Sequence[int] = (1, 5), dtype=None,
             reduce: Callable[[MetricAccumulator], None] | None = None) -> dict:
    """Evaluate a classifier on ``loader`` in eval mode (restoring its mode afterwards).

    Returns ``loss``, ``accuracy``, ``top{k}_accuracy``; with ``num_classes`` also
    ``confusion_matrix`` (list of rows, true class by predicted class), ``per_class_accuracy``
    and ``_confusion`` (the :class:`ConfusionMatrix`). ``reduce(accumulator)``, when given,
    combines the sums in place before the results are computed (data-parallel evaluation:
    each process evaluates its shard, then the sums are added across processes).
    """
    loss_fn = loss_fn or _default_loss()
    if dtype is None:
        params = list(model.parameters())
        dtype = params[0]._data.dtype if params else np.dtype(np.float32)
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(num_classes, topk)
    try:
        for x, y in loader:
            logits = model(_to_model_dtype(x, dtype))
            labels = y if isinstance(y, Tensor) else Tensor._make(np.asarray(y))
            acc.update(float(loss_fn(logits, labels)._data), logits._data, labels._data)
    finally:
        model.train(was_training)
    if reduce is not None:
        reduce(acc)
    out = acc.result()
    if acc.confusion is not None:
        out["confusion_matrix"] = acc.confusion.matrix.tolist()
        out["per_class_accuracy"] = [None if np.isnan(v) else float(v)
                                     for v in acc.confusion.per_class_accuracy()]
        if acc.dense:
            out["per_class_iou"] = [None if np.isnan(v) else float(v)
                                    for v in acc.confusion.iou()]
        out["_confusion"] = acc.confusion
    return out


class Trainer:
    """Train a classifier.

    Args:
        model: an ``nn.Module`` mapping ``(N, C, H, W)`` images to ``(N, K)`` logits.
        optimizer: a ``convnet.optim`` optimizer over the model's parameters.
        train_loader: yields ``(images, labels)`` batches.
        val_loader: evaluated after every epoch (optional).
        loss_fn: ``loss_fn(logits, labels) -> scalar Tensor`` (default cross-entropy).
        scheduler: a learning-rate scheduler, stepped per epoch or per batch (``scheduler_step``).
        epochs: total number of epochs.
        out_dir: where checkpoints, metrics and curves go (None: keep nothing on disk).
        callbacks: e.g. :class:`~convnet.training.EarlyStopping`.
        num_classes: enables the confusion matrix in :meth:`evaluate`.
        class_names: used in printed reports.
        progress: a tqdm bar with images/s and ETA: ``True``, ``False``, or ``'auto'`` (the
            default: only when stderr is a terminal, so piped or ``nohup`` logs get no
            ``\r`` frames, just the one line per epoch of ``log``).
        config: JSON-able run configuration, saved in checkpoints and metrics.json.
        topk: accuracies reported (1 and 5 by default).
        log: function receiving one line per epoch (default: print and flush, so a redirected
            log shows each epoch as it ends; None for silence).
    """

    # names of the losses on curves.png (a subclass that trains on another loss renames them)
    curve_labels: dict = {}

    def __init__(self, model, optimizer, train_loader, val_loader=None, *,
                 loss_fn: Callable | None = None, scheduler=None, scheduler_step: str = "epoch",
                 epochs: int = 10, out_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[Callback] = (), num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, progress: bool | str = "auto",
                 config: dict | None = None, topk: Sequence[int] = (1, 5),
                 log: Callable[[str], None] | None = _print_flush) -> None:
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError("Trainer: scheduler_step must be 'epoch' or 'batch', got "
                             f"{scheduler_step!r}")
        if progress not in (True, False, "auto"):
            raise ValueError(f"Trainer: progress must be True, False or 'auto', got {progress!r}")
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"Trainer: epochs must be a non-negative int, got {epochs!r}")
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss_fn = loss_fn or _default_loss()
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.epochs = epochs
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.num_classes, self.class_names = num_classes, class_names
        self.progress, self.config = progress, dict(config or {})
        self.topk, self.log = tuple(topk), log
        self.epoch = 0  # completed epochs
        self.saved_epoch = 0  # epochs completed when the last checkpoint was written
        self.restored_epoch = None  # set when a callback restores the weights of a best epoch
        self.history: list[dict] = []
        self.stop_training = False
        self.train_time = 0.0
        params = list(model.parameters())
        self.dtype = params[0]._data.dtype if params else np.dtype(np.float32)

    # ---------------------------------------------------------------- helpers
    def _cast(self, x) -> Tensor:
        """Inputs follow the model's dtype (float64 models get float64 batches)."""
        return _to_model_dtype(x, self.dtype)

    def _show_progress(self) -> bool:
        if self.progress == "auto":
            return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
        return bool(self.progress)

    def _bar(self, total: int, desc: str):
        if not self._show_progress():
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="img", unit_scale=True, leave=False,
                    dynamic_ncols=True, file=sys.stderr, mininterval=0.25)

    # ------------------------------------------------------------------ epochs
    def train_epoch(self) -> dict:
        """One pass over ``train_loader``; returns ``train_loss``, ``train_accuracy``, ... ."""
        model, opt, compute_loss = self.model, self.optimizer, self.compute_loss
        model.train()
        acc = MetricAccumulator(None, (1,))
        n_total = len(self.train_loader.dataset) if hasattr(self.train_loader, "dataset") else 0
        bar = self._bar(n_total, f"epoch {self.epoch + 1}/{self.epochs}")
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.train_loader):
            inputs = self._cast(x)
            logits = model(inputs)
            labels = y if isinstance(y, Tensor) else Tensor._make(np.asarray(y))
            loss = compute_loss(logits, labels, inputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if self.scheduler is not None and self.scheduler_step == "batch":
                self.scheduler.step()
            value = float(loss._data)
            if not math.isfinite(value):
                raise FloatingPointError(f"Trainer: loss became {value} at epoch {self.epoch + 1}, "
                                         f"batch {i}; lower the learning rate")
            acc.update(value, logits._data, labels._data)
            if bar is not None:
                bar.update(len(labels._data))
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{acc.loss_sum / acc.count:.4f}", refresh=False)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        self.reduce_metrics(acc)
        out = acc.result("train_")
        out["train_time_s"] = elapsed
        out["images_per_s"] = acc.images / elapsed if elapsed > 0 else float("nan")
        return out

    def reduce_metrics(self, acc: MetricAccumulator) -> None:
        """Combine an epoch's metric sums before they are reported: nothing to do in one
        process (``convnet.training.DistributedTrainer`` adds them up across ranks)."""

    def compute_loss(self, logits: Tensor, labels: Tensor, inputs: Tensor) -> Tensor:
        """The training loss of one batch: ``loss_fn(logits, labels)``. A subclass whose loss
        needs the batch's inputs overrides it (``DistillationTrainer`` runs its teacher on
        them); evaluation always uses ``loss_fn``."""
        return self.loss_fn(logits, labels)

    def evaluate(self, loader, confusion: bool = False) -> dict:
        """Loss, top-1/top-k accuracy (and with ``confusion``, the confusion matrix and
        per-class accuracy) of the model on ``loader``, in eval mode."""
        return evaluate(self.model, loader, self.loss_fn, self.num_classes if confusion else None,
                        self.topk, self.dtype, reduce=self.reduce_metrics)

    def fit(self) -> list[dict]:
        """Train from the current epoch up to ``epochs`` (or until a callback stops it)."""
        for cb in self.callbacks:
            cb.on_train_begin(self)
        self.stop_training = False
        self.train_loader_set_epoch()
        while self.epoch < self.epochs and not self.stop_training:
            lr = self.optimizer.param_groups[0]["lr"]
            logs = {"epoch": self.epoch + 1, "lr": lr}
            logs.update(self.train_epoch())
            self.train_time += logs["train_time_s"]
            if self.val_loader is not None:
                val = self.evaluate(self.val_loader)
                logs.update({f"val_{k}": v for k, v in val.items()})
            if self.scheduler is not None and self.scheduler_step == "epoch":
                self.scheduler.step()
            self.epoch += 1
            self.history.append(logs)
            for cb in self.callbacks:
                cb.on_epoch_end(self, self.epoch, logs)
            if self.log is not None:
                self.log(self._format(logs))
            if self.out_dir is not None:
                # Redrawing the curves costs ~0.3 s: skip it for very short epochs (they are
                # drawn once at the end).
                self.save(self.out_dir, plot=logs["train_time_s"] > 2.0)
        if self.out_dir is not None and self.history:
            self.plot(self.out_dir / "curves.png")
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def train_loader_set_epoch(self) -> None:
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(self.epoch)

    def _format(self, logs: dict) -> str:
        parts = [f"epoch {logs['epoch']:>3}/{self.epochs}", f"loss {logs['train_loss']:.4f}",
                 f"acc {logs['train_accuracy']:.4f}"]
        if "val_loss" in logs:
            parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy']:.4f}"]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['images_per_s']:.0f} img/s",
                  f"{logs['train_time_s']:.1f}s"]
        return "  ".join(parts)

    # ------------------------------------------------------------- persistence
    def state(self) -> dict:
        """The run state saved in checkpoints (besides weights and optimizer)."""
        return {
            "epoch": self.epoch, "epochs": self.epochs, "history": self.history,
            "train_time_s": self.train_time, "config": self.config,
            "rng": cn_random.get_state(),
            "train_loader": (self.train_loader.state_dict()
                             if hasattr(self.train_loader, "state_dict") else None),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }

    def save(self, out_dir: str | os.PathLike, plot: bool = True) -> None:
        """Write checkpoint.safetensors, model.safetensors, metrics.json and curves.png."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "checkpoint.safetensors", self.model, self.optimizer, self.scheduler,
                        **self.state())
        save_weights(self.model, out / "model.safetensors",
                     {"config": self.config, "epoch": self.epoch})
        self.write_metrics(out)
        self.saved_epoch = self.epoch
        if plot and self.history:
            self.plot(out / "curves.png")

    def plot(self, path) -> None:
        """Draw ``history`` to ``path`` (curves.png); subclasses draw their own metrics."""
        from .plots import plot_curves

        plot_curves(self.history, path, title=self.config.get("title", ""), **self.curve_labels)

    def write_metrics(self, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
        """metrics.json: config, per-epoch history, and ``extra`` (e.g. test results)."""
        path = Path(out_dir) / "metrics.json"
        data = {}
        if path.is_file():  # keep test results written by an earlier call
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                data = {}
        data.update({"config": self.config, "epochs_completed": self.epoch,
                     "train_time_s": self.train_time, "history": self.history})
        if extra:
            data.update(extra)
        atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")
        return path

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save` (a file or its output folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "checkpoint.safetensors"
        state = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.saved_epoch = self.epoch
        self.train_time = float(state.get("train_time_s", 0.0))
        if state.get("train_loader") and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(state["train_loader"])
        cn_random.set_state(state["rng"])
        for cb, s in zip(self.callbacks, state.get("callbacks", [])):
            cb.load_state_dict(s)
