"""Check convnet against PyTorch (the test-only oracle).

``check(cn_fn, torch_fn, arrays)`` feeds the same float64 arrays to both
functions, compares every output, then back-propagates the same *random*
cotangent through both and compares the gradient of every float input.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

import convnet as cn


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def tie_free(shape, rng: np.random.Generator, spacing: float = 0.01) -> np.ndarray:
    """Distinct, well-spaced float64 values (so max/min/argmax never tie, even under
    finite-difference perturbations)."""
    n = int(np.prod(shape))
    vals = (rng.permutation(n) - n / 2) * spacing
    return vals.reshape(shape).astype(np.float64)


def check(
    cn_fn: Callable,
    torch_fn: Callable,
    arrays: Sequence[np.ndarray],
    *,
    grad: bool | Sequence[bool] = True,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    seed: int = 0,
):
    """Compare forward outputs and input gradients of ``cn_fn`` and ``torch_fn``.

    ``arrays`` are NumPy arrays; float arrays become leaf tensors that require grad
    when ``grad`` says so (a bool for all, or one per array). Returns the convnet
    outputs for further checks.
    """
    rng = np.random.default_rng(seed)
    if isinstance(grad, bool):
        grad = [grad] * len(arrays)
    wants = [g and np.issubdtype(np.asarray(a).dtype, np.floating) for a, g in zip(arrays, grad)]
    cn_in = [cn.tensor(np.array(a), requires_grad=w) for a, w in zip(arrays, wants)]
    th_in = [torch.tensor(np.array(a), requires_grad=w) for a, w in zip(arrays, wants)]
    cn_out = _as_tuple(cn_fn(*cn_in))
    th_out = _as_tuple(torch_fn(*th_in))
    assert len(cn_out) == len(th_out), f"{len(cn_out)} outputs vs torch's {len(th_out)}"
    for i, (c, t) in enumerate(zip(cn_out, th_out)):
        t_np = t.detach().numpy()
        c_np = np.asarray(c.numpy() if hasattr(c, "numpy") else c)
        assert c_np.shape == t_np.shape, f"output {i}: shape {c_np.shape} vs torch {t_np.shape}"
        np.testing.assert_allclose(c_np, t_np, atol=atol, rtol=rtol, err_msg=f"output {i}")
    if not any(wants):
        return cn_out
    cn_loss, th_loss = None, None
    for c, t in zip(cn_out, th_out):
        if not (getattr(t, "requires_grad", False) and t.dtype.is_floating_point):
            continue
        w = rng.standard_normal(tuple(t.shape))
        cterm = (c * cn.tensor(w)).sum()
        tterm = (t * torch.tensor(w)).sum()
        cn_loss = cterm if cn_loss is None else cn_loss + cterm
        th_loss = tterm if th_loss is None else th_loss + tterm
    if th_loss is None:
        return cn_out
    th_loss.backward()
    cn_loss.backward()
    for i, (c, t, w) in enumerate(zip(cn_in, th_in, wants)):
        if not w:
            continue
        tg = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        cg = np.zeros(c.shape) if c.grad is None else c.grad.numpy()
        assert cg.shape == tg.shape, f"grad {i}: shape {cg.shape} vs torch {tg.shape}"
        np.testing.assert_allclose(cg, tg, atol=atol, rtol=rtol, err_msg=f"grad of input {i}")
    return cn_out
