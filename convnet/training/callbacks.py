"""Callbacks hook into :class:`~convnet.training.Trainer` at epoch boundaries."""
from __future__ import annotations

import math

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Override any of the hooks; ``state_dict``/``load_state_dict`` make a callback resumable."""

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` is 'min' (losses) or 'max' (accuracies); 'auto' picks 'max' for names containing
    "acc". Sets ``trainer.stop_training``; the trainer records ``stopped_epoch``.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto") -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best = -math.inf if self.mode == "max" else math.inf
        self.wait = 0
        self.best_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: metric {self.monitor!r} not logged; available: "
                           f"{sorted(logs)}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.wait, self.best_epoch = value, 0, epoch
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = state["best_epoch"]
