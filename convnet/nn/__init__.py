"""Neural-network layers (``import convnet.nn as nn``)."""
from . import init  # noqa: F401
from .parameter import Parameter  # noqa: F401
from .modules import *  # noqa: F401,F403
from .. import functional  # noqa: F401
