"""Callbacks hook into :class:`~convnet.training.Trainer` at epoch boundaries."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Callback", "EarlyStopping", "RestoreBestWeights"]


class Callback:
    """Override any of the hooks; ``state_dict``/``load_state_dict`` make a callback resumable."""

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class _Monitor(Callback):
    """Tracks the best value of one logged metric: ``best``, ``best_epoch``, ``wait`` (epochs
    since the last improvement by more than ``min_delta``)."""

    def __init__(self, monitor: str, min_delta: float, mode: str) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got "
                             f"{mode!r}")
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best = -math.inf if self.mode == "max" else math.inf
        self.wait = 0
        self.best_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def _update(self, epoch: int, logs: dict) -> bool:
        """Record ``logs[monitor]``; True when it is a new best."""
        if self.monitor not in logs:
            raise KeyError(f"{type(self).__name__}: metric {self.monitor!r} not logged (is there "
                           f"a validation set?); available: {sorted(logs)}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.wait, self.best_epoch = value, 0, epoch
            return True
        self.wait += 1
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = state["best_epoch"]


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` is 'min' (losses) or 'max' (accuracies); 'auto' picks 'max' for names containing
    "acc". Sets ``trainer.stop_training``. ``restore_best_weights=True`` (Keras' option) also
    puts the weights of the best epoch back into the model when training ends, as
    :class:`RestoreBestWeights` does.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        super().__init__(monitor, min_delta, mode)
        self.patience = int(patience)
        self.restore = RestoreBestWeights(monitor, min_delta, mode) if restore_best_weights \
            else None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.restore is not None:
            self.restore.on_epoch_end(trainer, epoch, logs)
        if not self._update(epoch, logs) and self.wait >= self.patience:
            trainer.stop_training = True

    def on_train_end(self, trainer) -> None:
        if self.restore is not None:
            self.restore.on_train_end(trainer)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.restore is not None:
            state["restore"] = self.restore.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.restore is not None and "restore" in state:
            self.restore.load_state_dict(state["restore"])


class RestoreBestWeights(_Monitor):
    """When training ends, put back the weights of the epoch where ``monitor`` was best (Keras'
    ``restore_best_weights``).

    The best weights are kept in memory and, when the trainer has an ``out_dir``, also in
    ``best_model.safetensors`` there, so a resumed run can restore them. After restoring, the
    trainer's ``model.safetensors`` is rewritten with them (``checkpoint.safetensors`` keeps
    the last epoch, to resume from); ``trainer.restored_epoch`` tells which epoch it was.
    """

    FILE = "best_model.safetensors"

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0,
                 mode: str = "auto") -> None:
        super().__init__(monitor, min_delta, mode)
        self._weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if not self._update(epoch, logs):
            return
        self._weights = {k: v._data.copy() for k, v in trainer.model.state_dict().items()}
        if trainer.out_dir is not None:
            from .checkpoint import save_weights

            trainer.out_dir.mkdir(parents=True, exist_ok=True)
            save_weights(trainer.model, trainer.out_dir / self.FILE,
                         {"config": trainer.config, "epoch": epoch})

    def on_train_end(self, trainer) -> None:
        if self.best_epoch is None:
            return
        from .checkpoint import load_weights, save_weights

        if self._weights is not None:
            trainer.model.load_state_dict(self._weights)
        elif trainer.out_dir is not None and (trainer.out_dir / self.FILE).is_file():
            load_weights(trainer.model, trainer.out_dir / self.FILE)  # resumed run
        else:
            raise FileNotFoundError(f"RestoreBestWeights: the weights of epoch {self.best_epoch} "
                                    "were not kept (no out_dir, and this is a resumed run)")
        trainer.restored_epoch = self.best_epoch
        if trainer.out_dir is not None:
            save_weights(trainer.model, trainer.out_dir / "model.safetensors",
                         {"config": trainer.config, "epoch": self.best_epoch})
        if trainer.log is not None:
            trainer.log(f"restored the weights of epoch {self.best_epoch} ({self.monitor} "
                        f"{self.best:.4f})")
