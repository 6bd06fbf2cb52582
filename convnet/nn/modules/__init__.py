"""Layers. Each submodule owns one family and lists its public names in ``__all__``."""
from .module import *  # noqa: F401,F403
from .container import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .separable import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .unpooling import *  # noqa: F401,F403
from .upsampling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from .pixelshuffle import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
