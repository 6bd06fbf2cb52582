"""Integer kernels of the quantized modules (pure NumPy, no Tensor): the readable reference.

A quantized array holds integers ``q`` and means ``x = (q - z) * s`` (scale ``s``, zero point
``z``). The kernels below compute on the integers and the scales only::

    quantize       q = clamp(round(x / s) + z, qmin, qmax)           round half to even
    dequantize     x = (q - z) * s
    conv / linear  acc[n, o, p] = sum_{c, k} (xq - z_x)[n, c, p*S + k*D] * (wq - z_w)[o, c, k]
                                  + bias_q[o]                        int32 accumulator
                   bias_q[o]    = round(bias[o] / (s_x * s_w[o]))    int32, scale s_x s_w[o]
                   yq = clamp(round(acc * M[o]) + z_y, qmin, qmax)   M[o] = s_x s_w[o] / s_y

so ``(yq - z_y) s_y ~= sum (x w) + bias``. The products of an 8-bit activation and an 8-bit
weight are accumulated exactly: the GEMM runs on floats holding small integers, which every
summation order adds without rounding as long as each partial sum stays below the format's
exact-integer limit (2**24 in float32, 2**53 in float64); :func:`gemm_dtype` picks float32 when
a bound on ``sum |x| |w|`` proves it safe, else float64. The requantization multiplies in
float32 and rounds half to even, as onnxruntime's ``QLinearConv`` / ``MlasRequantizeOutput``
and torch's fbgemm kernels do.

Rounding conventions measured against torch 2.13 (``tests/quantization/test_qtensor.py`` checks
them bit for bit): torch multiplies by ``inv = 1 / s`` in float32 rather than dividing, and
adds the zero point before rounding to an integer: per tensor with 8-bit types in one fused
multiply-add, ``rint(fma(x, inv, z))``; per channel and for qint32 with two float32
roundings, ``rint(x * inv + z)``. The two differ only near exact ties, and both differ from
``rint(x / s) + z`` there.

Bias: torch's fbgemm adds the float bias as ``bias / (s_x s_w)`` before the multiply;
onnxruntime's ``QLinearConv`` (and a QDQ graph) adds the int32 ``bias_q``. This file uses the
int32 bias (onnxruntime bit for bit); torch's results then differ by at most one step, on the
few elements whose ``acc * M`` lies within ``M / 2`` of a rounding boundary.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .conv_reference import im2col
from .pool import pool_output_shape, window_views
from .shapes import conv_output_size

__all__ = [
    "quantize_per_tensor", "quantize_per_channel", "dequantize", "requantize",
    "output_multiplier", "quantize_bias", "gemm_dtype", "conv2d_accumulate", "linear_accumulate",
    "quantized_conv2d", "quantized_linear", "relu", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "add", "mul", "cat",
]

_F32_EXACT = 2 ** 24  # every integer of magnitude <= 2**24 is a float32
_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}  # np.iinfo is slow
# Below this many GEMM columns (images x output pixels) the reference im2col beats the fast
# conv's planning (measured: LeNet-5's layers at batch 1-16, 0.18 against 0.25 ms)
FAST_MIN_COLUMNS = 2048


def _channel_shape(ndim: int, axis: int) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = -1
    return tuple(shape)


def _store(q: np.ndarray, qmin: int, qmax: int, storage: np.dtype) -> np.ndarray:
    """Clamp integer-valued floats to ``[qmin, qmax]`` and store them as ``storage``."""
    return np.clip(q, qmin, qmax).astype(storage)


def quantize_per_tensor(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int,
                        storage: np.dtype) -> np.ndarray:
    """``q = clamp(round_half_even(x / s) + z, qmin, qmax)`` with torch's float32 arithmetic.

    ``x`` is read as float32. For 8-bit types ``x * (1/s) + z`` is one fused multiply-add
    (rounded once to float32: computed exactly in float64, then rounded) and the sum is
    rounded to an integer; for 32-bit types the product and the sum round separately.
    """
    x = np.asarray(x, dtype=np.float32)
    inv = np.float32(1.0) / np.float32(scale)
    if np.dtype(storage).itemsize == 1:
        # x * inv is exact in float64 (24 + 24 bits), so one rounding to float32 remains
        t = (x.astype(np.float64) * np.float64(inv) + zero_point).astype(np.float32)
    else:
        t = x * inv + np.float32(zero_point)
    return _store(np.rint(t), qmin, qmax, storage)


def quantize_per_channel(x: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int,
                         qmin: int, qmax: int, storage: np.dtype) -> np.ndarray:
    """``q[..., c, ...] = clamp(round_half_even(x / s[c]) + z[c], qmin, qmax)`` along
    ``axis`` (torch's rounding: ``rint(x * float32(1 / s[c]) + z[c])`` in float32)."""
    x = np.asarray(x, dtype=np.float32)
    shape = _channel_shape(x.ndim, axis)
    inv = (np.float32(1.0) / np.asarray(scales, dtype=np.float32)).reshape(shape)
    zp = np.asarray(zero_points, dtype=np.float32).reshape(shape)
    return _store(np.rint(x * inv + zp), qmin, qmax, storage)


def dequantize(q: np.ndarray, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """``x = (q - z) * s`` as float32; ``scale``/``zero_point`` are vectors along ``axis``
    when it is given (per-channel).

    As torch: per tensor the product is taken in float32 with ``float32(s)``; per channel
    in float64 with the float64 scales, rounded once to float32 (the two differ in the last
    bit when ``s`` is not a float32)."""
    if axis is None:
        return (np.asarray(q, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)
    shape = _channel_shape(np.ndim(q), axis)
    s = np.asarray(scale, dtype=np.float64).reshape(shape)
    z = np.asarray(zero_point, dtype=np.float64).reshape(shape)
    return ((np.asarray(q, dtype=np.float64) - z) * s).astype(np.float32)


def output_multiplier(input_scale: float, weight_scales: np.ndarray,
                      output_scale: float) -> np.ndarray:
    """``M[o] = s_x * s_w[o] / s_y`` in float32, in this order (onnxruntime and fbgemm)."""
    sxw = np.float32(input_scale) * np.asarray(weight_scales, dtype=np.float32)
    return (sxw / np.float32(output_scale)).astype(np.float32).reshape(-1)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """``bias_q[o] = round_half_even(bias[o] / (s_x * s_w[o]))`` as int32 (the bias of
    onnxruntime's ``QLinearConv`` and of a QDQ graph, zero point 0, scale ``s_x s_w[o]``)."""
    sxw = np.float32(input_scale) * np.asarray(weight_scales, dtype=np.float32)
    q = np.rint(np.asarray(bias, dtype=np.float32) / np.broadcast_to(sxw, np.shape(bias)))
    return np.clip(q, *_INT32).astype(np.int32)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: int, qmin: int, qmax: int,
               storage: np.dtype, axis: int = 1, overwrite: bool = False) -> np.ndarray:
    """``yq = clamp(round_half_even(float32(acc) * M[o]) + z, qmin, qmax)``, ``M`` a vector
    along ``axis`` (length 1 or the channels), as onnxruntime's ``MlasRequantizeOutput``.

    ``acc`` holds integers (int32, or exactly-integer float32); with ``overwrite`` a float32
    ``acc`` is used as scratch space."""
    m = np.asarray(multiplier, dtype=np.float32)
    m = m.reshape(_channel_shape(acc.ndim, axis)) if m.size > 1 else m.reshape(())
    if overwrite and acc.dtype == np.float32:
        y = acc
        np.multiply(y, m, out=y)
    else:
        y = np.multiply(acc.astype(np.float32, copy=False), m, dtype=np.float32)
    np.rint(y, out=y)
    y += np.float32(zero_point)
    np.clip(y, qmin, qmax, out=y)
    return y.astype(storage)


def gemm_dtype(x_abs_max: int, w_centered: np.ndarray, bias_abs_max: int = 0) -> np.dtype:
    """float32 when ``max|x| * max_o sum_k |w[o, k]| + max|bias| < 2**24`` (every partial
    sum of every output is then an exactly representable integer), else float64 (exact below
    2**53, far above any 8-bit product sum)."""
    w2 = w_centered.reshape(w_centered.shape[0], -1)
    l1 = np.abs(w2).sum(axis=1, dtype=np.float64 if w2.dtype.kind == "f" else np.int64)
    bound = int(x_abs_max) * int(l1.max(initial=0))
    return np.dtype(np.float32 if bound + int(bias_abs_max) < _F32_EXACT else np.float64)


def _centered(q: np.ndarray, zero_point, axis: int | None = None) -> np.ndarray:
    """``q - z`` as int32 (``z`` a vector along ``axis`` when given)."""
    z = np.asarray(zero_point, dtype=np.int32)
    if axis is not None and z.ndim:
        z = z.reshape(_channel_shape(q.ndim, axis))
    return q.astype(np.int32) - z


def conv2d_accumulate(xq: np.ndarray, x_zero_point: int, wq: np.ndarray, w_zero_points,
                      stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                      groups: int = 1) -> np.ndarray:
    """The int32 accumulator of a quantized convolution (no bias):
    ``(N, C, H, W) x (C_out, C/G, kH, kW) -> (N, C_out, OH, OW)``::

        acc[n, o, p] = sum_{c in group(o), k} (xq - z_x)[n, c, p*S + k*D - P] * (wq - z_w[o])[o, c, k]

    Padding pads ``xq`` with ``z_x`` (the quantized zero), i.e. the centered input with 0.
    Computed as :mod:`convnet.kernels.conv_reference` does (pad, im2col, one GEMM per group),
    on exactly-integer floats (:func:`gemm_dtype`).
    """
    xc = _centered(xq, x_zero_point)
    wc = _centered(wq, w_zero_points, axis=0)
    dt = gemm_dtype(int(np.abs(xc).max(initial=0)), wc)
    n, c_out, kernel = xq.shape[0], wq.shape[0], wq.shape[2:]
    xp = np.pad(xc.astype(dt), [(0, 0), (0, 0)] + [(p, p) for p in padding])
    out_size = tuple(conv_output_size(s, k, st, 0, d)
                     for s, k, st, d in zip(xp.shape[2:], kernel, stride, dilation))
    cols = im2col(xp, kernel, stride, dilation, out_size)           # (C, kH, kW, N, OH, OW)
    cols = cols.reshape(groups, -1, n * math.prod(out_size))        # (G, C/G kH kW, N P)
    wm = wc.astype(dt).reshape(groups, c_out // groups, -1)         # (G, C_out/G, C/G kH kW)
    acc = np.matmul(wm, cols)                                       # exact integers
    acc = acc.reshape(c_out, n, *out_size).swapaxes(0, 1)
    return np.ascontiguousarray(acc).astype(np.int32)


def linear_accumulate(xq: np.ndarray, x_zero_point: int, wq: np.ndarray,
                      w_zero_points) -> np.ndarray:
    """``acc[..., o] = sum_k (xq - z_x)[..., k] * (wq - z_w[o])[o, k]``: ``(*, in) x (out, in)
    -> (*, out)`` int32, one exact-integer GEMM."""
    xc = _centered(xq, x_zero_point)
    wc = _centered(wq, w_zero_points, axis=0)
    dt = gemm_dtype(int(np.abs(xc).max(initial=0)), wc)
    return np.matmul(xc.astype(dt), wc.astype(dt).T).astype(np.int32)


def _bias_q(bias, bias_q, x_scale, w_scales):
    if bias_q is None and bias is not None:
        bias_q = quantize_bias(bias, x_scale, w_scales)
    return None if bias_q is None else np.asarray(bias_q, dtype=np.int32)


def _float32_centered(q: np.ndarray, zero_point, axis: int | None = None) -> np.ndarray:
    """``q - z`` as float32 (exact for 8- and 16-bit integers); ``z`` a vector along
    ``axis`` when given."""
    out = q.astype(np.float32)
    z = np.asarray(zero_point, dtype=np.float32)
    if z.any():
        out -= z.reshape(_channel_shape(q.ndim, axis)) if (axis is not None and z.ndim) else z
    return out


def _exact_in_float32(xq, x_zero_point, wc: np.ndarray, bias_q) -> bool:
    """The accumulator bound of :func:`gemm_dtype` allows float32, with ``max|x - z_x|``
    bounded by the storage range (no pass over the data; 8-bit inputs only)."""
    if xq.dtype not in _RANGES:
        return False
    lo, hi = _RANGES[xq.dtype]
    x_abs = max(int(x_zero_point) - lo, hi - int(x_zero_point))
    b_abs = 0 if bias_q is None else int(np.abs(bias_q.astype(np.int64)).max(initial=0))
    return gemm_dtype(x_abs, wc, b_abs) == np.float32


def quantized_conv2d(xq, x_scale, x_zero_point, wq, w_scales, w_zero_points, bias,
                     out_scale, out_zero_point, qmin, qmax, storage, stride, padding, dilation,
                     groups=1, relu=False, bias_q=None) -> np.ndarray:
    """Quantized convolution (module docstring): accumulate, add the int32 bias, requantize
    to ``(out_scale, out_zero_point)``; ``relu`` clamps below at ``out_zero_point`` (the
    quantized 0). ``bias`` is float (or ``bias_q`` the int32 bias already quantized).

    When the float32 bound holds (:func:`gemm_dtype`; always for 8-bit layers of the zoo's
    sizes) and the GEMM has at least :data:`FAST_MIN_COLUMNS` columns, the accumulator, bias
    included, comes from convnet's fast float convolution
    (:func:`convnet.kernels.conv.conv_forward`, GEMM-based, so every partial sum is an exact
    integer) instead of the reference :func:`conv2d_accumulate`: the same integers
    (``tests/quantization/test_quantized_modules.py`` checks); on simple_cnn's three 3x3
    layers at batch 256, one thread, 2.9x / 1.4x / 1.0x faster (AMD EPYC, shared machine)."""
    from .conv import conv_forward

    bq = _bias_q(bias, bias_q, x_scale, w_scales)
    wc = _float32_centered(wq, w_zero_points, axis=0)
    columns = xq.shape[0] * math.prod(
        conv_output_size(size, k, s, p, d)
        for size, k, s, p, d in zip(xq.shape[2:], wq.shape[2:], stride, padding, dilation))
    if columns >= FAST_MIN_COLUMNS and _exact_in_float32(xq, x_zero_point, wc, bq):
        acc = conv_forward(_float32_centered(xq, x_zero_point), wc,
                           None if bq is None else bq.astype(np.float32), tuple(stride),
                           tuple((p, p) for p in padding), tuple(dilation), groups)
    else:
        acc = conv2d_accumulate(xq, x_zero_point, wq, w_zero_points, stride, padding,
                                dilation, groups)
        if bq is not None:
            acc += bq.reshape(-1, 1, 1)
    return _requantize_output(acc, 1, x_scale, w_scales, out_scale, out_zero_point, qmin,
                              qmax, storage, relu)


def quantized_linear(xq, x_scale, x_zero_point, wq, w_scales, w_zero_points, bias,
                     out_scale, out_zero_point, qmin, qmax, storage, relu=False,
                     bias_q=None) -> np.ndarray:
    """Quantized ``y = x W^T + b``: ``(*, in) -> (*, out)``, as :func:`quantized_conv2d`
    (one float32 GEMM when the bound allows, else :func:`linear_accumulate`)."""
    bq = _bias_q(bias, bias_q, x_scale, w_scales)
    wc = _float32_centered(wq, w_zero_points, axis=0)
    if _exact_in_float32(xq, x_zero_point, wc, bq):
        acc = np.matmul(_float32_centered(xq, x_zero_point), wc.T)
        if bq is not None:
            acc += bq.astype(np.float32)
    else:
        acc = linear_accumulate(xq, x_zero_point, wq, w_zero_points)
        if bq is not None:
            acc += bq
    return _requantize_output(acc, acc.ndim - 1, x_scale, w_scales, out_scale,
                              out_zero_point, qmin, qmax, storage, relu)


def _requantize_output(acc, axis, x_scale, w_scales, out_scale, out_zero_point, qmin, qmax,
                       storage, relu):
    m = output_multiplier(x_scale, w_scales, out_scale)
    lo = max(qmin, out_zero_point) if relu else qmin  # ReLU: nothing below the quantized 0
    return requantize(acc, m, out_zero_point, lo, qmax, storage, axis=axis, overwrite=True)


def relu(q: np.ndarray, zero_point: int) -> np.ndarray:
    """``max(q, z)``: the quantized zero is ``z``, so ReLU keeps the scale and zero point."""
    return np.maximum(q, np.asarray(zero_point).astype(q.dtype))


def _pad_constant(q: np.ndarray, pads: Sequence[tuple[int, int]], value) -> np.ndarray:
    if not any(lo or hi for lo, hi in pads):
        return q
    return np.pad(q, [(0, 0)] * (q.ndim - len(pads)) + list(pads), constant_values=value)


def _pool_pads(spatial, ks, ss, ps, ds, outs):
    """Left pad ``p``; right pad what the last window needs (ceil_mode may need more)."""
    return [(p, max((o - 1) * s + d * (k - 1) + 1 - n - p, 0))
            for n, k, s, p, d, o in zip(spatial, ks, ss, ps, ds, outs)]


def max_pool2d(q: np.ndarray, kernel, stride, padding, dilation, ceil_mode=False) -> np.ndarray:
    """Max pooling of the integers: dequantization is increasing, so the window's largest
    ``q`` is its largest value; scale and zero point carry over. Padding never wins."""
    outs = pool_output_shape(q.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    lowest = np.iinfo(q.dtype).min
    qp = _pad_constant(q, _pool_pads(q.shape[2:], kernel, stride, padding, dilation, outs),
                       lowest)
    views = window_views(qp, kernel, stride, dilation, outs)
    out = np.array(next(views), copy=True)
    for v in views:
        np.maximum(out, v, out=out)
    return out


def _rounded_mean(total: np.ndarray, count, zero_point: int, qmin: int, qmax: int,
                  storage) -> np.ndarray:
    """``clamp(round_half_even(total / count + z))`` for ``total`` a sum of centered values.

    The zero point is added *before* rounding (torch's quantized pooling: a tie such as
    ``-10.5 + 213 = 202.5`` rounds to 202, where ``round(-10.5) + 213`` gives 203)."""
    mean = total.astype(np.float64) / np.asarray(count, dtype=np.float64)
    return _store(np.rint(mean + zero_point), qmin, qmax, storage)


def avg_pool2d(q: np.ndarray, zero_point: int, qmin: int, qmax: int, kernel, stride, padding,
               ceil_mode=False, count_include_pad=True, divisor_override=None) -> np.ndarray:
    """Average pooling with the input's scale and zero point::

        yq = clamp(round_half_even(sum_window (q - z) / divisor + z))

    padding counts as the quantized zero (centered 0); ``divisor`` as in float pooling
    (window size, valid taps only without ``count_include_pad``, or ``divisor_override``).
    """
    from .pool import avg_divisor

    ones = (1,) * len(kernel)
    outs = pool_output_shape(q.shape[2:], kernel, stride, padding, ones, ceil_mode)
    qc = _pad_constant(_centered(q, zero_point),
                       _pool_pads(q.shape[2:], kernel, stride, padding, ones, outs), 0)
    views = window_views(qc, kernel, stride, ones, outs)
    total = np.array(next(views), copy=True)
    for v in views:
        total += v
    div = avg_divisor(tuple(q.shape[2:]), outs, kernel, stride, padding, count_include_pad,
                      divisor_override, np.float32)
    return _rounded_mean(total, div, zero_point, qmin, qmax, q.dtype)


def _adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows: ``[floor(i L / O), ceil((i + 1) L / O))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(q: np.ndarray, zero_point: int, qmin: int, qmax: int,
                        output_size: Sequence[int]) -> np.ndarray:
    """Adaptive average pooling ``(N, C, H, W) -> (N, C, OH, OW)`` with the input's qparams:
    ``yq = clamp(round_half_even(mean_window (q - z) + z))`` over torch's adaptive windows.

    When an output side exceeds the input's (windows repeat), torch 2.13 returns values that
    are no window's mean (a 1x1 input pooled to 2x1 gave 176 and 191 for an input of 176);
    this kernel returns the mean."""
    h, w = q.shape[-2:]
    oh, ow = output_size
    qc = _centered(q, zero_point)
    rows = _adaptive_bounds(h, oh)
    cols = _adaptive_bounds(w, ow)
    out = np.empty(q.shape[:-2] + (oh, ow), dtype=q.dtype)
    for i, (r0, r1) in enumerate(rows):  # O(OH OW) slices: heads pool to a few cells
        for j, (c0, c1) in enumerate(cols):
            total = qc[..., r0:r1, c0:c1].sum(axis=(-2, -1), dtype=np.int64)
            out[..., i, j] = _rounded_mean(total, (r1 - r0) * (c1 - c0), zero_point,
                                           qmin, qmax, q.dtype)
    return out


def add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point,
        qmin, qmax, storage, relu=False) -> np.ndarray:
    """``yq = quantize((a - z_a) s_a + (b - z_b) s_b)`` to ``(s_y, z_y)`` in float32 (torch's
    ``quantized::add``); ``relu`` clamps below at ``z_y``."""
    total = dequantize(a, a_scale, a_zero_point) + dequantize(b, b_scale, b_zero_point)
    lo = max(qmin, out_zero_point) if relu else qmin
    return quantize_per_tensor(total, out_scale, out_zero_point, lo, qmax, storage)


def mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point,
        qmin, qmax, storage, relu=False) -> np.ndarray:
    """``yq = clamp(round_half_even((a - z_a)(b - z_b) * s_a s_b / s_y) + z_y)``: an exact
    integer product, requantized once."""
    prod = _centered(a, a_zero_point) * _centered(b, b_zero_point)
    m = np.float32(np.float32(a_scale) * np.float32(b_scale) / np.float32(out_scale))
    lo = max(qmin, out_zero_point) if relu else qmin
    return requantize(prod, np.array([m]), out_zero_point, lo, qmax, storage)


def cat(parts, scales, zero_points, out_scale, out_zero_point, qmin, qmax, storage,
        axis: int = 0) -> np.ndarray:
    """Concatenate quantized arrays along ``axis``, requantizing every part whose qparams
    differ from the output's (dequantize, then quantize)."""
    same = [p if (s == out_scale and z == out_zero_point) else
            quantize_per_tensor(dequantize(p, s, z), out_scale, out_zero_point, qmin, qmax,
                                storage)
            for p, s, z in zip(parts, scales, zero_points)]
    return np.concatenate(same, axis=axis)
