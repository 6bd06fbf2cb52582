"""Neural-network layers (``import convnet.nn as nn``)."""
import sys as _sys

from .. import functional  # noqa: F401
from . import init, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .parameter import Parameter  # noqa: F401

# ``import convnet.nn.functional as F`` names the same module as ``convnet.functional``
_sys.modules[__name__ + ".functional"] = functional

from . import parallel  # noqa: E402,F401
from .parallel import DataParallel  # noqa: E402,F401
# torch.nn.SyncBatchNorm's place; the layer lives with the rest of data parallelism
from ..distributed.sync_batchnorm import SyncBatchNorm  # noqa: E402,F401
