"""Convolutions with PyTorch's signatures: conv1d/2d/3d, transposed convs, true convolution,
conv as a matrix, channel shuffle.

Every framework's "convolution" is a cross-correlation::

    y[n, o, p] = b[o] + sum_{c, k} w[o, c, k] * x_pad[n, g(o) C_in/G + c, p * stride + k * dilation]

The textbook (true) convolution flips the kernel (``K(i - m, j - n)``; docs/convolution.md,
"True convolution vs cross-correlation"); it is offered as ``F.convolve1d/2d/3d`` (or
``flip_kernel=True``). Kernels live in :mod:`convnet.kernels.conv`; this module validates
arguments (errors name the op, the argument and the shapes) and wires the gradients. The input
gradient of a conv is a transposed conv and vice versa.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..kernels.channelwise import add_channel_bias, channel_sum
from .. import backends
from ..kernels.conv import conv_grad_input
from ..kernels.shapes import (
    conv_transpose_output_size, effective_kernel, ntuple, parse_conv_padding,
)
from ..tensor import Tensor

__all__ = [
    "conv1d", "conv2d", "conv3d", "convolve1d", "convolve2d", "convolve3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "conv_matrix", "channel_shuffle",
]


def _flip(w: np.ndarray) -> np.ndarray:
    """Reverse every spatial axis of a ``(C_out, C_in/G, *K)`` kernel."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


class _Conv(Function):
    """N-d cross-correlation (``flip`` makes it a true convolution)."""

    def forward(self, x, w, b, stride, pads, dilation, groups, flip=False):
        wf = _flip(w) if flip else w
        self.x, self.w = x, wf
        self.args = (stride, pads, dilation, groups)
        self.flip, self.has_b = flip, b is not None
        return backends.get().conv_forward(x, wf, b, stride, pads, dilation, groups)

    def backward(self, g):
        nx, nw, nb = self.needs_input_grad[:3]
        stride, pads, dilation, groups = self.args
        g = np.ascontiguousarray(g)
        gx, gw = backends.get().conv_backward(g, self.x, self.w, self.x.shape, stride, pads,
                                              dilation, groups, need_input=nx, need_weight=nw)
        if gw is not None and self.flip:
            gw = np.ascontiguousarray(_flip(gw))
        gb = channel_sum(g) if (nb and self.has_b) else None
        return gx, gw, gb


class _ConvTranspose(Function):
    """N-d transposed convolution: the adjoint (input gradient) of :class:`_Conv`."""

    def forward(self, x, w, b, stride, pads, dilation, groups, out_shape):
        self.x, self.w = x, w
        self.args = (stride, pads, dilation, groups)
        self.has_b = b is not None
        out = conv_grad_input(np.ascontiguousarray(x), w, out_shape, stride, pads, dilation,
                              groups)
        if b is not None:
            add_channel_bias(out, b)
        return out

    def backward(self, g):
        nx, nw, nb = self.needs_input_grad[:3]
        stride, pads, dilation, groups = self.args
        g = np.ascontiguousarray(g)
        gx = gw = gb = None
        if nx:
            gx = backends.get().conv_forward(g, self.w, None, stride, pads, dilation, groups)
            if gx.shape != self.x.shape:  # output_padding >= stride leaves extra windows
                gx = np.ascontiguousarray(gx[tuple(slice(0, s) for s in self.x.shape)])
        if nw:
            # y = sum x * w over windows, so dL/dw correlates the input x with the windows of g.
            gw = backends.get().conv_backward(self.x, g, self.w, g.shape, stride, pads, dilation,
                                              groups, need_input=False, need_weight=True)[1]
        if nb and self.has_b:
            gb = channel_sum(g)
        return gx, gw, gb


# ---------------------------------------------------------------------------------- validation
def _check_tensor(op: str, name: str, t) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")


def _common_checks(op, nd, input, weight, bias, groups):
    _check_tensor(op, "input", input)
    _check_tensor(op, "weight", weight)
    if weight.ndim != nd + 2:
        raise ValueError(
            f"{op}: weight must be {nd + 2}-D (out, in/groups, *kernel), got shape {weight.shape}"
        )
    if input.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, "
            f"got shape {input.shape}"
        )
    if input.dtype != weight.dtype:
        raise TypeError(f"{op}: input dtype {input.dtype} differs from weight dtype {weight.dtype}")
    if bias is not None:
        _check_tensor(op, "bias", bias)
        if bias.dtype != weight.dtype:
            raise TypeError(
                f"{op}: bias dtype {bias.dtype} differs from weight dtype {weight.dtype}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")


def _positive(op, name, values):
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: {name} must be positive, got {values}")


def _conv_nd(op, nd, input, weight, bias, stride, padding, dilation, groups, flip):
    _common_checks(op, nd, input, weight, bias, groups)
    stride = ntuple(stride, nd, "stride", op)
    dilation = ntuple(dilation, nd, "dilation", op)
    _positive(op, "stride", stride)
    _positive(op, "dilation", dilation)
    c_out, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    if c_out % groups:
        raise ValueError(
            f"{op}: out_channels {c_out} (weight {weight.shape}) is not divisible by "
            f"groups={groups}"
        )
    unbatched = input.ndim == nd + 1
    c_in = input.shape[0] if unbatched else input.shape[1]
    if c_in != cg * groups:
        raise ValueError(
            f"{op}: input {input.shape} has {c_in} channels but weight {weight.shape} with "
            f"groups={groups} expects {cg * groups} (in_channels/groups = {cg})"
        )
    if any(k < 1 for k in kernel):
        raise ValueError(f"{op}: weight {weight.shape} has an empty kernel")
    pads = parse_conv_padding(padding, nd, kernel, dilation, stride, op)
    spatial = input.shape[-nd:]
    for i, (s, k, (lo, hi), d) in enumerate(zip(spatial, kernel, pads, dilation)):
        if s + lo + hi < effective_kernel(k, d):
            raise ValueError(
                f"{op}: kernel size {k} (dilation {d}, span {effective_kernel(k, d)}) is larger "
                f"than the padded input size {s + lo + hi} along spatial dim {i} "
                f"(input {input.shape}, weight {weight.shape})"
            )
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias shape {bias.shape} does not match out_channels {c_out}")
    x = input.unsqueeze(0) if unbatched else input
    out = _Conv.apply(x, weight, bias, stride=stride, pads=pads, dilation=dilation,
                      groups=groups, flip=flip)
    return out.squeeze(0) if unbatched else out


def _conv_transpose_nd(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                       dilation, output_size=None):
    _common_checks(op, nd, input, weight, bias, groups)
    stride = ntuple(stride, nd, "stride", op)
    dilation = ntuple(dilation, nd, "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
    padding = ntuple(padding, nd, "padding", op)
    output_padding = ntuple(output_padding, nd, "output_padding", op)
    _positive(op, "stride", stride)
    _positive(op, "dilation", dilation)
    if any(p < 0 for p in padding):
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ < 0 or (op_ >= s and op_ >= d):
            raise ValueError(
                f"{op}: output_padding {output_padding} must be non-negative and smaller than "
                f"either stride {stride} or dilation {dilation}"
            )
    c_in, og = weight.shape[:2]
    kernel = weight.shape[2:]
    if c_in % groups:
        raise ValueError(
            f"{op}: in_channels {c_in} (weight {weight.shape}) is not divisible by groups={groups}"
        )
    unbatched = input.ndim == nd + 1
    c_x = input.shape[0] if unbatched else input.shape[1]
    if c_x != c_in:
        raise ValueError(
            f"{op}: input {input.shape} has {c_x} channels but weight {weight.shape} expects {c_in}"
        )
    c_out = og * groups
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias shape {bias.shape} does not match out_channels {c_out}")
    spatial = input.shape[-nd:]
    out_sp = tuple(conv_transpose_output_size(s, k, st, p, o, d) for s, k, st, p, o, d in
                   zip(spatial, kernel, stride, padding, output_padding, dilation))
    if any(o < 1 for o in out_sp):
        raise ValueError(
            f"{op}: output size {out_sp} is too small (input {input.shape}, weight "
            f"{weight.shape}, stride {stride}, padding {padding})"
        )
    pads = tuple((p, p) for p in padding)
    x = input.unsqueeze(0) if unbatched else input
    out_shape = (x.shape[0], c_out) + out_sp
    out = _ConvTranspose.apply(x, weight, bias, stride=stride, pads=pads, dilation=dilation,
                               groups=groups, out_shape=out_shape)
    return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------------------------- public ops
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, *, flip_kernel: bool = False) -> Tensor:
    """1-D cross-correlation ``(N, C_in, L) -> (N, C_out, L')``.

    ``L' = floor((L + 2 P - D (K - 1) - 1) / S) + 1``; weight ``(C_out, C_in/groups, K)``,
    bias ``(C_out,)``. ``padding`` is an int, a 1-tuple, ``'same'`` or ``'valid'``.
    ``flip_kernel=True`` computes the true convolution (kernel reversed).
    """
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups,
                    flip_kernel)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, *, flip_kernel: bool = False) -> Tensor:
    """2-D cross-correlation ``(N, C_in, H, W) -> (N, C_out, H', W')``.

    ``y[n, o, i, j] = b[o] + sum_{c, m, l} w[o, c, m, l] x_pad[n, c, i S_h + m D_h, j S_w + l D_w]``
    with ``H' = floor((H + 2 P_h - D_h (K_h - 1) - 1) / S_h) + 1`` (same for W). Weight
    ``(C_out, C_in/groups, K_h, K_w)``. ``padding``: int, pair, ``'valid'`` or ``'same'`` (stride
    1 only; odd totals pad one more on the high side, like PyTorch). Unbatched ``(C, H, W)``
    input is accepted. ``flip_kernel=True`` gives the textbook true convolution.

    Example::

        >>> y = F.conv2d(cn.randn(8, 3, 32, 32), cn.randn(16, 3, 3, 3), padding=1)
        >>> y.shape
        (8, 16, 32, 32)
    """
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                    flip_kernel)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, *, flip_kernel: bool = False) -> Tensor:
    """3-D cross-correlation ``(N, C_in, D, H, W) -> (N, C_out, D', H', W')`` (formula per axis
    as :func:`conv2d`); weight ``(C_out, C_in/groups, K_d, K_h, K_w)``."""
    return _conv_nd("conv3d", 3, input, weight, bias, stride, padding, dilation, groups,
                    flip_kernel)


def convolve1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
               dilation=1, groups: int = 1) -> Tensor:
    """True 1-D convolution: :func:`conv1d` with the kernel reversed,
    ``y[i] = sum_m x[m] K[i - m]``."""
    return _conv_nd("convolve1d", 1, input, weight, bias, stride, padding, dilation, groups, True)


def convolve2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
               dilation=1, groups: int = 1) -> Tensor:
    """True 2-D convolution ``(I * K)(i, j) = sum_{m, n} I(m, n) K(i - m, j - n)``.

    Identical to :func:`conv2d` with the kernel flipped along both spatial axes, so the two agree
    for kernels symmetric under a 180-degree rotation. ``(N, C_in, H, W) -> (N, C_out, H', W')``.
    """
    return _conv_nd("convolve2d", 2, input, weight, bias, stride, padding, dilation, groups, True)


def convolve3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
               dilation=1, groups: int = 1) -> Tensor:
    """True 3-D convolution: :func:`conv3d` with the kernel flipped along all three axes."""
    return _conv_nd("convolve3d", 3, input, weight, bias, stride, padding, dilation, groups, True)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-D transposed conv ``(N, C_in, L) -> (N, C_out, L')``; weight ``(C_in, C_out/groups, K)``.

    ``L' = (L - 1) S - 2 P + D (K - 1) + output_padding + 1``.
    """
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed conv ("deconvolution", learned upsampling).

    ``(N, C_in, H, W) -> (N, C_out, H', W')`` with ``H' = (H - 1) S - 2 P + D (K - 1) +
    output_padding + 1``; weight ``(C_in, C_out/groups, K_h, K_w)``. Each input pixel scales the
    kernel and the overlapping copies add up; it is multiplication by the transpose of the
    matrix of :func:`conv2d` with the same weight (see :func:`conv_matrix`). Note the argument
    order: ``output_padding, groups, dilation`` (as PyTorch).
    """
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """3-D transposed conv ``(N, C_in, D, H, W) -> (N, C_out, D', H', W')``, weight
    ``(C_in, C_out/groups, K_d, K_h, K_w)``; sizes as :func:`conv_transpose2d`."""
    return _conv_transpose_nd("conv_transpose3d", 3, input, weight, bias, stride, padding,
                              output_padding, groups, dilation)


def conv_matrix(weight: Tensor, input_size, stride=1, padding=0, dilation=1,
                groups: int = 1) -> Tensor:
    """The dense matrix ``M`` of a bias-free conv: ``conv(x).flatten() == M @ x.flatten()``.

    ``weight`` is ``(C_out, C_in/groups, *K)`` and ``input_size`` the spatial size ``S`` (an int
    or a tuple of 1-3 ints); ``M`` has shape ``(C_out prod(O), C_in prod(S))`` for one image,
    both sides flattened in ``(C, *spatial)`` order. ``M.T @ y.flatten()`` is the transposed conv
    ``conv_transposeNd(y, weight, stride, padding, ..., dilation)`` (with the output_padding that
    restores ``S``), which is where that operation's name comes from. Built by convolving the
    identity basis, so it is differentiable in ``weight``. Size grows as ``(C prod(S))^2``: keep
    inputs small.
    """
    nd = weight.ndim - 2
    if nd not in (1, 2, 3):
        raise ValueError(f"conv_matrix: weight must be 3-D, 4-D or 5-D, got shape {weight.shape}")
    size = ntuple(input_size, nd, "input_size", "conv_matrix")
    c_in = weight.shape[1] * groups
    dim = c_in * int(np.prod(size))
    eye = Tensor._make(np.eye(dim, dtype=weight.dtype).reshape((dim, c_in) + size))
    fn = (conv1d, conv2d, conv3d)[nd - 1]
    cols = fn(eye, weight, None, stride, padding, dilation, groups)  # column j = conv(e_j)
    return cols.reshape(dim, -1).transpose(0, 1)


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle ``(N, C, *S) -> (N, C, *S)``.

    Views channels as ``(groups, C/groups)``, transposes to ``(C/groups, groups)`` and flattens,
    so the next grouped conv sees channels from every group: channel ``g * C/groups + i`` moves to
    position ``i * groups + g``.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"channel_shuffle: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 3:
        raise ValueError(
            f"channel_shuffle: expected input (N, C, *spatial), got shape {input.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"channel_shuffle: groups must be a positive int, got {groups!r}")
    n, c = input.shape[:2]
    if c % groups:
        raise ValueError(
            f"channel_shuffle: {c} channels (input {input.shape}) not divisible by groups={groups}"
        )
    rest = input.shape[2:]
    x = input.reshape((n, groups, c // groups) + rest).transpose(1, 2)
    return x.reshape((n, c) + rest)
