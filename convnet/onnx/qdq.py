"""QDQ export of quantized models (``convnet.quantization.convert``'s modules).

A quantized tensor becomes its dequantized float value in the graph; every quantized
module is emitted as float ops between ``DequantizeLinear`` inputs and a
``QuantizeLinear -> DequantizeLinear`` pair at its output quantization (the QDQ format that
onnxruntime fuses into integer kernels such as ``QLinearConv``)::

    weight   int8 initializer -> DequantizeLinear(scale per output channel, zero 0, axis=0)
    bias     int32 round(bias / (s_x s_w)) -> DequantizeLinear(scale s_x s_w, zero 0, axis=0)
    output   Conv/Gemm (+ Relu) -> QuantizeLinear(s_y, z_y) -> DequantizeLinear(s_y, z_y)

Modules that keep their input's quantization (ReLU, pooling) re-quantize with the input's
``scale``/``zero_point``. ``QFunctional.add/add_relu/mul/cat`` are traced as method calls.
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import pool as KP
from ..kernels import quantized as KQ
from ..kernels import resample as KR
from ..quantization import quantized as Q
from ..quantization.dtypes import qint8, quint8
from ._trace import QTensorReshape, is_qtensor
from .symbolic import register, register_module

# methods of quantized modules that models call directly instead of the module
METHODS = {Q.QFunctional: ("add", "add_relu", "mul", "cat")}


def method_lookup(module):
    return METHODS.get(type(module), ())


def _two(v) -> list[int]:
    """A pooling argument as given (an int or a pair) as a list of 2 ints."""
    return [int(v), int(v)] if isinstance(v, (int, np.integer)) else [int(a) for a in v]


def _qparams(g, q):
    """``(scale, zero point)`` initializers of a per-tensor QTensor ``q``."""
    if q.dtype not in (quint8, qint8):
        raise g.fail(f"a quantized tensor of dtype {q.dtype!r}; QDQ export handles quint8 and "
                     "qint8")
    if q._axis is not None:
        raise g.fail("a per-channel quantized activation")
    return _scale_zp(g, q._scale, q._zero_point, q.dtype.storage)


def _scale_zp(g, scale, zero_point, storage):
    return (g.const(np.asarray(scale, np.float32), hint="scale"),
            g.const(np.asarray(zero_point, storage), hint="zero_point"))


def _requantize(g, y: str, q) -> str:
    """``y`` (float) through QuantizeLinear/DequantizeLinear at the qparams of QTensor ``q``
    (the traced output)."""
    s, z = _qparams(g, q)
    return g.node("DequantizeLinear", [g.node("QuantizeLinear", [y, s, z]), s, z])


def _input(g, name: str = "x") -> str:
    x = g.op.a[name]
    if not is_qtensor(x):
        raise g.fail(f"expected a quantized input, got {type(x).__name__}")
    return g.arg(name)


def _weight(g, m, transpose: bool = False) -> str:
    """The int8 weight of ``m`` as an initializer, dequantized per output channel."""
    w = m.weight()
    wq = np.asarray(w._int)
    axis = 0
    if transpose:
        wq, axis = np.ascontiguousarray(wq.T), 1
    prefix = g.op.path or "module"
    q = g.const(wq.astype(np.int8), hint=f"{prefix}.weight_quantized")
    scale, zp = np.asarray(w._scale), np.asarray(w._zero_point)
    s = g.const(scale.astype(np.float32), hint=f"{prefix}.weight_scale")
    z = g.const(zp.astype(np.int8), hint=f"{prefix}.weight_zero_point")
    if scale.ndim:
        return g.node("DequantizeLinear", [q, s, z], axis=axis)
    return g.node("DequantizeLinear", [q, s, z])


def _bias(g, m, x_scale: float):
    """int32 ``round(bias / (s_x s_w))`` dequantized with scale ``s_x s_w``, or None."""
    bq = m.bias_int32(x_scale)
    if bq is None:
        return None
    w_scale = np.asarray(m.weight()._scale, np.float64)
    scale = np.float32(x_scale) * w_scale.astype(np.float32)
    prefix = g.op.path or "module"
    q = g.const(np.asarray(bq, np.int32), hint=f"{prefix}.bias_quantized")
    s = g.const(np.asarray(scale, np.float32), hint=f"{prefix}.bias_scale")
    z = g.const(np.zeros(np.shape(scale), np.int32), hint="zero_point")
    return g.node("DequantizeLinear", [q, s, z], axis=0) if np.ndim(scale) else \
        g.node("DequantizeLinear", [q, s, z])


# ------------------------------------------------------------------ stubs
@register_module(Q.Quantize)
def _quantize(g, op):
    return [_requantize(g, g.arg("x"), op.outputs[0])]


@register_module(Q.DeQuantize)
def _dequantize(g, op):
    x = op.a["x"]
    return [g.arg("x") if is_qtensor(x) else g.arg("x")]


# ------------------------------------------------------------------ weighted layers
@register_module(Q.Conv2d)
def _conv(g, op):
    m = op.obj
    x = _input(g)
    ins = [x, _weight(g, m)]
    b = _bias(g, m, op.a["x"]._scale)
    if b is not None:
        ins.append(b)
    y = g.node("Conv", ins, kernel_shape=_two(m.kernel_size), strides=_two(m.stride),
               pads=_two(m.padding) * 2, dilations=_two(m.dilation), group=int(m.groups))
    if m._RELU:
        y = g.node("Relu", [y])
    return [_requantize(g, y, op.outputs[0])]


@register_module(Q.Linear)
def _linear(g, op):
    m, xq = op.obj, op.a["x"]
    x = _input(g)
    b = _bias(g, m, xq._scale)
    if len(xq.shape) == 2:
        y = g.node("Gemm", [x, _weight(g, m)] + ([b] if b is not None else []), transB=1)
    else:
        y = g.node("MatMul", [x, _weight(g, m, transpose=True)])
        if b is not None:
            y = g.node("Add", [y, b])
    if m._RELU:
        y = g.node("Relu", [y])
    return [_requantize(g, y, op.outputs[0])]


# ------------------------------------------------------------------ the input's qparams
@register_module(Q.ReLU, Q.ReLU6)
def _relu(g, op):
    x = _input(g)
    if isinstance(op.obj, Q.ReLU6):  # clamp at the quantized 6.0, as convnet does
        q = op.a["x"]
        q6 = KQ.quantize_per_tensor(np.float32(6.0), q._scale, q._zero_point, q.dtype.qmin,
                                    q.dtype.qmax, q.dtype.storage)
        six = np.float32(q._scale) * np.float32(int(q6) - q._zero_point)
        y = g.node("Clip", [x, g.scalar(0, np.float32), g.scalar(six, np.float32)])
    else:
        y = g.node("Relu", [x])
    return [_requantize(g, y, op.outputs[0])]


@register_module(Q.MaxPool2d)
def _max_pool(g, op):
    m, xq = op.obj, op.a["x"]
    ks, ss, ps, ds = (_two(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding,
                                        m.dilation))
    floor = KP.pool_output_shape(xq.shape[2:], ks, ss, ps, ds, False)
    ceil = bool(m.ceil_mode) and tuple(floor) != tuple(op.outputs[0].shape[2:])
    y = g.node("MaxPool", [_input(g)], kernel_shape=ks, strides=ss, pads=ps + ps,
               dilations=ds, ceil_mode=int(ceil))
    return [_requantize(g, y, op.outputs[0])]


# Quantized averages round ``sum (q - z) / divisor + z`` half to even (convnet and torch add
# the zero point before rounding). Averaging the dequantized floats would round ties either
# way, so these are emitted on the integers: the sums are exact in float32, the division is
# correctly rounded (a tie k + 1/2 stays exactly one), and QuantizeLinear with scale 1 rounds
# half to even and saturates.
def _centered(g, q) -> str:
    """``q - z`` as exact float32 integers, from the dequantized input."""
    s, z = _qparams(g, q)
    ints = g.node("Cast", [g.node("QuantizeLinear", [_input(g), s, z])], to=1)
    return g.node("Sub", [ints, g.scalar(q._zero_point, np.float32)])


def _mean_to(g, total: str, divisor, q) -> str:
    """``round(total / divisor + z)`` saturated, dequantized with ``q``'s qparams."""
    mean = g.node("Div", [total, g.const(np.asarray(divisor, np.float32), hint="divisor")])
    shifted = g.node("Add", [mean, g.scalar(q._zero_point, np.float32)])
    one, zero = g.scalar(1.0, np.float32), g.const(np.asarray(0, q.dtype.storage))
    ints = g.node("QuantizeLinear", [shifted, one, zero])
    s, z = _qparams(g, q)
    return g.node("DequantizeLinear", [ints, s, z])


@register_module(Q.AvgPool2d)
def _avg_pool(g, op):
    m, xq = op.obj, op.a["x"]
    ks, ss, ps = (_two(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
    c, spatial = int(xq.shape[1]), tuple(xq.shape[2:])
    out_sp = tuple(op.outputs[0].shape[2:])
    extra = [max((o - 1) * s + k - (n + 2 * p), 0)
             for n, k, s, p, o in zip(spatial, ks, ss, ps, out_sp)]
    x = _centered(g, xq)
    if any(ps) or any(extra):  # padding is the quantized zero: 0 once centered
        x = g.node("Pad", [x, g.i64([0, 0] + ps + [0, 0] + [p + e for p, e in
                                                            zip(ps, extra)])])
    total = g.node("Conv", [x, g.const(np.ones((c, 1) + tuple(ks), np.float32), hint="ones")],
                   kernel_shape=ks, strides=ss, group=c)
    div = KP.avg_divisor(spatial, out_sp, tuple(ks), tuple(ss), tuple(ps),
                         m.count_include_pad, m.divisor_override, np.float64)
    div = np.asarray(div).reshape(out_sp) if np.ndim(div) else div
    return [_mean_to(g, total, div, op.outputs[0])]


@register_module(Q.AdaptiveAvgPool2d)
def _adaptive_avg_pool(g, op):
    xq = op.a["x"]
    spatial, outs = tuple(xq.shape[2:]), tuple(op.outputs[0].shape[2:])
    x = _centered(g, xq)
    if all(o == 1 for o in outs):
        total = g.reduce("ReduceSum", x, [2, 3], True)
        return [_mean_to(g, total, math.prod(spatial), op.outputs[0])]
    # window sums as products with 0/1 window matrices (exact), then the window sizes
    (r0, r1), (c0, c1) = (KR.adaptive_ranges(n, o) for n, o in zip(spatial, outs))
    rows = np.zeros((outs[0], spatial[0]), np.float32)
    cols = np.zeros((spatial[1], outs[1]), np.float32)
    for i, (a, b) in enumerate(zip(r0, r1)):
        rows[i, a:b] = 1
    for j, (a, b) in enumerate(zip(c0, c1)):
        cols[a:b, j] = 1
    total = g.node("MatMul", [g.node("MatMul", [g.const(rows, hint="windows"), x]),
                              g.const(cols, hint="windows")])
    counts = np.outer(r1 - r0, c1 - c0).astype(np.float64)
    return [_mean_to(g, total, counts, op.outputs[0])]


@register_module(Q.Flatten)
def _flatten(g, op):
    s1 = tuple(op.outputs[0].shape)
    s2 = tuple(g.alt.outputs[0].shape) if g.alt is not None else None
    return [g.reshape(_input(g), s1, s2)]


@register_module(Q.Identity)
def _identity(g, op):
    return [g.arg(next(iter(op.a)))]


@register(QTensorReshape)
def _qtensor_reshape(g, op):
    s1 = tuple(op.outputs[0].shape)
    s2 = tuple(g.alt.outputs[0].shape) if g.alt is not None else None
    return [g.reshape(g.arg("x"), s1, s2)]


# ------------------------------------------------------------------ QFunctional methods
@register_module(Q.QFunctional)
def _qfunctional(g, op):
    method = op.method
    if method in ("add", "add_relu", "mul"):
        a, b = (_input(g, n) for n in ("x", "y"))
        y = g.node("Mul" if method == "mul" else "Add", [a, b])
        if method == "add_relu":
            y = g.node("Relu", [y])
    elif method == "cat":
        parts = op.a["x"]
        alts = g.alt.a["x"] if g.alt is not None else [None] * len(parts)
        y = g.node("Concat", [g.v(p, p2) for p, p2 in zip(parts, alts)],
                   axis=int(op.a["dim"]))
    else:
        raise g.fail("QFunctional is used through its methods add, add_relu, mul and cat")
    return [_requantize(g, y, op.outputs[0])]
