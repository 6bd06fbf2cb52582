"""Alias of :mod:`convnet.training` (the issue tracker's name for the package): ``Trainer``,
metrics and checkpoints."""
from .training import (  # noqa: F401
    Callback, CheckpointError, ConfusionMatrix, EarlyStopping, MetricAccumulator, Trainer,
    evaluate, load_checkpoint, load_weights, save_checkpoint, save_weights, topk_correct,
)
