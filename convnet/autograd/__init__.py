"""Reverse-mode automatic differentiation."""
from .function import Function, unbroadcast  # noqa: F401
from .grad_mode import (  # noqa: F401
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from .gradcheck import GradcheckError, gradcheck  # noqa: F401


def Variable(data, requires_grad: bool = False, volatile: bool = False):  # noqa: N802 - torch's name
    """torch's pre-0.4 wrapper, kept by torch as a no-op: returns ``data`` as a Tensor (with
    ``requires_grad`` set when asked). Old scripts that wrap inputs in ``Variable`` run as is."""
    from ..tensor import Tensor

    t = data if isinstance(data, Tensor) else Tensor(data)
    if requires_grad:
        t.requires_grad_(True)
    return t
