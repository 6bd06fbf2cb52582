"""Data loading: datasets, the prefetching ``DataLoader``, transforms, dataset readers.

Also reachable as ``convnet.utils.data`` (torch.utils.data's names)."""
from . import datasets, transforms  # noqa: F401
from .dataloader import DataLoader, default_collate  # noqa: F401
from .dataset import (  # noqa: F401
    ArrayImageDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
    random_split,
)
