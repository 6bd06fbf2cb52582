"""convnet: a convolutional-neural-network framework written from first principles on NumPy.

``import convnet as cn`` gives tensors with autograd; ``convnet.nn`` layers,
``convnet.functional`` (``F``) operations, ``convnet.optim`` optimizers.
"""
from .tensor import (  # noqa: F401
    Tensor, bool_, float32, float64, int32, int64, uint8,
)
from .tensor import bool_ as bool  # noqa: F401,A001
from .creation import *  # noqa: F401,F403
from .creation import abs, max, min, sum  # noqa: F401,A004
from .autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .random import manual_seed  # noqa: F401
from . import autograd, functional, nn, optim, random  # noqa: F401,E402

float = float32  # noqa: A001 - torch.float is float32
double = float64
long = int64

__version__ = "0.1.0"

_LAZY = {"analysis", "data", "filters", "io", "metrics", "models", "nas", "train", "training", "utils", "viz"}


def __getattr__(name: str):
    # Heavier subpackages load on first use: ``cn.models.create(...)`` works without an import.
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'convnet' has no attribute {name!r}")


def explore(model, dataset=None, class_names=None, **options):
    """Serve the interactive explorer of ``model`` on 127.0.0.1 (see ``convnet.explorer``)."""
    from .explorer import explore as _explore

    return _explore(model, dataset, class_names, **options)

from .autograd.grad_mode import inference_mode, is_inference_mode_enabled  # noqa: E402,F401

# Devices (issue 14): convnet runs on the CPU; torch's device API answers accordingly.
from .device import device  # noqa: E402,F401
from . import accelerator, backends, cuda  # noqa: E402,F401
from .serialization import load, save  # noqa: E402,F401

# torch's function forms of Tensor methods (cn.add(a, b, alpha=), cn.gather, cn.einsum, ...);
# their matmul (with out=) replaces creation's.
from .functions import *  # noqa: E402,F401,F403
from .tensor import Size  # noqa: E402,F401
