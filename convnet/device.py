"""``convnet.device``: where a tensor lives. convnet computes with NumPy, so only ``'cpu'`` holds
data; the other device types can be *named* (``cn.device('cuda')`` builds, as in torch, so
``device = cn.device('cuda' if cn.cuda.is_available() else 'cpu')`` runs), but asking a tensor,
a factory or a module to go there raises one :class:`RuntimeError` that says why.

``str(cn.device('cpu', 0)) == 'cpu:0'``; ``repr`` is ``device(type='cpu', index=0)``; devices
compare equal to devices (a device never equals a string, as in torch).
"""
from __future__ import annotations

__all__ = ["device", "check_device", "CPU"]

# The device types torch's parser accepts (and in its order, for the error message).
_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
          "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")

_NOT_HERE = (
    "convnet runs on the CPU; {what} asked for device {dev!r}. GPU support: convnet computes "
    "with NumPy on the CPU only (there is no CUDA/MPS backend). Use device='cpu' or pick the "
    "device as torch scripts do: cn.device('cuda' if cn.cuda.is_available() else 'cpu')."
)


class device:
    """A device name: ``device('cpu')``, ``device('cpu', 0)``, ``device('cuda:1')`` or a copy of
    another device. ``.type`` is the kind (``'cpu'``), ``.index`` the ordinal or ``None``.

    Only ``'cpu'`` can hold tensors; :func:`check_device` turns any other into the error above.
    Used as a context manager (``with cn.device('cpu'):``) it changes nothing (the CPU is
    already the default).
    """

    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            self._type, self._index = type.type, type.index
            return
        if isinstance(type, bool) or not isinstance(type, str):
            if isinstance(type, int):  # torch reads an int as "the accelerator with this index"
                raise RuntimeError(_NOT_HERE.format(what="device()", dev=type))
            raise TypeError(f"device(): expected a string such as 'cpu' or a device, "
                            f"got {_tname(type)}")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise TypeError(f"device(): argument 'index' (position 2) must be int, "
                            f"not {_tname(index)}")
        if not type:
            raise RuntimeError("Device string must not be empty")
        kind, sep, ordinal = type.partition(":")
        if kind not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of "
                               f"device string: {type}")
        if sep:
            if index is not None:
                raise RuntimeError(f"device(): type (string) {type!r} must not include an index "
                                   "because an index was passed explicitly")
            if not ordinal.isdigit() or (len(ordinal) > 1 and ordinal[0] == "0"):
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(ordinal)
        if index is not None and index < 0:
            raise RuntimeError("Device index must not be negative")
        self._type, self._index = kind, index

    @property
    def type(self) -> str:  # noqa: A003
        return self._type

    @property
    def index(self) -> int | None:
        return self._index

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, device):
            return False  # torch: device('cpu') == 'cpu' is False
        return (self._type, self._index) == (other._type, other._index)

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __reduce__(self):
        return (device, (self._type, self._index))

    def __enter__(self) -> "device":
        check_device(self, "with device(...)")
        return self

    def __exit__(self, *exc) -> None:
        return None


def _tname(obj) -> str:
    return type(obj).__name__


CPU = device("cpu")


def check_device(dev, what: str = "this operation") -> device:
    """``dev`` (``None``, a string, an int or a :class:`device`) as a device, which must be the
    CPU; anything else raises the RuntimeError that names ``what`` asked for it."""
    if dev is None:
        return CPU
    if isinstance(dev, int) and not isinstance(dev, bool):
        raise RuntimeError(_NOT_HERE.format(what=what, dev=str(dev)))
    d = dev if isinstance(dev, device) else device(dev)
    if d.type != "cpu":
        raise RuntimeError(_NOT_HERE.format(what=what, dev=str(d)))
    return CPU if d.index is None else d


def _is_device_like(obj) -> bool:
    if isinstance(obj, device) or (isinstance(obj, int) and not isinstance(obj, bool)):
        return True
    return isinstance(obj, str) and obj.partition(":")[0] in _TYPES


def parse_to(what: str, args: tuple, kwargs: dict) -> tuple:
    """Read the arguments of torch's ``.to`` overloads and return ``(device, dtype, copy)``
    (``device`` checked to be the CPU, ``dtype`` or ``None``):

    ``to(dtype, non_blocking=False, copy=False)``, ``to(device=None, dtype=None,
    non_blocking=False, copy=False)``, ``to(other, non_blocking=False, copy=False)`` (other's
    dtype and device). ``non_blocking`` and ``memory_format`` are accepted and change nothing
    (copies are synchronous; arrays are C-ordered). A dtype name such as ``'float64'`` is read
    as a dtype (convnet's ``astype`` accepts names; torch would reject it as a device).
    """
    kwargs = dict(kwargs)
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise TypeError(f"{what}: unexpected keyword argument(s) {sorted(unknown)}")
    kwargs.pop("memory_format", None)
    args = list(args)
    dev = dtype = None
    names: list[str]
    first = args[0] if args else None
    if args and hasattr(first, "_data") and hasattr(first, "dtype"):  # to(other_tensor)
        args.pop(0)
        dtype = first.dtype
        names = ["non_blocking", "copy"]
        for k in ("device", "dtype"):
            if k in kwargs:
                raise TypeError(f"{what}: {k}= cannot be combined with a tensor argument")
    elif args and (first is None or _is_device_like(first)):  # to(device, dtype, ...)
        names = ["device", "dtype", "non_blocking", "copy"]
    else:  # to(dtype, non_blocking, copy)
        names = ["dtype", "non_blocking", "copy"]
    if len(args) > len(names):
        raise TypeError(f"{what}: takes at most {len(names)} positional arguments for this "
                        f"form, got {len(args)}")
    for k, v in zip(names, args):
        if k in kwargs:
            raise TypeError(f"{what}: got multiple values for argument {k!r}")
        kwargs[k] = v
    for k in ("non_blocking", "copy"):
        if not isinstance(kwargs.get(k, False), bool):
            raise TypeError(f"{what}: {k} must be a bool, got {type(kwargs[k]).__name__}")
    dev = kwargs.get("device")
    if kwargs.get("dtype") is not None:
        dtype = kwargs["dtype"]
    if isinstance(dtype, str) and _is_device_like(dtype):
        raise TypeError(f"{what}: expected a dtype, got the device {dtype!r}")
    return check_device(dev, what), dtype, bool(kwargs.get("copy", False))


def parameter_dtype(what: str, device=None, dtype=None):
    """For layer constructors' ``device=``/``dtype=`` (torch's factory keywords): the device
    must be the CPU; returns the parameters' dtype, float32 by default, which must be a
    floating-point type (integer parameters could not require gradients)."""
    from .tensor import as_dtype, float32

    check_device(device, f"{what}(device=...)")
    dt = float32 if dtype is None else as_dtype(dtype)
    if dt.kind != "f":
        raise RuntimeError(f"{what}: parameters need a floating-point dtype (they require "
                           f"gradients), got dtype={dt}")
    return dt
