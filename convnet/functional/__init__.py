"""Differentiable operations with PyTorch's signatures (``import convnet.functional as F``).

Each submodule owns one family and lists its public names in ``__all__``.
"""
from .activation import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .resample import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .pixel_shuffle import *  # noqa: F401,F403
from .onehot import *  # noqa: F401,F403
from .grid import *  # noqa: F401,F403
