"""Data loading: datasets, the prefetching ``DataLoader``, transforms, dataset readers."""
from . import datasets, transforms  # noqa: F401
from .dataloader import DataLoader, default_collate  # noqa: F401
from .dataset import ArrayImageDataset, Dataset, Subset, TensorDataset, random_split  # noqa: F401
