"""``DistillationTrainer``: train a student network on a fixed teacher's soft targets and the
labels (knowledge distillation, Hinton et al. 2015).

Every training batch goes through the teacher too (eval mode, no gradients), on the same
augmented inputs the student sees; the loss is :class:`convnet.nn.DistillationLoss`.
Everything else - evaluation, checkpoints, exact resume, metrics, curves - is the
:class:`~convnet.training.Trainer`'s: the teacher holds no training state, so a resumed run
only needs the same teacher again.
"""
from __future__ import annotations

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
        **kwargs: the other :class:`Trainer` arguments. ``loss_fn`` (default cross-entropy)
            is the evaluation loss, so ``val_loss`` stays comparable with a run trained
            without a teacher.
    """

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, teacher,
                 temperature: float = 4.0, alpha: float = 0.9, **kwargs) -> None:
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

    def teacher_logits(self, inputs: Tensor) -> Tensor:
        """The teacher's logits for a batch, as constants (eval mode, no graph)."""
        teacher = self.teacher
        if getattr(teacher, "training", False):  # someone switched it back: BN/dropout must not
            teacher.eval()                       # change with the student's batches
        with no_grad():
            try:
                return teacher(_to_model_dtype(inputs, self.teacher_dtype))
            except (ValueError, RuntimeError, TypeError) as e:
                raise ValueError(f"DistillationTrainer: the teacher cannot take the student's "
                                 f"input batch of shape {inputs.shape}: {e}") from e

    def compute_loss(self, logits: Tensor, labels: Tensor, inputs: Tensor) -> Tensor:
        if self.distillation.alpha == 0:  # labels only: the teacher's answer is not used
            return self.distillation(logits, logits.detach(), labels)
        teacher = self.teacher_logits(inputs)
        if teacher.shape != logits.shape:
            raise ValueError(f"DistillationTrainer: teacher logits {teacher.shape} and student "
                             f"logits {logits.shape} differ: teacher and student must predict "
                             "the same classes")
        return self.distillation(logits, teacher, labels)
