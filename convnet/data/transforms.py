"""Image transforms on NumPy arrays, for one image ``(C, H, W)`` or a batch ``(N, C, H, W)``.

Every transform here is *batched*: given a batch it draws independent random parameters for
each image and applies them with whole-array operations (no Python loop over images), so
an in-memory dataset transforms a batch with a handful of NumPy calls.

Randomness comes from :func:`current_rng`: inside a :class:`~convnet.data.DataLoader` that is
a generator seeded per batch (reproducible, independent of worker threads); elsewhere it is
convnet's global generator (``cn.manual_seed``).

Unlike torchvision, ``ToTensor`` returns a float32 ``ndarray`` in CHW layout (the loader turns
batches into Tensors); ndarray inputs are taken as CHW (or HW, or NCHW batches), PIL images
as HWC.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading
from typing import Callable, Iterator, Sequence

import numpy as np

__all__ = [
    "current_rng", "use_rng", "Compose", "ToTensor", "Normalize", "Pad", "RandomCrop", "CenterCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomAffine", "RandomRotation", "RandomErasing",
    "Lambda",
]

_local = threading.local()


def current_rng() -> np.random.Generator:
    """The generator random transforms draw from in this thread."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        from ..random import generator

        return generator()
    return rng


@contextlib.contextmanager
def use_rng(rng: np.random.Generator) -> Iterator[None]:
    """Make random transforms in this thread draw from ``rng`` inside the block."""
    old = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield
    finally:
        _local.rng = old


def _as_batch(x, name: str) -> tuple[np.ndarray, bool]:
    """View ``x`` as (N, C, H, W); report whether it was a single image."""
    x = x._data if hasattr(x, "_ctx") or type(x).__name__ == "Tensor" else np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"{name}: expected an image (C, H, W) or a batch (N, C, H, W), got shape "
                     f"{x.shape}")


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, numbers.Integral):
        return int(v), int(v)
    if isinstance(v, Sequence) and len(v) == 2:
        return int(v[0]), int(v[1])
    raise ValueError(f"{name}: size must be an int or (h, w), got {v!r}")


class Transform:
    """Base class: ``__call__(img)`` works on (C, H, W) and on (N, C, H, W)."""

    batched = True

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    @property
    def batched(self) -> bool:  # a batch can go through only if every step accepts one
        return all(getattr(t, "batched", False) for t in self.transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Lambda(Transform):
    """Wrap a user function (treated as per-image unless ``batched=True``)."""

    def __init__(self, fn: Callable, batched: bool = False) -> None:
        self.fn, self.batched = fn, batched

    def __call__(self, img):
        return self.fn(img)


class ToTensor(Transform):
    """PIL image (H, W[, C]) or uint8 array (C, H, W) / (H, W) / (N, C, H, W) -> float32 in
    [0, 1], channels first. Float arrays are only cast to float32."""

    def __call__(self, img) -> np.ndarray:
        if not isinstance(img, np.ndarray) and hasattr(img, "mode") and hasattr(img, "size"):
            arr = np.asarray(img)  # PIL: HW or HWC
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        else:
            arr = img._data if type(img).__name__ == "Tensor" else np.asarray(img)
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim not in (3, 4):
                raise ValueError("ToTensor: expected (H, W), (C, H, W) or (N, C, H, W), got "
                                 f"shape {arr.shape}")
        if arr.dtype == np.uint8:
            out = arr.astype(np.float32)
            out *= np.float32(1 / 255)
            return out
        if arr.dtype.kind == "b":
            return arr.astype(np.float32)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"ToTensor: unsupported dtype {arr.dtype}")
        return arr.astype(np.float32, copy=False)


class Normalize(Transform):
    """``out[c] = (x[c] - mean[c]) / std[c]`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std = list(np.atleast_1d(mean)), list(np.atleast_1d(std))
        self.inplace = inplace
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has "
                             f"{len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std}")

    def __call__(self, img):
        x, single = _as_batch(img, "Normalize")
        c = x.shape[1]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize: image has {c} channels but mean/std have "
                             f"{len(self.mean)} values")
        dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        mean = np.asarray(self.mean, dtype=dt).reshape(1, -1, 1, 1)
        scale = (1 / np.asarray(self.std, dtype=np.float64)).astype(dt).reshape(1, -1, 1, 1)
        if self.inplace and x.dtype.kind == "f":
            out = x
            out -= mean
        else:
            out = x - mean
        out *= scale
        return out[0] if single else out


class Pad(Transform):
    """Pad the spatial borders: ``padding`` int, (left/right, top/bottom) or (l, t, r, b);
    ``padding_mode`` 'constant' (with ``fill``), 'edge', 'reflect' or 'symmetric'."""

    def __init__(self, padding, fill: float = 0, padding_mode: str = "constant") -> None:
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Pad: padding_mode must be constant, edge, reflect or symmetric, "
                             f"got {padding_mode!r}")
        p = [padding] * 4 if isinstance(padding, numbers.Integral) else list(padding)
        if len(p) == 2:
            p = [p[0], p[1], p[0], p[1]]
        if len(p) != 4 or any(int(v) < 0 for v in p):
            raise ValueError("Pad: padding must be non-negative int, 2 or 4 values, got "
                             f"{padding!r}")
        self.padding, self.fill, self.padding_mode = [int(v) for v in p], fill, padding_mode

    def __call__(self, img):
        x, single = _as_batch(img, "Pad")
        left, top, right, bottom = self.padding
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode == "constant":
            out = np.pad(x, widths, constant_values=self.fill)
        else:
            out = np.pad(x, widths, mode=self.padding_mode)
        return out[0] if single else out


def _gather_crops(x: np.ndarray, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-image crops ``x[n, :, top[n]:top[n]+h, left[n]:left[n]+w]`` in one gather.

    A sliding-window view (no copy) has one (h, w) window per offset; fancy indexing picks
    each image's window, copying whole windows rather than single pixels.
    """
    windows = np.lib.stride_tricks.sliding_window_view(x, (h, w), axis=(2, 3))
    return windows[np.arange(x.shape[0]), :, top, left]  # (N, C, h, w)


class RandomCrop(Transform):
    """Pad by ``padding`` (optional), then cut a random ``size`` window from each image.

    Shape: (N, C, H, W) -> (N, C, h, w).
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant") -> None:
        self.size = _pair(size, "RandomCrop")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode
        self._pad = Pad(padding, fill, padding_mode) if padding else None

    def __call__(self, img):
        x, single = _as_batch(img, "RandomCrop")
        if self._pad is not None:
            x = self._pad(x)
        h, w = self.size
        if self.pad_if_needed and (x.shape[2] < h or x.shape[3] < w):
            dh, dw = max(h - x.shape[2], 0), max(w - x.shape[3], 0)
            x = Pad((dw, dh), self.fill, self.padding_mode)(x)
        H, W = x.shape[2:]
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the (padded) image "
                             f"{(H, W)}")
        rng = current_rng()
        top = rng.integers(0, H - h + 1, size=x.shape[0])
        left = rng.integers(0, W - w + 1, size=x.shape[0])
        out = _gather_crops(x, top, left, h, w)
        return out[0] if single else out


class CenterCrop(Transform):
    """Cut the central ``size`` window. Shape: (N, C, H, W) -> (N, C, h, w)."""

    def __init__(self, size) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img):
        x, single = _as_batch(img, "CenterCrop")
        h, w = self.size
        H, W = x.shape[2:]
        if h > H or w > W:
            raise ValueError(f"CenterCrop: crop size {(h, w)} is larger than the image {(H, W)}")
        top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
        out = x[:, :, top:top + h, left:left + w]
        return out[0] if single else out


class _RandomFlip(Transform):
    axis = -1

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        x, single = _as_batch(img, type(self).__name__)
        flip = current_rng().random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = np.flip(x[flip], axis=self.axis)
        return out[0] if single else out


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability ``p``."""

    axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top-bottom with probability ``p``."""

    axis = -2


def _range(v, name: str, center: float = 0.0) -> tuple[float, float]:
    if isinstance(v, numbers.Number):
        if v < 0:
            raise ValueError(f"{name}: a single number must be non-negative, got {v}")
        return center - v, center + v
    if len(v) != 2:
        raise ValueError(f"{name}: expected a number or (min, max), got {v!r}")
    return float(v[0]), float(v[1])


class RandomAffine(Transform):
    """Random rotation, translation, scale and shear about the image centre.

    Each output pixel ``p`` takes the input value at ``A^-1 (p - c - t) + c`` (``c`` the
    centre, ``t`` the shift, ``A = R(angle) Shear S(scale)``), sampled with ``interpolation``
    'nearest' or 'bilinear'; pixels from outside the image get ``fill``.

    Args:
        degrees: angle range in degrees, ``d`` meaning (-d, d); positive is counter-clockwise.
        translate: (a, b): shift up to ``a * W`` horizontally and ``b * H`` vertically.
        scale: (lo, hi) scale factor range.
        shear: x-shear angle range in degrees, ``s`` meaning (-s, s).
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation: str = "nearest", fill: float = 0) -> None:
        self.degrees = _range(degrees, "RandomAffine degrees")
        if translate is not None and (len(translate) != 2
                                      or not all(0 <= t <= 1 for t in translate)):
            raise ValueError("RandomAffine: translate must be two fractions in [0, 1], got "
                             f"{translate!r}")
        if scale is not None and (len(scale) != 2 or min(scale) <= 0):
            raise ValueError(f"RandomAffine: scale must be two positive numbers, got {scale!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError("RandomAffine: interpolation must be 'nearest' or 'bilinear', got "
                             f"{interpolation!r}")
        self.translate, self.scale = translate, scale
        self.shear = None if shear is None else _range(shear, "RandomAffine shear")
        self.interpolation, self.fill = interpolation, fill

    def _params(self, n: int, H: int, W: int, rng: np.random.Generator):
        # positive angles turn the picture counter-clockwise (torchvision's convention); with
        # rows growing downwards that is a negative angle in (x, y) pixel coordinates
        angle = -np.deg2rad(rng.uniform(*self.degrees, size=n))
        tx = ty = np.zeros(n)
        if self.translate is not None:
            tx = np.round(rng.uniform(-1, 1, size=n) * self.translate[0] * W)
            ty = np.round(rng.uniform(-1, 1, size=n) * self.translate[1] * H)
        s = rng.uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        sh = np.deg2rad(rng.uniform(*self.shear, size=n)) if self.shear is not None else np.zeros(n)
        return angle, tx, ty, s, sh

    def __call__(self, img):
        x, single = _as_batch(img, "RandomAffine")
        N, C, H, W = x.shape
        angle, tx, ty, s, sh = self._params(N, H, W, current_rng())
        # Forward map A = R(angle) @ [[1, tan(sh)], [0, 1]] * s; we need its inverse per image.
        cos, sin, t = np.cos(angle), np.sin(angle), np.tan(sh)
        a, b = cos * s, (cos * t - sin) * s
        c, d = sin * s, (sin * t + cos) * s
        det = a * d - b * c
        ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
        cy, cx = (H - 1) / 2, (W - 1) / 2
        yy = np.arange(H, dtype=np.float64)[None, :, None] - cy - ty[:, None, None]
        xx = np.arange(W, dtype=np.float64)[None, None, :] - cx - tx[:, None, None]
        src_x = ia[:, None, None] * xx + ib[:, None, None] * yy + cx  # (N, H, W)
        src_y = ic[:, None, None] * xx + id_[:, None, None] * yy + cy
        nidx = np.arange(N)[:, None, None]
        if self.interpolation == "nearest":
            xi, yi = np.rint(src_x).astype(np.intp), np.rint(src_y).astype(np.intp)
            inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            vals = x[nidx, :, np.clip(yi, 0, H - 1), np.clip(xi, 0, W - 1)]  # (N, H, W, C)
            out = np.where(inside[..., None], vals, np.asarray(self.fill, dtype=x.dtype))
        else:
            x0, y0 = np.floor(src_x).astype(np.intp), np.floor(src_y).astype(np.intp)
            fx, fy = (src_x - x0)[..., None], (src_y - y0)[..., None]
            xf = x.astype(np.float32) if x.dtype.kind != "f" else x
            out = np.zeros((N, H, W, C), dtype=xf.dtype)
            for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                                (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
                xs, ys = x0 + dx, y0 + dy
                inside = ((xs >= 0) & (xs < W) & (ys >= 0) & (ys < H))[..., None]
                v = xf[nidx, :, np.clip(ys, 0, H - 1), np.clip(xs, 0, W - 1)]
                out += (np.where(inside, v, self.fill) * wgt).astype(out.dtype)
            if x.dtype.kind != "f":
                out = np.clip(np.rint(out), 0, np.iinfo(x.dtype).max).astype(x.dtype)
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return out[0] if single else out


class RandomRotation(RandomAffine):
    """Rotate by a random angle in ``degrees`` (a number ``d`` meaning (-d, d))."""

    def __init__(self, degrees, interpolation: str = "nearest", fill: float = 0) -> None:
        super().__init__(degrees, interpolation=interpolation, fill=fill)


class RandomErasing(Transform):
    """With probability ``p``, set a random rectangle of each image to ``value`` (Zhong et al.
    2017). Its area is a fraction in ``scale`` of the image, its aspect ratio (h/w) log-uniform
    in ``ratio``; ``value`` is a number, per-channel numbers, or 'random' (standard normal).
    Unlike torchvision's 10 retries, an oversize rectangle is clipped to the image."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0,
                 inplace: bool = False) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing: bad scale {scale!r} or ratio {ratio!r}")
        self.p, self.scale, self.ratio, self.value, self.inplace = p, scale, ratio, value, inplace

    def __call__(self, img):
        x, single = _as_batch(img, "RandomErasing")
        N, C, H, W = x.shape
        rng = current_rng()
        apply = rng.random(N) < self.p
        area = rng.uniform(*self.scale, size=N) * H * W
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=N))
        h = np.clip(np.rint(np.sqrt(area * aspect)), 1, H).astype(np.intp)
        w = np.clip(np.rint(np.sqrt(area / aspect)), 1, W).astype(np.intp)
        top = (rng.random(N) * (H - h + 1)).astype(np.intp)
        left = (rng.random(N) * (W - w + 1)).astype(np.intp)
        r, c = np.arange(H), np.arange(W)
        t, b = top[:, None, None], (top + h)[:, None, None]
        lo, hi = left[:, None, None], (left + w)[:, None, None]
        rows, cols = r[None, :, None], c[None, None, :]
        mask = ((rows >= t) & (rows < b) & (cols >= lo) & (cols < hi)
                & apply[:, None, None])[:, None]  # (N, 1, H, W)
        if isinstance(self.value, str):
            if self.value != "random":
                raise ValueError("RandomErasing: value must be a number, a sequence or 'random', "
                                 f"got {self.value!r}")
            fill = rng.standard_normal(x.shape).astype(x.dtype)
        else:
            fill = np.asarray(self.value, dtype=x.dtype).reshape(1, -1, 1, 1)
        if self.inplace:
            np.copyto(x, np.broadcast_to(fill, x.shape), where=mask)
            out = x
        else:
            out = np.where(mask, fill, x)
        return out[0] if single else out
