"""Image transforms with torchvision's names, arguments and results.

Three kinds of input, as torchvision's transforms take them:

- a **PIL image**: geometric transforms (crops, flips, ``Resize``, ``Pad``, ``Grayscale``)
  return a PIL image of the same mode; ``ToTensor`` / ``PILToTensor`` turn it into a Tensor;
- a **Tensor** ``(..., C, H, W)``: the result is a Tensor; a random transform draws one set of
  parameters for the whole tensor (a batch tensor is cropped/flipped as one, as torchvision);
- a **NumPy array**: ``ToTensor`` / ``ToPILImage`` read it as ``(H, W, C)`` (or ``(H, W)``),
  as torchvision; every other transform takes ``(C, H, W)`` or a batch ``(N, C, H, W)``
  and returns an array, drawing random parameters *per image* (convnet's batched form).

The batched form is what the datasets use: ``transform._batch(x)`` maps an ``(N, C, H, W)``
array to an array, each image with its own random draws, with whole-array NumPy operations
(no Python loop over images). :class:`~convnet.data.ArrayImageDataset` uses it when every step
has one (``transform.batched``), and builds samples one by one otherwise.

Randomness comes from :func:`current_rng`: inside a :class:`~convnet.data.DataLoader` that is
a generator seeded per batch (reproducible, independent of worker threads); elsewhere it is
convnet's global generator (``cn.manual_seed``).
"""
from __future__ import annotations

import contextlib
import enum
import math
import numbers
import threading
from typing import Callable, Iterator, Sequence

import numpy as np

from ..tensor import Tensor

__all__ = [
    "current_rng", "use_rng", "InterpolationMode", "Compose", "ToTensor", "PILToTensor",
    "ToPILImage", "Normalize", "Resize", "Pad", "RandomCrop", "CenterCrop", "RandomResizedCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomAffine", "RandomRotation",
    "RandomErasing", "Grayscale", "Lambda",
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


class InterpolationMode(str, enum.Enum):
    """torchvision's interpolation names (the values are also accepted as plain strings)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _pil_filter(mode) -> int:
    from PIL import Image

    name = InterpolationMode(mode).name
    return getattr(Image.Resampling, name)


def _is_pil(img) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(img, Image.Image)


def _pil_to_chw(img) -> np.ndarray:
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _chw_to_pil(arr: np.ndarray, like):
    """``(C, H, W)`` array back to a PIL image with ``like``'s mode (and palette)."""
    from PIL import Image

    hwc = np.ascontiguousarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    if like.mode == "P":
        out = Image.fromarray(hwc.astype(np.uint8), mode="L").convert("P")
        out.putpalette(like.getpalette())
        return out
    if like.mode == "1":
        return Image.fromarray(hwc.astype(bool))
    return Image.fromarray(hwc.astype(np.asarray(like).dtype, copy=False), mode=like.mode)


def _as_batch(x, name: str) -> tuple[np.ndarray, bool]:
    """View an array ``x`` as (N, C, H, W); report whether it was a single image."""
    x = x._data if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"{name}: expected an image (C, H, W) or a batch (N, C, H, W), got shape "
                     f"{x.shape}")


def _repeat(params, n: int):
    """Parameters drawn for one image, repeated for ``n`` (same draw for the whole tensor)."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: _repeat(v, n) for k, v in params.items()}
    if isinstance(params, tuple):
        return tuple(_repeat(v, n) for v in params)
    if isinstance(params, np.ndarray) and params.ndim >= 1 and params.shape[0] == 1:
        return np.repeat(params, n, axis=0)
    return params


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, numbers.Integral):
        return int(v), int(v)
    if isinstance(v, Sequence) and len(v) == 2:
        return int(v[0]), int(v[1])
    raise ValueError(f"{name}: size must be an int or (h, w), got {v!r}")


class Transform:
    """Base class. Subclasses define ``_apply(x, params)`` on an ``(N, C, H, W)`` array and,
    when random, ``_draw(n, H, W, rng)`` returning per-image parameters (arrays of length
    ``n``); ``__call__`` dispatches on the input kind (see the module docstring)."""

    batched = True  # has an exact array form (_batch) equal to the per-image result

    def _draw(self, n: int, H: int, W: int, rng: np.random.Generator):
        return None

    def _apply(self, x: np.ndarray, params) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _batch(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` array -> array, independent random draws per image."""
        return self._apply(x, self._draw(x.shape[0], x.shape[2], x.shape[3], current_rng()))

    def _one_draw(self, x4: np.ndarray) -> np.ndarray:
        """Apply to every image of ``x4`` with one random draw (torchvision's tensor rule)."""
        params = self._draw(1, x4.shape[2], x4.shape[3], current_rng())
        return self._apply(x4, _repeat(params, x4.shape[0]))

    def _on_tensor(self, t: Tensor) -> Tensor:
        x = t._data
        name = type(self).__name__
        if x.ndim < 2:
            raise ValueError(f"{name}: expected a tensor image (..., C, H, W) or (H, W), got "
                             f"shape {x.shape}")
        lead, chw = x.shape[:-3], x.shape[-3:] if x.ndim >= 3 else (1,) + x.shape
        out = self._one_draw(x.reshape((-1,) + chw))
        out = out.reshape(lead + out.shape[1:]) if x.ndim >= 3 else out.reshape(out.shape[-2:])
        return Tensor._make(out)

    def _on_pil(self, img):
        return _chw_to_pil(self._one_draw(_pil_to_chw(img)[None])[0], img)

    def __call__(self, img):
        if _is_pil(img):
            return self._on_pil(img)
        if isinstance(img, Tensor):
            return self._on_tensor(img)
        x, single = _as_batch(img, type(self).__name__)
        out = self._batch(x)
        return out[0] if single else out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    @property
    def batched(self) -> bool:  # a batch can go through only if every step accepts one
        return all(getattr(t, "batched", False) and hasattr(t, "_batch")
                   for t in self.transforms)

    def _batch(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t._batch(x)
        return x

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Lambda(Transform):
    """Wrap a user function ``lambd(img)`` (per image; ``batched=True`` declares that it also
    maps an ``(N, C, H, W)`` array to a batch, so datasets may call it on whole batches)."""

    def __init__(self, lambd: Callable, batched: bool = False) -> None:
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd, self.batched = lambd, batched

    def _batch(self, x):
        return self.lambd(x)

    def __call__(self, img):
        return self.lambd(img)


def _scale_uint8(arr: np.ndarray) -> np.ndarray:
    # torchvision: img.to(float32).div(255) -- a division, so results match it bit for bit
    out = arr.astype(np.float32)
    out /= np.float32(255)
    return out


class ToTensor(Transform):
    """PIL image or ``(H, W[, C])`` ndarray -> Tensor ``(C, H, W)``; uint8 values are scaled
    to float32 in ``[0, 1]`` (``x / 255``), other dtypes are kept unscaled (as torchvision).

    Also accepts a Tensor image ``(C, H, W)`` (uint8 scaled as above). Its batched form maps
    ``(N, C, H, W)`` uint8 arrays to float32.
    """

    def _batch(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            return _scale_uint8(x)
        return x.astype(np.float32, copy=False)

    def __call__(self, pic) -> Tensor:
        if _is_pil(pic):
            arr = np.array(pic)
            if pic.mode == "1":
                arr = arr.astype(np.uint8) * 255
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        elif isinstance(pic, Tensor):
            arr = pic._data
            if arr.ndim not in (2, 3):
                raise ValueError(f"ToTensor: a tensor image must be (C, H, W) or (H, W), got "
                                 f"shape {arr.shape}")
            arr = arr[None] if arr.ndim == 2 else arr
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"ToTensor: pic should be 2/3 dimensional (H, W[, C]). Got "
                                 f"{pic.ndim} dimensions (shape {pic.shape})")
            arr = pic[None] if pic.ndim == 2 else pic.transpose(2, 0, 1)
        else:
            raise TypeError(f"ToTensor: pic should be PIL Image or ndarray. Got {type(pic)}")
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.uint8:
            return Tensor._make(_scale_uint8(arr))
        return Tensor._make(arr.copy() if arr is pic else arr)


class PILToTensor(Transform):
    """PIL image -> uint8 (or the mode's dtype) Tensor ``(C, H, W)``, values unchanged."""

    def _batch(self, x: np.ndarray) -> np.ndarray:
        return x

    def __call__(self, pic) -> Tensor:
        if not _is_pil(pic):
            raise TypeError(f"PILToTensor: pic should be PIL Image. Got {type(pic)}")
        return Tensor._make(np.ascontiguousarray(_pil_to_chw(np.array(pic))))


class ToPILImage(Transform):
    """Tensor ``(C, H, W)`` or ndarray ``(H, W, C)`` -> PIL image (C = 1, 2, 3, 4).

    Float values are taken as ``[0, 1]``: multiplied by 255 and truncated to uint8 (as
    torchvision; values outside ``[0, 1]`` are clipped first). ``mode`` defaults to 'L',
    'LA', 'RGB' or 'RGBA' by channel count ('I'/'F' for int32/float 1-channel with mode set).
    """

    batched = False

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode

    def __call__(self, pic):
        from PIL import Image

        if isinstance(pic, Tensor):
            arr = pic._data
            if arr.ndim == 2:
                arr = arr[None]
            if arr.ndim != 3:
                raise ValueError(f"ToPILImage: pic should be 2/3 dimensional. Got {arr.ndim} "
                                 "dimensions.")
            if arr.dtype.kind == "f" and self.mode != "F":
                arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
            hwc = arr.transpose(1, 2, 0)
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"ToPILImage: pic should be 2/3 dimensional. Got {pic.ndim} "
                                 "dimensions.")
            hwc = pic[..., None] if pic.ndim == 2 else pic
        else:
            raise TypeError(f"ToPILImage: pic should be Tensor or ndarray. Got {type(pic)}")
        c = hwc.shape[2]
        if c == 1:
            plane = np.ascontiguousarray(hwc[..., 0])
            return Image.fromarray(plane, mode=self.mode) if self.mode else Image.fromarray(plane)
        mode = self.mode or {2: "LA", 3: "RGB", 4: "RGBA"}.get(c)
        if mode is None:
            raise ValueError(f"ToPILImage: an image with {c} channels has no PIL mode")
        return Image.fromarray(np.ascontiguousarray(hwc.astype(np.uint8, copy=False)), mode=mode)


class Normalize(Transform):
    """``out[c] = (x[c] - mean[c]) / std[c]`` per channel, on float Tensors ``(..., C, H, W)``
    (and arrays ``(C, H, W)`` / ``(N, C, H, W)``)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std = list(np.atleast_1d(mean)), list(np.atleast_1d(std))
        self.inplace = inplace
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has "
                             f"{len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero (std evaluated to zero, leading "
                             f"to division by zero), got {self.std}")

    def _apply(self, x: np.ndarray, params=None) -> np.ndarray:
        c = x.shape[1]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize: image has {c} channels but mean/std have "
                             f"{len(self.mean)} values")
        dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        mean = np.asarray(self.mean, dtype=dt).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=dt).reshape(1, -1, 1, 1)
        if self.inplace and x.dtype.kind == "f":
            out = x
            out -= mean
        else:
            out = x - mean
        out /= std  # a division as torchvision's sub_(mean).div_(std), so results match it
        return out

    def _on_tensor(self, t: Tensor) -> Tensor:
        if t._data.dtype.kind != "f":
            raise TypeError(f"Normalize: input tensor should be a float tensor. Got "
                            f"{t._data.dtype}.")
        if t.ndim < 3:
            raise ValueError("Normalize: expected tensor to be a tensor image of size "
                             f"(..., C, H, W). Got tensor.size() = {tuple(t.shape)}.")
        out = super()._on_tensor(t)
        if self.inplace:
            t._data[...] = out._data
            return t
        return out

    def _on_pil(self, img):
        raise TypeError(f"Normalize: img should be Tensor Image. Got {type(img)}")


class Pad(Transform):
    """Pad the spatial borders: ``padding`` int, (left/right, top/bottom) or (l, t, r, b);
    ``padding_mode`` 'constant' (with ``fill``), 'edge', 'reflect' or 'symmetric'."""

    def __init__(self, padding, fill: float = 0, padding_mode: str = "constant") -> None:
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Pad: padding_mode must be constant, edge, reflect or symmetric, "
                             f"got {padding_mode!r}")
        p = [padding] * 4 if isinstance(padding, numbers.Integral) else list(padding)
        if len(p) == 1:
            p = p * 4
        if len(p) == 2:
            p = [p[0], p[1], p[0], p[1]]
        if len(p) != 4 or any(int(v) < 0 for v in p):
            raise ValueError("Pad: padding must be non-negative int, 2 or 4 values, got "
                             f"{padding!r}")
        self.padding, self.fill, self.padding_mode = [int(v) for v in p], fill, padding_mode

    def _apply(self, x: np.ndarray, params=None) -> np.ndarray:
        left, top, right, bottom = self.padding
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode == "constant":
            if isinstance(self.fill, Sequence):  # per-channel fill (PIL RGB fills)
                out = np.pad(x, widths)
                mask = np.ones(out.shape[2:], bool)
                mask[top:top + x.shape[2], left:left + x.shape[3]] = False
                out[:, :, mask] = np.asarray(self.fill, out.dtype)[None, :, None]
                return out
            return np.pad(x, widths, constant_values=self.fill)
        return np.pad(x, widths, mode=self.padding_mode)


def _gather_crops(x: np.ndarray, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-image crops ``x[n, :, top[n]:top[n]+h, left[n]:left[n]+w]`` in one gather.

    A sliding-window view (no copy) has one (h, w) window per offset; fancy indexing picks
    each image's window, copying whole windows rather than single pixels.
    """
    windows = np.lib.stride_tricks.sliding_window_view(x, (h, w), axis=(2, 3))
    return windows[np.arange(x.shape[0]), :, top, left]  # (N, C, h, w)


class RandomCrop(Transform):
    """Pad by ``padding`` (optional), then cut a random ``size`` window from each image.

    ``pad_if_needed`` pads an image smaller than ``size`` by the missing amount on both sides.
    Offsets are uniform over the valid positions. Shape: (N, C, H, W) -> (N, C, h, w).
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant") -> None:
        self.size = _pair(size, "RandomCrop")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode
        self._pad = Pad(padding, fill, padding_mode) if padding else None

    def _padded(self, H: int, W: int) -> tuple[int, int, int, int]:
        """The size after ``padding`` and the extra ``pad_if_needed`` amounts (dh, dw)."""
        if self._pad is not None:
            left, top, right, bottom = self._pad.padding
            H, W = H + top + bottom, W + left + right
        h, w = self.size
        dh = max(h - H, 0) if self.pad_if_needed else 0
        dw = max(w - W, 0) if self.pad_if_needed else 0
        return H + 2 * dh, W + 2 * dw, dh, dw

    def _draw(self, n, H, W, rng):
        H, W, _, _ = self._padded(H, W)
        h, w = self.size
        if h > H or w > W:
            raise ValueError(f"RandomCrop: required crop size {(h, w)} is larger than the "
                             f"(padded) input image size {(H, W)}")
        return rng.integers(0, H - h + 1, size=n), rng.integers(0, W - w + 1, size=n)

    def _apply(self, x, params):
        _, _, dh, dw = self._padded(x.shape[2], x.shape[3])
        if self._pad is not None:
            x = self._pad._apply(x)
        if dh or dw:
            x = Pad((dw, dh), self.fill, self.padding_mode)._apply(x)
        top, left = params
        return _gather_crops(x, top, left, *self.size)


def _center_pad(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Zero-pad ``x`` to at least ``h x w`` as torchvision's center_crop does (the odd pixel
    goes to the right / bottom)."""
    H, W = x.shape[2:]
    if h <= H and w <= W:
        return x
    ph, pw = max(h - H, 0), max(w - W, 0)
    return np.pad(x, ((0, 0), (0, 0), (ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2)))


class CenterCrop(Transform):
    """Cut the central ``size`` window: top ``int(round((H - h) / 2))``, left likewise (as
    torchvision); an image smaller than ``size`` is zero-padded first. Shape: (N, C, H, W) ->
    (N, C, h, w)."""

    def __init__(self, size) -> None:
        self.size = _pair(size, "CenterCrop")

    def _apply(self, x, params=None):
        h, w = self.size
        x = _center_pad(x, h, w)
        H, W = x.shape[2:]
        top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
        return x[:, :, top:top + h, left:left + w]


def _resize_size(size, H: int, W: int, max_size: int | None) -> tuple[int, int]:
    """torchvision's output size: an int (or 1-sequence) sets the shorter side, keeping the
    aspect ratio (the longer side truncated: ``int(size * long / short)``), capped by
    ``max_size``; ``(h, w)`` is taken as is."""
    if isinstance(size, numbers.Integral) or len(size) == 1:
        s = int(size) if isinstance(size, numbers.Integral) else int(size[0])
        short, long = (W, H) if W <= H else (H, W)
        new_short, new_long = s, int(s * long / short)
        if max_size is not None:
            if max_size <= s:
                raise ValueError(f"Resize: max_size = {max_size} must be strictly greater than "
                                 f"the requested size for the smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_long, new_short) if W <= H else (new_short, new_long)
    return int(size[0]), int(size[1])


def _resize_planes(x: np.ndarray, h: int, w: int, interpolation) -> np.ndarray:
    """Resize every (H, W) plane of ``x`` (N, C, H, W) with Pillow's float ('F') resampler:
    antialiased like torchvision's ``antialias=True``. Integer images are rounded and
    clipped back to their dtype."""
    from PIL import Image

    if x.shape[2:] == (h, w):
        return x.copy()
    filt = _pil_filter(interpolation)
    n, c = x.shape[:2]
    out = np.empty((n, c, h, w), np.float32)
    for i in range(n):
        for k in range(c):
            plane = Image.fromarray(np.ascontiguousarray(x[i, k], dtype=np.float32), mode="F")
            out[i, k] = np.asarray(plane.resize((w, h), filt))
    if x.dtype.kind in "iub":
        info = np.iinfo(x.dtype) if x.dtype.kind != "b" else None
        out = np.rint(out)
        if info is not None:
            np.clip(out, info.min, info.max, out=out)
        return out.astype(x.dtype)
    return out.astype(x.dtype, copy=False)


class Resize(Transform):
    """Resize to ``size``: an int makes the *shorter* side ``size`` and keeps the aspect ratio
    (``max_size`` caps the longer side); ``(h, w)`` resizes to exactly that.

    PIL images are resized by Pillow (``interpolation``, default bilinear) as torchvision
    does; tensors and arrays plane by plane with Pillow's float resampler (antialiased, as
    torchvision's default ``antialias=True``), integer images rounded back.
    """

    batched = False  # PIL's 8-bit resampler and the float one may differ by one grey level

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True) -> None:
        if not isinstance(size, (numbers.Integral, Sequence)) or (
                isinstance(size, Sequence) and len(size) not in (1, 2)):
            raise TypeError(f"Resize: size should be int or sequence of 1 or 2 ints. Got {size!r}")
        if isinstance(size, Sequence) and len(size) == 2 and max_size is not None:
            raise ValueError("Resize: max_size should only be passed if size specifies the "
                             "length of the smaller edge, i.e. size should be an int or a "
                             "sequence of length 1")
        self.size, self.interpolation = size, InterpolationMode(interpolation)
        self.max_size, self.antialias = max_size, antialias

    def _apply(self, x, params=None):
        h, w = _resize_size(self.size, x.shape[2], x.shape[3], self.max_size)
        return _resize_planes(x, h, w, self.interpolation)

    def _on_pil(self, img):
        h, w = _resize_size(self.size, img.height, img.width, self.max_size)
        if (h, w) == (img.height, img.width):
            return img
        return img.resize((w, h), _pil_filter(self.interpolation))


class RandomResizedCrop(Transform):
    """A random crop of random area and aspect ratio, resized to ``size`` (Inception-style).

    The crop (torchvision's rule): up to 10 tries of area ``A * U(scale)`` and aspect
    ``w/h = exp(U(log ratio))``, ``w = round(sqrt(area * aspect))``, ``h = round(sqrt(area /
    aspect))``, kept when it fits, at a uniform offset; otherwise the largest central crop
    with the aspect clamped into ``ratio``. Then :class:`Resize` to ``size``.
    """

    batched = False

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True) -> None:
        self.size = _pair(size, "RandomResizedCrop")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError("RandomResizedCrop: scale and ratio should be of kind (min, max), "
                             f"got scale={scale!r}, ratio={ratio!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias = InterpolationMode(interpolation), antialias

    def get_params(self, H: int, W: int, rng: np.random.Generator | None = None):
        """``(top, left, h, w)`` of the crop for an ``H x W`` image."""
        rng = current_rng() if rng is None else rng
        area = H * W
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
        in_ratio = W / H
        if in_ratio < min(self.ratio):
            w, h = W, int(round(W / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = H, int(round(H * max(self.ratio)))
        else:
            w, h = W, H
        return (H - h) // 2, (W - w) // 2, h, w

    def _draw(self, n, H, W, rng):
        return np.asarray([self.get_params(H, W, rng) for _ in range(n)])

    def _apply(self, x, params):
        out = [_resize_planes(x[i:i + 1, :, top:top + h, left:left + w], *self.size,
                              self.interpolation)
               for i, (top, left, h, w) in enumerate(params)]
        return np.concatenate(out)

    def _on_pil(self, img):
        top, left, h, w = self.get_params(img.height, img.width)
        return img.crop((left, top, left + w, top + h)).resize((self.size[1], self.size[0]),
                                                     _pil_filter(self.interpolation))


class Grayscale(Transform):
    """Convert to grey with ``num_output_channels`` 1 or 3 (the grey copied).

    PIL images go through Pillow's ``convert('L')`` (ITU-R 601-2 luma, ``L = R * 299/1000 +
    G * 587/1000 + B * 114/1000`` in fixed point); tensors and arrays ``(..., 3, H, W)`` use
    torchvision's ``0.2989 r + 0.587 g + 0.114 b`` cast back to their dtype (truncating for
    integers, as torchvision). One-channel inputs are copied.
    """

    batched = False

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3):
            raise ValueError("Grayscale: num_output_channels should be either 1 or 3, got "
                             f"{num_output_channels}")
        self.num_output_channels = num_output_channels

    def _apply(self, x, params=None):
        c = x.shape[1]
        if c == 1:
            grey = x.copy()
        elif c == 3:
            xf = x.astype(np.float32) if x.dtype.kind != "f" else x
            r, g, b = xf[:, 0:1], xf[:, 1:2], xf[:, 2:3]
            grey = (0.2989 * r + 0.587 * g + 0.114 * b).astype(x.dtype)
        else:
            raise TypeError(f"Grayscale: input image should have 1 or 3 channels, got {c}")
        return np.repeat(grey, self.num_output_channels, axis=1)

    def _on_pil(self, img):
        grey = img.convert("L")
        return grey.convert("RGB") if self.num_output_channels == 3 else grey


class _RandomFlip(Transform):
    axis = -1
    _pil_method = "FLIP_LEFT_RIGHT"

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = p

    def _draw(self, n, H, W, rng):
        return rng.random(n) < self.p

    def _apply(self, x, flip):
        out = x.copy()
        out[flip] = np.flip(x[flip], axis=self.axis)
        return out

    def _on_pil(self, img):
        from PIL import Image

        if current_rng().random() < self.p:
            return img.transpose(getattr(Image.Transpose, self._pil_method))
        return img


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability ``p``."""

    axis = -1
    _pil_method = "FLIP_LEFT_RIGHT"


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top-bottom with probability ``p``."""

    axis = -2
    _pil_method = "FLIP_TOP_BOTTOM"


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

    def _draw(self, n: int, H: int, W: int, rng: np.random.Generator):
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

    def _apply(self, x, params):
        N, C, H, W = x.shape
        angle, tx, ty, s, sh = params
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
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


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

    def _draw(self, n, H, W, rng):
        apply = rng.random(n) < self.p
        area = rng.uniform(*self.scale, size=n) * H * W
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=n))
        h = np.clip(np.rint(np.sqrt(area * aspect)), 1, H).astype(np.intp)
        w = np.clip(np.rint(np.sqrt(area / aspect)), 1, W).astype(np.intp)
        top = (rng.random(n) * (H - h + 1)).astype(np.intp)
        left = (rng.random(n) * (W - w + 1)).astype(np.intp)
        return apply, h, w, top, left

    def _apply(self, x, params):
        N, C, H, W = x.shape
        apply, h, w, top, left = params
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
            fill = current_rng().standard_normal(x.shape).astype(x.dtype)
        else:
            fill = np.asarray(self.value, dtype=x.dtype).reshape(1, -1, 1, 1)
        if self.inplace:
            np.copyto(x, np.broadcast_to(fill, x.shape), where=mask)
            return x
        return np.where(mask, fill, x)

    def _on_tensor(self, t):
        out = super()._on_tensor(t)
        if self.inplace:
            t._data[...] = out._data
            return t
        return out

    def _on_pil(self, img):
        raise TypeError(f"RandomErasing: img should be Tensor Image. Got {type(img)}")
