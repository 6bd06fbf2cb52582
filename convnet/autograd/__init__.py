"""Reverse-mode automatic differentiation."""
from .function import Function, unbroadcast  # noqa: F401
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
