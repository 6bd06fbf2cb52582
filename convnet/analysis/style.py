"""Neural style transfer with Gram matrices (Gatys et al., 2016).

The style of a layer's feature maps ``F`` (``C x HW``) is their Gram matrix
``G = F F^T / (C H W)``: which channels fire together, with the positions summed away. An
image is optimised so that its features match the content image's features at
``content_layers`` and its Gram matrices match the style image's at ``style_layers``::

    loss = content_weight * sum_l mean((F_l(x) - F_l(content))^2)
         + style_weight   * sum_l mean((G_l(x) - G_l(style))^2)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor
from .feature_maps import as_input, resolve_layer

__all__ = ["gram_matrix", "style_transfer"]


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix ``(N, C, *spatial) -> (N, C, C)``: ``G[n] = F F^T / (C * prod(spatial))``
    with ``F = features[n]`` reshaped to ``(C, prod(spatial))``. Differentiable."""
    if not isinstance(features, Tensor):
        features = as_input(features)
    if features.ndim < 3:
        raise ValueError(f"gram_matrix: features must be (N, C, *spatial), got {tuple(features.shape)}")
    n, c = features.shape[:2]
    m = int(np.prod(features.shape[2:]))
    f = features.reshape(n, c, m)
    return (f @ f.transpose(1, 2)) / float(c * m)


def _capture(model, names):
    mods = [(n, resolve_layer(model, n)) for n in names]
    store: dict[str, Tensor] = {}
    handles = []
    for n, m in mods:
        def hook(module, inputs, output, n=n):
            store[n] = output[0] if isinstance(output, (tuple, list)) else output
        handles.append(m.register_forward_hook(hook))
    return store, handles


def style_transfer(
    content,
    style,
    features,
    content_layers: Sequence[str] = (),
    style_layers: Sequence[str] = (),
    steps: int = 200,
    lr: float = 0.05,
    content_weight: float = 1.0,
    style_weight: float = 1e4,
    init: str = "content",
    clamp: tuple[float, float] | None = (0.0, 1.0),
    callback=None,
) -> np.ndarray:
    """Optimise an image whose features match ``content`` and whose Gram matrices match
    ``style``; returns it as an array shaped like ``content`` ``(N, C, H, W)``.

    Args:
        content, style: images ``(N, C, H, W)`` (or ``(C, H, W)``); sizes may differ.
        features: any convnet module; its layers named in ``content_layers`` and
            ``style_layers`` (``named_modules`` names) give the features. It is used in eval
            mode and its parameters are not changed.
        steps, lr: Adam steps on the image pixels and their learning rate.
        content_weight, style_weight: the loss weights.
        init: start from ``'content'`` (default) or ``'noise'``.
        clamp: pixel range enforced after each step (None to skip).
        callback: ``callback(step, loss)`` called every step.

    Results are best with a well-trained feature extractor (the original work used VGG
    trained on ImageNet); with a small network trained on digits the "style" is mostly
    stroke texture.
    """
    from ..nn.parameter import Parameter
    from ..optim import Adam

    if not content_layers and not style_layers:
        raise ValueError("style_transfer: give at least one of content_layers / style_layers")
    c_img, s_img = as_input(content), as_input(style)
    c_arr = c_img._data if c_img.ndim == 4 else c_img._data[None]
    s_arr = s_img._data if s_img.ndim == 4 else s_img._data[None]
    if c_arr.shape[1] != s_arr.shape[1]:
        raise ValueError(
            f"style_transfer: content has {c_arr.shape[1]} channels but style has {s_arr.shape[1]}"
        )
    names = list(dict.fromkeys([*content_layers, *style_layers]))
    store, handles = _capture(features, names)
    flags = [(m, m.training) for m in features.modules()]
    frozen = [(p, p.requires_grad) for p in features.parameters()]
    features.eval()
    for p, _ in frozen:
        p.requires_grad = False
    try:
        with no_grad():
            features(Tensor._make(c_arr))
            c_targets = {n: store[n]._data.copy() for n in content_layers}
            features(Tensor._make(s_arr))
            s_targets = {n: gram_matrix(store[n])._data.mean(axis=0) for n in style_layers}
        if init == "content":
            start = c_arr.copy()
        elif init == "noise":
            from ..random import generator

            start = generator().uniform(0, 1, c_arr.shape).astype(c_arr.dtype)
        else:
            raise ValueError(f"style_transfer: init must be 'content' or 'noise', got {init!r}")
        img = Parameter(start)
        opt = Adam([img], lr=lr)
        for step in range(steps):
            opt.zero_grad()
            with enable_grad():
                features(img)
                loss = None
                for n in content_layers:
                    d = store[n] - Tensor._make(c_targets[n])
                    term = (d * d).mean() * content_weight
                    loss = term if loss is None else loss + term
                for n in style_layers:
                    d = gram_matrix(store[n]) - Tensor._make(s_targets[n])
                    term = (d * d).mean() * style_weight
                    loss = term if loss is None else loss + term
            loss.backward()
            opt.step()
            if clamp is not None:
                np.clip(img._data, clamp[0], clamp[1], out=img._data)
            if callback is not None:
                callback(step, float(loss.item()))
        return img._data.copy()
    finally:
        for h in handles:
            h.remove()
        for m, t in flags:
            m.training = t
        for p, r in frozen:
            p.requires_grad = r
