"""Loss functions with PyTorch's signatures and reductions ('none' | 'mean' | 'sum').

Classification losses take logits ``(N, C)`` or ``(N, C, d1, ...)`` with targets
``(N,)`` / ``(N, d1, ...)`` of class indices (or, for cross-entropy, class
probabilities shaped like the input). Both are written as
``loss_i = -sum_c coef_ic * log p_ic``: the coefficient array encodes the
target, class weights, label smoothing and ignored entries, and the gradient
with respect to the logits is ``p_ic * sum_c coef_ic - coef_ic``.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd.function import Function
from ..creation import where
from ..tensor import Tensor

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "distillation_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _legacy_reduction(size_average, reduce, reduction: str, op: str) -> str:
    """torch's mapping of the deprecated ``size_average``/``reduce`` flags (either one given
    overrides ``reduction``): both true (or unset) -> 'mean', ``reduce`` only -> 'sum',
    ``reduce=False`` -> 'none'. Warns as torch does."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else bool(size_average)
    reduce = True if reduce is None else bool(reduce)
    legacy = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(
        f"{op}: size_average and reduce args will be deprecated, please use "
        f"reduction='{legacy}' instead.", UserWarning, stacklevel=3)
    return legacy


def _check_reduction(reduction: str, op: str, extra=()) -> None:
    if reduction not in _REDUCTIONS + tuple(extra):
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS + tuple(extra)}, got {reduction!r}")


def _class_coefficients(input_shape, target: np.ndarray, weight, ignore_index: int,
                        label_smoothing: float, dtype, op: str):
    """Build ``coef`` (input's shape) and the 'mean' denominator from class-index targets."""
    n_classes = input_shape[1]
    expected = input_shape[:1] + input_shape[2:]
    if target.shape != expected:
        raise ValueError(f"{op}: target shape {target.shape} does not match input {input_shape} "
                         f"(expected {expected})")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: class-index target must be an integer tensor, got {target.dtype}")
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise ValueError(f"{op}: target contains class {int(target[bad].flat[0])} but input has "
                         f"{n_classes} classes (valid 0..{n_classes - 1}, ignore_index={ignore_index})")
    safe = np.where(valid, target, 0)
    w = np.ones(n_classes, dtype=dtype) if weight is None else weight.astype(dtype, copy=False)
    w_shape = (1, n_classes) + (1,) * (len(input_shape) - 2)
    coef = np.zeros(input_shape, dtype=dtype)
    w_target = w[safe] * valid  # weight of each sample's class, 0 where ignored
    np.put_along_axis(coef, np.expand_dims(safe, 1), np.expand_dims(w_target * (1 - label_smoothing), 1), axis=1)
    if label_smoothing > 0:
        coef += (label_smoothing / n_classes) * w.reshape(w_shape) * np.expand_dims(valid, 1)
    return coef, w_target.sum()


class _CoefNLL(Function):
    """``-sum_c coef * logp`` per element, reduced; input is logits or log-probabilities."""

    def forward(self, x, coef, denom, reduction, from_logits):
        self.from_logits, self.reduction = from_logits, reduction
        if from_logits:
            shifted = x - x.max(axis=1, keepdims=True)
            shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            logp = shifted
            self.logp = logp
        else:
            logp = x
        self.coef, self.denom = coef, denom
        per = -(coef * logp).sum(axis=1)
        if reduction == "none":
            return per
        total = per.sum()
        return np.asarray(total / per.dtype.type(denom) if reduction == "mean" else total)

    def backward(self, g):
        coef = self.coef
        if self.reduction == "none":
            scale = np.expand_dims(g, 1)
        else:
            scale = g / g.dtype.type(self.denom) if self.reduction == "mean" else g
        if self.from_logits:
            p = np.exp(self.logp)
            dx = p * coef.sum(axis=1, keepdims=True) - coef
        else:
            dx = -coef
        return dx * scale, None, None, None, None


def _classification_input(input: Tensor, target: Tensor, op: str):
    if input.ndim == 1:  # unbatched (C,) with a scalar target
        return input.unsqueeze(0), target.reshape(1) if target.ndim == 0 else target.unsqueeze(0), True
    if input.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C) or (N, C, d1, ...), got shape {input.shape}")
    return input, target, False


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy on logits, fused with a stable log-softmax.

    ``loss_n = -sum_c w_c t_nc log softmax(x_n)_c`` where ``t`` is the one-hot (or
    given probability) target, smoothed to ``(1 - eps) t + eps / C``. 'mean' divides by
    the summed target weights for index targets and by the element count for
    probability targets (as torch).
    """
    reduction = _legacy_reduction(size_average, reduce, reduction, "cross_entropy")
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    x, t, unbatched = _classification_input(input, target, "cross_entropy")
    n_classes = x.shape[1]
    w = None
    if weight is not None:
        w = weight._data if isinstance(weight, Tensor) else np.asarray(weight)
        if w.shape != (n_classes,):
            raise ValueError(f"cross_entropy: weight shape {w.shape} != ({n_classes},) classes")
    if t.dtype.kind == "f":  # class probabilities
        if t.shape != x.shape:
            raise ValueError(f"cross_entropy: probability target shape {t.shape} != input shape {x.shape}")
        probs = t._data.astype(x.dtype, copy=False)
        if label_smoothing > 0:
            probs = probs * (1 - label_smoothing) + label_smoothing / n_classes
        if w is not None:
            probs = probs * w.astype(x.dtype).reshape((1, n_classes) + (1,) * (x.ndim - 2))
        coef, denom = probs, x._data.size / n_classes
    else:
        coef, denom = _class_coefficients(x.shape, t._data, w, ignore_index, label_smoothing,
                                          x.dtype, "cross_entropy")
    out = _CoefNLL.apply(x, coef, denom, reduction, True)
    return out.reshape(()) if (unbatched and reduction == "none") else out


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood on log-probabilities: ``loss_n = -w_{y_n} x_{n, y_n}``."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "nll_loss")
    _check_reduction(reduction, "nll_loss")
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    x, t, unbatched = _classification_input(input, target, "nll_loss")
    w = None
    if weight is not None:
        w = weight._data if isinstance(weight, Tensor) else np.asarray(weight)
        if w.shape != (x.shape[1],):
            raise ValueError(f"nll_loss: weight shape {w.shape} != ({x.shape[1]},) classes")
    coef, denom = _class_coefficients(x.shape, t._data, w, ignore_index, 0.0, x.dtype, "nll_loss")
    out = _CoefNLL.apply(x, coef, denom, reduction, False)
    return out.reshape(()) if (unbatched and reduction == "none") else out


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_same_shape(input: Tensor, target: Tensor, op: str) -> None:
    if input.shape != target.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
             reduction: str = "mean") -> Tensor:
    """Mean squared error ``(x - y)^2``."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    _check_same_shape(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
            reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|x - y|``."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "l1_loss")
    _check_reduction(reduction, "l1_loss")
    _check_same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Huber-style loss: ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "smooth_l1_loss")
    _check_reduction(reduction, "smooth_l1_loss")
    _check_same_shape(input, target, "smooth_l1_loss")
    d = input - target
    ad = d.abs()
    if beta == 0:
        return _reduce(ad, reduction)
    loss = where(ad._data < beta, d * d * (0.5 / beta), ad - 0.5 * beta)
    return _reduce(loss, reduction)


def _optional_array(v, input: Tensor, op: str, name: str):
    """A weight given as Tensor/array/None -> an ndarray in the input's dtype that broadcasts
    to the input's shape (or None)."""
    if v is None:
        return None
    arr = np.asarray(v._data if isinstance(v, Tensor) else v, dtype=input.dtype)
    try:
        np.broadcast_shapes(arr.shape, input.shape)
    except ValueError:
        raise ValueError(f"{op}: {name} shape {arr.shape} does not broadcast to input "
                         f"{input.shape}") from None
    return arr


class _BCE(Function):
    def forward(self, x, t, w, reduction):
        if ((x < 0) | (x > 1)).any():
            raise ValueError("binary_cross_entropy: input values must be probabilities in [0, 1]")
        self.x, self.t, self.w, self.reduction = x, t, w, reduction
        # log clamped at -100, like torch, so a saturated prediction gives a finite loss
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        self.log_x, self.log_1mx = log_x, log_1mx
        loss = -(t * log_x + (1 - t) * log_1mx)
        if w is not None:
            loss = loss * w
        if reduction == "none":
            return loss
        return np.asarray(loss.mean() if reduction == "mean" else loss.sum())

    def backward(self, g):
        x, t, w = self.x, self.t, self.w
        if self.reduction == "mean":
            g = g / g.dtype.type(x.size)
        nx, nt, _, _ = self.needs_input_grad
        scale = g if w is None else g * w
        gx = scale * (x - t) / np.maximum(x * (1 - x), x.dtype.type(1e-12)) if nx else None
        gt = scale * (self.log_1mx - self.log_x) if nt else None
        if gx is not None:
            gx = np.broadcast_to(gx, x.shape)
        if gt is not None:
            gt = np.broadcast_to(gt, t.shape)
        return gx, gt, None, None


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """``-(y log x + (1 - y) log(1 - x))`` on probabilities ``x`` (logs clamped at -100)."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "binary_cross_entropy")
    _check_reduction(reduction, "binary_cross_entropy")
    _check_same_shape(input, target, "binary_cross_entropy")
    w = _optional_array(weight, input, "binary_cross_entropy", "weight")
    return _BCE.apply(input, target, w, reduction)


class _BCEWithLogits(Function):
    def forward(self, x, t, w, pw, reduction):
        self.x, self.t, self.w, self.pw, self.reduction = x, t, w, pw, reduction
        # softplus(-x) = log(1 + e^-x) = max(-x, 0) + log1p(e^-|x|), stable for any x
        sp = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
        self.sp = sp
        lw = 1 + (pw - 1) * t if pw is not None else 1
        loss = (1 - t) * x + lw * sp
        if w is not None:
            loss = loss * w
        if reduction == "none":
            return loss
        return np.asarray(loss.mean() if reduction == "mean" else loss.sum())

    def backward(self, g):
        x, t, w, pw = self.x, self.t, self.w, self.pw
        if self.reduction == "mean":
            g = g / g.dtype.type(x.size)
        scale = g if w is None else g * w
        nx, nt = self.needs_input_grad[:2]
        sig_neg = np.exp(-self.sp)  # sigmoid(x) = exp(-softplus(-x))
        sig_neg = 1 - sig_neg  # sigmoid(-x)
        lw = 1 + (pw - 1) * t if pw is not None else 1
        gx = np.broadcast_to(scale * ((1 - t) - lw * sig_neg), x.shape) if nx else None
        gt = None
        if nt:
            d = -x + ((pw - 1) * self.sp if pw is not None else 0)
            gt = np.broadcast_to(scale * d, t.shape)
        return gx, gt, None, None, None


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression:
    ``(1 - y) x + (1 + (pw - 1) y) log(1 + exp(-x))``."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "binary_cross_entropy_with_logits")
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")

    op = "binary_cross_entropy_with_logits"
    w = _optional_array(weight, input, op, "weight")
    pw = _optional_array(pos_weight, input, op, "pos_weight")
    return _BCEWithLogits.apply(input, target, w, pw, reduction)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence with ``input`` as log-probabilities:
    ``y (log y - x)`` (0 where ``y == 0``); 'batchmean' divides the sum by N."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "kl_div")
    _check_reduction(reduction, "kl_div", extra=("batchmean",))
    _check_same_shape(input, target, "kl_div")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target._data > 0
        safe_log = where(pos, target, 1.0).log()
        loss = where(pos, target * safe_log, 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def _log_softmax_rows(z: np.ndarray) -> np.ndarray:
    """Stable ``log softmax`` over axis 1: shift by the row maximum so ``exp`` never overflows."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class _SoftTargetKL(Function):
    """``T^2 * KL(p_t || p_s)`` per row, with ``p = softmax(logits / T)``; the teacher's
    probabilities are constants. Reduced by 'none' (per row), 'sum', or 'mean' (sum / N,
    torch's 'batchmean')."""

    def forward(self, s, t, temperature, reduction):
        T = s.dtype.type(temperature)
        log_ps = _log_softmax_rows(s / T)
        log_pt = _log_softmax_rows(t.astype(s.dtype, copy=False) / T)
        pt = np.exp(log_pt)  # an underflow to 0 multiplies a finite log gap: no nan
        self.ps, self.pt, self.T, self.reduction = np.exp(log_ps), pt, T, reduction
        per = (T * T) * (pt * (log_pt - log_ps)).sum(axis=1)
        if reduction == "none":
            return per
        return np.asarray(per.sum() / per.dtype.type(s.shape[0]) if reduction == "mean"
                          else per.sum())

    def backward(self, g):
        # d/ds [T^2 sum_c pt_c (log pt_c - log ps_c)] = T^2 (ps - pt) / T = T (ps - pt)
        ds = self.T * (self.ps - self.pt)
        if self.reduction == "none":
            return ds * np.expand_dims(g, 1), None, None, None
        scale = g / g.dtype.type(ds.shape[0]) if self.reduction == "mean" else g
        return ds * scale, None, None, None


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                      temperature: float = 4.0, alpha: float = 0.9, reduction: str = "mean",
                      weight: Tensor | None = None, ignore_index: int = -100,
                      label_smoothing: float = 0.0) -> Tensor:
    """Knowledge-distillation loss of Hinton et al. (2015), "Distilling the Knowledge in a
    Neural Network":

    ``loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)``

    with student logits ``s``, teacher logits ``t``, temperature ``T`` and hard labels ``y``.
    With 'mean' the KL term is summed over classes and averaged over the batch (torch's
    ``kl_div(..., reduction='batchmean')``) and the cross-entropy is
    :func:`cross_entropy`'s mean; 'sum' sums both over the batch; 'none' returns the
    per-sample ``(N,)`` losses. As a torch user writes it::

        a * T * T * F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t.detach() / T, 1),
                             reduction="batchmean", log_target=True)
        + (1 - a) * F.cross_entropy(s, y)

    Why ``T^2``: without it, the soft term's gradient with respect to the student logits is
    ``(softmax(s / T) - softmax(t / T)) / T``; for large ``T`` the softmax difference is
    about ``(s - t) / (C T)`` (zero-mean logits), so the gradient shrinks as ``1 / T^2``.
    Multiplying by ``T^2`` keeps the soft gradients' magnitude roughly independent of the
    temperature, so ``alpha`` means the same split between the two terms whatever ``T``.

    The teacher's logits are constants: no gradient flows to them (as if detached). They
    are cast to the student's dtype. ``weight``, ``ignore_index`` and ``label_smoothing``
    apply to the cross-entropy term only (the teacher has soft targets for every sample).

    Args:
        student_logits: ``(N, C)``.
        teacher_logits: ``(N, C)``, same shape.
        target: ``(N,)`` class indices, or ``(N, C)`` class probabilities (as
            :func:`cross_entropy`).
        temperature: ``T > 0`` (default 4); ``T = 1`` is the plain softmax.
        alpha: weight of the soft term in ``[0, 1]`` (default 0.9); 0 is plain cross-entropy.
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        output: scalar, or ``(N,)`` with ``reduction='none'``.
    """
    op = "distillation_loss"
    _check_reduction(reduction, op)
    if not isinstance(student_logits, Tensor) or not isinstance(teacher_logits, Tensor):
        raise TypeError(f"{op}: student_logits and teacher_logits must be Tensors, got "
                        f"{type(student_logits).__name__} and {type(teacher_logits).__name__}")
    try:
        T, a = float(temperature), float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: temperature and alpha must be numbers, got {temperature!r} "
                        f"and {alpha!r}") from None
    if not (T > 0 and np.isfinite(T)):
        raise ValueError(f"{op}: temperature must be a positive finite number, got {temperature}")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"{op}: alpha must be in [0, 1], got {alpha}")
    s_shape = student_logits.shape
    if student_logits.ndim != 2:
        raise ValueError(f"{op}: student_logits must be (N, C), got shape {s_shape}")
    if teacher_logits.shape != s_shape:
        raise ValueError(f"{op}: teacher_logits shape {teacher_logits.shape} != student_logits "
                         f"shape {s_shape} (teacher and student must predict the same classes)")
    if student_logits.dtype.kind != "f":
        raise TypeError(f"{op}: student_logits must be floating point, got {student_logits.dtype}")
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    probs = target.dtype.kind == "f"
    if target.shape != (s_shape if probs else s_shape[:1]):
        raise ValueError(f"{op}: target shape {target.shape} does not fit student_logits "
                         f"{s_shape} (expected {s_shape[:1]} class indices or {s_shape} "
                         "probabilities)")
    soft = hard = None
    if a > 0:
        soft = _SoftTargetKL.apply(student_logits, teacher_logits._data, T, reduction)
    if a < 1:
        hard = cross_entropy(student_logits, target, weight, ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=label_smoothing)
    if hard is None:
        return soft
    return hard if soft is None else soft * a + hard * (1.0 - a)
