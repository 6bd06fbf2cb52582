"""torch.utils' counterpart: ``convnet.utils.data`` is :mod:`convnet.data` itself (the same
module object, so ``DataLoader``, ``Dataset``, ``TensorDataset``, ``random_split``,
``Subset`` and ``ConcatDataset`` are the same classes under both names)."""
import sys

from .. import data
from ..data import dataloader as _dataloader, dataset as _dataset

# Register the alias (and its submodules) so ``import convnet.utils.data.dataset`` finds the
# already loaded modules instead of loading a second copy with distinct classes.
sys.modules[__name__ + ".data"] = data
sys.modules[__name__ + ".data.dataset"] = _dataset
sys.modules[__name__ + ".data.dataloader"] = _dataloader

__all__ = ["data"]
