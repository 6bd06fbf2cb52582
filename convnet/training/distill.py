"""``DistillationTrainer``: train a student network on a fixed teacher's soft targets and the
labels (knowledge distillation, Hinton et al. 2015).

Every training batch goes through the teacher too (eval mode, no gradients), on the same
augmented inputs the student sees; the loss is :class:`convnet.nn.DistillationLoss`.
With ``cache_teacher_logits=True`` (for training images that no random transform changes)
the teacher instead runs once over the training set, and each batch looks its logits up by
the bytes of its images: an epoch then costs what training on the labels costs.
Everything else - evaluation, checkpoints, exact resume, metrics, curves - is the
:class:`~convnet.training.Trainer`'s: the teacher holds no training state, so a resumed run
only needs the same teacher again.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.modules.loss import DistillationLoss
from ..tensor import Tensor
from .trainer import Trainer, _to_model_dtype

__all__ = ["DistillationTrainer"]


class DistillationTrainer(Trainer):
    """A :class:`Trainer` whose training loss is
    ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE``.

    Args:
        model, optimizer, train_loader, val_loader: the student's, as for :class:`Trainer`.
        teacher: an ``nn.Module`` taking the same ``(N, C, H, W)`` inputs to ``(N, K)``
            logits over the same ``K`` classes. It is put in eval mode and run under
            ``no_grad``; its parameters are never updated.
        temperature: ``T`` of the soft targets (default 4).
        alpha: weight of the soft term (default 0.9; 0 trains on the labels alone and skips
            the teacher).
        cache_teacher_logits: compute the teacher's logits once, over ``train_loader``'s
            dataset in index order, and look each batch's up by the bytes of its images
            (default False). Only for training transforms that draw no random numbers: an
            image the teacher has not seen (an augmented one) falls back to running the
            teacher on its batch, so results stay right, just slower.
        **kwargs: the other :class:`Trainer` arguments. ``loss_fn`` (default cross-entropy)
            is the evaluation loss, so ``val_loss`` stays comparable with a run trained
            without a teacher.
    """

    # the training loss is the distillation objective, validation stays cross-entropy
    curve_labels = {"train_loss_label": "train: alpha T^2 KL + (1 - alpha) CE",
                    "loss_ylabel": "loss (validation: cross-entropy)"}

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, teacher,
                 temperature: float = 4.0, alpha: float = 0.9,
                 cache_teacher_logits: bool = False, **kwargs) -> None:
        super().__init__(model, optimizer, train_loader, val_loader, **kwargs)
        if not callable(teacher):
            raise TypeError(f"DistillationTrainer: teacher must be a module, got "
                            f"{type(teacher).__name__}")
        self.distillation = DistillationLoss(temperature, alpha)
        self.teacher = teacher
        params = list(teacher.parameters()) if hasattr(teacher, "parameters") else []
        self.teacher_dtype = params[0]._data.dtype if params else self.dtype
        if hasattr(teacher, "eval"):
            teacher.eval()
        self.cache_teacher_logits = bool(cache_teacher_logits)
        self._cache: dict[bytes, np.ndarray] | None = None

    @staticmethod
    def _keys(inputs: np.ndarray) -> list[bytes]:
        rows = np.ascontiguousarray(inputs).reshape(len(inputs), -1)
        return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]

    def _build_cache(self) -> None:
        """The teacher's logits for every training image, in the dataset's index order and
        fixed batches, so a fresh and a resumed run see the very same numbers."""
        from ..data import DataLoader

        start = time.perf_counter()
        dataset = self.train_loader.dataset
        cache: dict[bytes, np.ndarray] = {}
        for x, _ in DataLoader(dataset, 256, shuffle=False):
            inputs = self._cast(x)
            logits = self._run_teacher(inputs)._data
            cache.update(zip(self._keys(inputs._data), logits))
        self._cache = cache
        if self.log is not None:
            self.log(f"teacher logits for {len(dataset):,} training images computed once "
                     f"({time.perf_counter() - start:.1f}s) and reused every epoch")

    def _run_teacher(self, inputs: Tensor) -> Tensor:
        teacher = self.teacher
        if getattr(teacher, "training", False):  # someone switched it back: BN/dropout must not
            teacher.eval()                       # change with the student's batches
        with no_grad():
            try:
                return teacher(_to_model_dtype(inputs, self.teacher_dtype))
            except (ValueError, RuntimeError, TypeError) as e:
                raise ValueError(f"DistillationTrainer: the teacher cannot take the student's "
                                 f"input batch of shape {inputs.shape}: {e}") from e

    def teacher_logits(self, inputs: Tensor) -> Tensor:
        """The teacher's logits for a batch, as constants (eval mode, no graph)."""
        if self.cache_teacher_logits:
            if self._cache is None:
                self._build_cache()
            rows = [self._cache.get(k) for k in self._keys(inputs._data)]
            if all(r is not None for r in rows):
                return Tensor._make(np.stack(rows))
        return self._run_teacher(inputs)

    def compute_loss(self, logits: Tensor, labels: Tensor, inputs: Tensor) -> Tensor:
        if self.distillation.alpha == 0:  # labels only: the teacher's answer is not used
            return self.distillation(logits, logits.detach(), labels)
        teacher = self.teacher_logits(inputs)
        if teacher.shape != logits.shape:
            raise ValueError(f"DistillationTrainer: teacher logits {teacher.shape} and student "
                             f"logits {logits.shape} differ: teacher and student must predict "
                             "the same classes")
        return self.distillation(logits, teacher, labels)
