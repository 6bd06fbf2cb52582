"""Weight initialisation, in place, with PyTorch's formulas and defaults.

All functions draw from the global generator (``convnet.manual_seed``; a
``numpy.random.Generator`` may be passed as ``generator=``) and keep the tensor's dtype.
As torch's, they write the tensor without recording autograd history, so they work on
Parameters outside ``no_grad``; like any in-place change they bump its version counter. ``fan_in = size(1) * receptive_field``, ``fan_out = size(0) *
receptive_field`` for a weight of shape ``(out, in, *kernel)``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..random import generator as _global_generator
from ..tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "eye_",
    "dirac_", "orthogonal_", "sparse_",
    # torch's deprecated names without the underscore (old tutorials use them)
    "uniform", "normal", "constant", "xavier_uniform", "xavier_normal", "kaiming_uniform",
    "kaiming_normal", "eye", "dirac", "orthogonal", "sparse",
]


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for a nonlinearity (``relu`` → √2, ``tanh`` → 5/3, ...)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, (int, float))):
            raise ValueError(f"calculate_gain: negative_slope {param} not a valid number")
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(need at least 2 dims, got shape {tensor.shape})"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values) -> Tensor:
    # writes the array directly (no autograd record, as torch's no_grad fill) and bumps the
    # version counter, so a graph that saved the old values refuses to backward through them
    tensor._data[...] = np.asarray(values).astype(tensor.dtype, copy=False)
    tensor._bump_version()
    return tensor


def _gen(generator) -> np.random.Generator:
    return generator if generator is not None else _global_generator()


def _draw_dtype(tensor: Tensor):
    # Draw float32 directly for float32 tensors: half the memory and time of float64 draws.
    return np.float32 if tensor.dtype == np.float32 else np.float64


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with samples from U(a, b)."""
    r = _gen(generator).random(tensor.shape, dtype=_draw_dtype(tensor))
    r *= b - a
    r += a
    return _fill(tensor, r)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with samples from N(mean, std^2)."""
    r = _gen(generator).standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    r *= std
    r += mean
    return _fill(tensor, r)


def trunc_normal_(tensor: Tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None) -> Tensor:
    """N(mean, std^2) conditioned on ``[a, b]`` (samples redrawn until they fall inside;
    ``a``/``b`` are absolute bounds, as torch's)."""
    g = _gen(generator)
    vals = g.normal(mean, std, tensor.shape)
    bad = (vals < a) | (vals > b)
    while bad.any():
        vals[bad] = g.normal(mean, std, int(bad.sum()))
        bad = (vals < a) | (vals > b)
    return _fill(tensor, vals)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """The identity matrix (ones on the diagonal of a 2-D tensor, zeros elsewhere)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    """N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """U(-b, b) with ``b = gain * sqrt(3 / fan)`` (He et al. 2015)."""
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """N(0, std^2) with ``std = gain / sqrt(fan)`` (He et al. 2015)."""
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Identity kernel for a 3/4/5-D conv weight ``(out, in, *k)``: in each of ``groups``
    groups, output channel ``d`` copies input channel ``d`` through the kernel's centre."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, "
                         f"got shape {tensor.shape}")
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) must be divisible by groups ({groups})")
    per = tensor.shape[0] // groups
    vals = np.zeros(tensor.shape)
    centre = tuple(n // 2 for n in tensor.shape[2:])
    d = np.arange(min(per, tensor.shape[1]))
    for g in range(groups):
        vals[(g * per + d, d) + centre] = 1
    return _fill(tensor, vals)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix (Saxe et al. 2013), scaled by ``gain``.

    The tensor is viewed as ``(rows, cols) = (size(0), numel / size(0))``; ``Q`` of the QR
    factorisation of a Gaussian matrix (of the transpose when ``rows < cols``), with columns
    multiplied by ``sign(diag(R))`` so that it is uniformly (Haar) distributed. Rows are
    orthonormal when ``rows <= cols``, columns otherwise.
    """
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _gen(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # Haar measure: fix the sign ambiguity of the factorisation
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """N(0, std^2) with ``ceil(sparsity * rows)`` zeros in each column (Martens 2010)."""
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only tensors with 2 dimensions are supported, "
                         f"got shape {tensor.shape}")
    g = _gen(generator)
    rows, cols = tensor.shape
    vals = g.normal(0.0, std, (rows, cols))
    n_zero = math.ceil(sparsity * rows)
    # one random permutation per column: the first n_zero rows of each are zeroed
    zero_rows = np.argsort(g.random((rows, cols)), axis=0)[:n_zero]
    vals[zero_rows, np.arange(cols)] = 0
    return _fill(tensor, vals)


def _deprecated(fn):
    def old(*args, **kwargs):
        warnings.warn(f"nn.init.{fn.__name__[:-1]} is now deprecated in favor of "
                      f"nn.init.{fn.__name__}.", FutureWarning, stacklevel=2)
        return fn(*args, **kwargs)

    old.__name__ = old.__qualname__ = fn.__name__[:-1]
    old.__doc__ = f"Deprecated alias of :func:`{fn.__name__}` (as in torch)."
    return old


uniform, normal, constant = _deprecated(uniform_), _deprecated(normal_), _deprecated(constant_)
xavier_uniform, xavier_normal = _deprecated(xavier_uniform_), _deprecated(xavier_normal_)
kaiming_uniform, kaiming_normal = _deprecated(kaiming_uniform_), _deprecated(kaiming_normal_)
eye, dirac = _deprecated(eye_), _deprecated(dirac_)
orthogonal, sparse = _deprecated(orthogonal_), _deprecated(sparse_)
