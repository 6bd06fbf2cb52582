"""Loss layers wrapping ``convnet.functional`` losses."""
from __future__ import annotations

import numbers

from ... import functional as F
from ...functional.loss import _legacy_reduction
from .module import Module

__all__ = [
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss", "DistillationLoss",
]


class _Loss(Module):
    """Base of the loss layers. ``size_average``/``reduce`` are torch's deprecated flags: either
    one given overrides ``reduction`` with torch's mapping (and a warning)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _legacy_reduction(size_average, reduce, reduction, type(self).__name__)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """Softmax + negative log-likelihood on logits ``(N, C)``; see ``F.cross_entropy``."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class BCELoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class DistillationLoss(_Loss):
    """Knowledge distillation (Hinton et al. 2015): ``alpha * T^2 * KL(softmax(t / T) ||
    softmax(s / T))`` (batch mean) ``+ (1 - alpha) * cross_entropy(s, y)``; see
    ``F.distillation_loss`` (and there, why ``T^2``).

    Args:
        temperature: softens both distributions (default 4; must be > 0).
        alpha: weight of the teacher's soft targets, in ``[0, 1]`` (default 0.9).
        reduction: 'mean' (default), 'sum' or 'none'.
        weight, ignore_index, label_smoothing: passed to the cross-entropy term.

    Shape:
        forward(student_logits ``(N, C)``, teacher_logits ``(N, C)`` (constants: no
        gradient), target ``(N,)``) -> scalar (``(N,)`` with 'none').

    Examples:
        >>> loss = nn.DistillationLoss(temperature=4.0, alpha=0.9)
        >>> out = loss(student(x), teacher(x).detach(), y)
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9, reduction: str = "mean",
                 *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0):
        super().__init__(None, None, reduction)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"DistillationLoss: reduction must be 'none', 'mean' or 'sum', "
                             f"got {reduction!r}")
        if not (isinstance(temperature, numbers.Real) and 0 < temperature < float("inf")):
            raise ValueError(f"DistillationLoss: temperature must be a positive number, "
                             f"got {temperature!r}")
        if not (isinstance(alpha, numbers.Real) and 0 <= alpha <= 1):
            raise ValueError(f"DistillationLoss: alpha must be in [0, 1], got {alpha!r}")
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, student_logits, teacher_logits, target):
        return F.distillation_loss(student_logits, teacher_logits, target, self.temperature,
                                   self.alpha, reduction=self.reduction, weight=self.weight,
                                   ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        extra = f"temperature={self.temperature}, alpha={self.alpha}"
        return extra + (f", reduction={self.reduction!r}" if self.reduction != "mean" else "")
