"""The model registry: build any zoo model by name.

Every family file registers its factories with :func:`register`; a factory takes
``num_classes`` and ``in_channels`` (keywords) plus its own options and returns an
``nn.Module``. :func:`create` is the one entry point the CLI and the tests use.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

__all__ = ["register", "create", "list_models", "load_weights"]

_REGISTRY: dict[str, Callable] = {}


def register(name: str | Callable | None = None, fn: Callable | None = None):
    """Register a model factory under ``name`` (defaults to the function's name).

    Usable as ``@register``, ``@register("name")`` or ``register("name", fn)``.
    Registering an existing name twice raises ``ValueError``.
    """
    def add(f: Callable, key: str | None) -> Callable:
        key = key or f.__name__
        if not isinstance(key, str) or not key:
            raise TypeError(f"register: model name must be a non-empty string, got {key!r}")
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ValueError(f"register: a model named {key!r} is already registered")
        _REGISTRY[key] = f
        return f

    if callable(name):  # bare @register
        return add(name, None)
    if fn is not None:
        return add(fn, name)
    return lambda f: add(f, name)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def _positive_int(op: str, arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {arg} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{op}: {arg} must be >= 1, got {value}")
    return int(value)


def create(name: str, num_classes: int = 10, in_channels: int = 1, **options):
    """Build the registered model ``name``.

    Args:
        name: one of :func:`list_models` (e.g. ``"lenet5"``, ``"resnet20"``).
        num_classes: size of the classifier output (or of the per-pixel output for
            ``unet``). Default 10 (MNIST / Fashion-MNIST / CIFAR-10).
        in_channels: image channels, 1 for grey, 3 for RGB. Default 1.
        **options: family options, for example ``small_input=True`` (stems adapted to
            28x28 / 32x32 images), ``width_mult``, ``groups``, ``dropout``.

    Returns:
        An ``nn.Module`` in training mode, float32 parameters.

    Example:
        >>> model = create("resnet20", num_classes=10, in_channels=1)
    """
    if not isinstance(name, str):
        raise TypeError(f"create: model name must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"create: unknown model {name!r}; available models: {', '.join(list_models())}"
        )
    num_classes = _positive_int(f"create({name!r})", "num_classes", num_classes)
    in_channels = _positive_int(f"create({name!r})", "in_channels", in_channels)
    try:
        return _REGISTRY[key](num_classes=num_classes, in_channels=in_channels, **options)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise TypeError(f"create({name!r}): unsupported option ({err})") from None
        raise


def _read(path: str) -> dict[str, np.ndarray]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if ext == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    raise ValueError(f"load_weights: unsupported file type {ext!r} for {path!r} "
                     "(expected .safetensors or .npz)")


def load_weights(model, path: str | os.PathLike, strict: bool = True):
    """Load a state dict saved as ``.safetensors`` (or ``.npz``) into ``model``.

    Keys follow torchvision's names, so a torchvision state dict written with
    ``safetensors.torch.save_file`` loads directly. PyTorch's BatchNorm counter
    ``num_batches_tracked`` is accepted and ignored when the model has no such
    buffer. Values are cast to the model's dtype. Returns ``(missing, unexpected)``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_weights: no such file {path!r}")
    state = _read(path)
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not (k.endswith("num_batches_tracked") and k not in own)}
    return model.load_state_dict(state, strict=strict)
