"""Kernels of synchronized batch norm (pure NumPy: arrays in, arrays out, no communication).

Rank ``r`` holds ``x_r`` viewed as ``(N_r, C, S)``; statistics are per channel over all ranks'
``(N_r, S)`` axes, ``M = sum_r m_r`` values with ``m_r = N_r S``.

Forward. Each rank computes its count, mean and centred sum of squares
``(m_r, mu_r, M2_r = sum (x_r - mu_r)^2)`` (:func:`local_moments`); the ranks exchange these
``1 + 2C`` numbers and combine them (Chan et al.'s parallel variance, :func:`combine_moments`):

    mu = sum_r m_r mu_r / M,    var = sum_r (M2_r + m_r (mu_r - mu)^2) / M,

which is the mean and biased variance of the concatenated batch, without the cancellation
of ``E[x^2] - E[x]^2``. Then ``y = (x - mu) invstd w + b`` with ``invstd = 1/sqrt(var + eps)``.

Backward. With ``xc = x - mu``, the input gradient of batch norm over the whole batch is

    dx = w invstd (dy - sum(dy) / M - xc invstd^2 sum(dy xc) / M),

whose two sums run over every rank's elements: each rank computes its local sums
(:func:`grad_sums`), the ranks add them up, and :func:`input_grad` applies the formula. The
weight and bias gradients ``invstd sum(dy xc)`` and ``sum(dy)`` stay local: they are
averaged with the other gradients after backward, like any parameter's.
"""
from __future__ import annotations

import numpy as np

from ..kernels.channelwise import dot02, per_channel, sum02

__all__ = ["local_moments", "combine_moments", "recentre", "affine", "grad_sums",
           "input_grad"]


def local_moments(x3: np.ndarray):
    """``(m, mu, M2, xc)`` of one rank's ``(N, C, S)`` block: the count ``N S``, the
    per-channel mean ``(C,)`` and centred sum of squares ``(C,)``, and ``xc = x - mu``
    (a new array, reused by :func:`recentre`)."""
    m = x3.shape[0] * x3.shape[2]
    mean = sum02(x3) / x3.dtype.type(max(m, 1))
    xc = x3 - per_channel(mean, x3)
    return m, mean, dot02(xc, xc), xc


def combine_moments(counts: np.ndarray, means: np.ndarray, m2s: np.ndarray):
    """Combine per-rank ``counts (K,)``, ``means (K, C)`` and ``m2s (K, C)`` into the
    ``(M, mean (C,), biased var (C,))`` of all ranks together, in float64."""
    counts = counts.astype(np.float64)
    total = counts.sum()
    w = counts[:, None]
    mean = (w * means).sum(axis=0) / total
    m2 = (m2s + w * (means - mean) ** 2).sum(axis=0)
    return int(round(total)), mean, m2 / total


def recentre(xc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``xc += shift`` per channel, in place: ``x - mu_r`` becomes ``x - mu`` with
    ``shift = mu_r - mu``."""
    np.add(xc, per_channel(shift.astype(xc.dtype), xc), out=xc)
    return xc


def affine(xc: np.ndarray, invstd: np.ndarray, w: np.ndarray | None,
           b: np.ndarray | None) -> np.ndarray:
    """``y = xc (invstd w) + b`` per channel of ``(N, C, S)`` (``w``, ``b`` optional)."""
    y = xc * per_channel(invstd if w is None else invstd * w, xc)
    if b is not None:
        np.add(y, per_channel(b, y), out=y)
    return y


def grad_sums(g3: np.ndarray, xc: np.ndarray):
    """This rank's per-channel ``(sum(dy), sum(dy xc))`` of ``(N, C, S)`` arrays."""
    return sum02(g3), dot02(g3, xc)


def input_grad(g3: np.ndarray, xc: np.ndarray, invstd: np.ndarray, w: np.ndarray | None,
               sum_g: np.ndarray, sum_gxc: np.ndarray, total: int) -> np.ndarray:
    """``dx = w invstd (dy - sum_g / M - xc invstd^2 sum_gxc / M)`` with the sums over all
    ranks and ``M = total``."""
    m = g3.dtype.type(total)
    gx = xc * per_channel(invstd * invstd * sum_gxc / m, xc)
    np.add(gx, per_channel(sum_g / m, xc), out=gx)
    np.subtract(g3, gx, out=gx)
    np.multiply(gx, per_channel(invstd if w is None else w * invstd, gx), out=gx)
    return gx
