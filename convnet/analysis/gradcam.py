"""Grad-CAM (Selvaraju et al., 2017) and gradient saliency maps.

Grad-CAM for class ``c`` at a conv layer with activations ``A`` of shape ``(K, h, w)``::

    alpha_k = mean_{i,j} d y_c / d A_k[i, j]              (global-average-pooled gradients)
    L       = ReLU(sum_k alpha_k A_k)                       (h, w)

then ``L`` is resized bilinearly to the input size and scaled to ``[0, 1]`` per sample.
Saliency (Simonyan et al., 2014) is ``max_channel |d y_c / d x|``, scaled the same way.
"""
from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .feature_maps import as_input, resolve_layer

__all__ = ["grad_cam", "saliency_map", "resize_bilinear", "field_aligned_upsample", "normalize_maps"]


def _axis_weights(pos: np.ndarray, n_in: int, dtype):
    """Neighbour indices and blend weights for sampling at continuous positions ``pos``."""
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(dtype)


def _sample(maps: np.ndarray, ypos: np.ndarray, xpos: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``(N, h, w)`` maps at unit coordinates ``ypos`` x ``xpos``:
    two gathers and a blend per axis, no loop."""
    y0, y1, fy = _axis_weights(ypos, maps.shape[1], maps.dtype)
    x0, x1, fx = _axis_weights(xpos, maps.shape[2], maps.dtype)
    rows = maps[:, y0, :] * (1 - fy)[None, :, None] + maps[:, y1, :] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(N, h, w) -> (N, H, W)`` with half-pixel centres (PyTorch's
    ``align_corners=False``)."""
    _, h, w = maps.shape
    H, W = size
    ypos = (np.arange(H) + 0.5) * (h / H) - 0.5
    xpos = (np.arange(W) + 0.5) * (w / W) - 0.5
    return _sample(maps, ypos, xpos)


def field_aligned_upsample(maps: np.ndarray, size: tuple[int, int], start, jump) -> np.ndarray:
    """Upsample ``(N, h, w) -> (N, H, W)`` placing unit ``(i, j)`` at the centre of its receptive
    field, ``start + i * jump`` input pixels, and interpolating linearly between centres.

    A plain resize stretches the map over the whole image; for unpadded layers (LeNet's
    second conv sees pixels 4.5 .. 22.5 of a 28-pixel image) that pushes the heat outwards.
    """
    H, W = size
    ypos = (np.arange(H) - start[0]) / jump[0]
    xpos = (np.arange(W) - start[1]) / jump[1]
    return _sample(maps, ypos, xpos)


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each ``(H, W)`` map of ``(N, H, W)`` to ``[0, 1]`` by its maximum (min 0)."""
    maps = np.maximum(maps, 0)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    scale = np.where(peak > 0, peak, 1)  # an all-zero map stays zero
    return maps / scale[:, None, None]


def _targets(scores: np.ndarray, target) -> np.ndarray:
    n, c = scores.shape
    if target is None:
        return scores.argmax(axis=1)
    t = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)) if np.ndim(target) == 0 \
        else np.asarray(target, dtype=np.int64)
    if t.shape != (n,):
        raise ValueError(f"grad_cam: target has shape {t.shape} but the batch has {n} samples")
    if (t < 0).any() or (t >= c).any():
        raise ValueError(f"grad_cam: target {t.tolist()} out of range for {c} classes")
    return t


class _EvalMode:
    """Run the model in eval mode, then restore each module's own flag."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, t in self.flags:
            m.training = t


def _scores_backward(model, x: Tensor, target, layer_module=None):
    """Forward, then back-propagate the one-hot of each sample's target class."""
    captured = []
    handle = None
    if layer_module is not None:
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            out.retain_grad()
            captured.append(out)
        handle = layer_module.register_forward_hook(hook)
    try:
        with _EvalMode(model), enable_grad():
            scores = model(x)
    finally:
        if handle is not None:
            handle.remove()
    if scores.ndim != 2:
        raise ValueError(
            f"grad_cam: the model must output (N, classes) scores, got {tuple(scores.shape)}")
    t = _targets(scores._data, target)
    onehot = np.zeros(scores.shape, dtype=scores.dtype)
    onehot[np.arange(len(t)), t] = 1
    scores.backward(onehot)
    return captured, t


def grad_cam(model, x, layer, target=None, upsample: str = "field") -> np.ndarray:
    """Grad-CAM heatmaps ``(N, H, W)`` in ``[0, 1]`` at the input's size.

    Args:
        model: a classifier returning ``(N, classes)`` scores.
        x: input ``(N, C, H, W)`` (or ``(C, H, W)``), Tensor or array.
        layer: the conv layer to explain (module or name, e.g. ``'features.3'``); the last
            conv layer gives the best localisation.
        target: class index (int or one per sample); default each sample's top class.
        upsample: ``'field'`` (default) puts each map unit at the centre of its receptive
            field (see ``field_aligned_upsample``); ``'resize'`` stretches the map over the
            image (bilinear, ``align_corners=False``) as most Grad-CAM code does.

    The model runs in eval mode (restored afterwards); parameter gradients it accumulates
    are cleared again, so a training loop is not disturbed.
    """
    x = as_input(x)
    if x.ndim == 3:
        x = Tensor._make(x._data[None])
    if x.ndim != 4:
        raise ValueError(f"grad_cam: input must be (N, C, H, W), got {tuple(x.shape)}")
    module = resolve_layer(model, layer)
    if upsample not in ("field", "resize"):
        raise ValueError(f"grad_cam: upsample must be 'field' or 'resize', got {upsample!r}")
    old = [(p, p.grad) for p in model.parameters()]
    try:
        captured, _ = _scores_backward(model, x.detach(), target, module)
    finally:
        for p, g in old:
            p.grad = g
    if not captured:
        raise ValueError(f"grad_cam: layer {layer!r} did not run in the forward pass")
    act = captured[-1]
    if act.ndim != 4:
        raise ValueError(
            f"grad_cam: layer {layer!r} output has shape {tuple(act.shape)}; pick a conv layer")
    grad = act.grad._data if act.grad is not None else np.zeros_like(act._data)
    alpha = grad.mean(axis=(2, 3), keepdims=True)  # (N, K, 1, 1)
    cam = np.maximum((alpha * act._data).sum(axis=1), 0)
    if upsample == "field":
        from .receptive_field import trace_geometry

        # where the layer's units sit on the input grid (one traced pass on one sample)
        with _EvalMode(model):
            calls, _ = trace_geometry(model, Tensor._make(x._data[:1]))
        info = next((c.field for c in calls if c.module is module), None)
        if info is None or info.global_:
            raise ValueError(f"grad_cam: cannot place layer {layer!r} on the input grid")
        cam = field_aligned_upsample(cam, x.shape[2:], info.start, info.jump)
    else:
        cam = resize_bilinear(cam, x.shape[2:])
    return normalize_maps(cam)


def saliency_map(model, x, target=None) -> np.ndarray:
    """Gradient saliency ``max_c |d score_target / d x_c|`` as ``(N, H, W)`` in ``[0, 1]``."""
    x = as_input(x)
    if x.ndim == 3:
        x = Tensor._make(x._data[None])
    x = x.detach()
    x.requires_grad = True
    old = [(p, p.grad) for p in model.parameters()]
    try:
        _scores_backward(model, x, target)
    finally:
        for p, g in old:
            p.grad = g
    return normalize_maps(np.abs(x.grad._data).max(axis=1))
