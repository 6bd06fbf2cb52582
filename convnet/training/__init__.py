"""Training: the ``Trainer`` loop, metrics, checkpoints (atomic safetensors), callbacks, plots."""
from .callbacks import Callback, EarlyStopping, RestoreBestWeights  # noqa: F401
from .checkpoint import (  # noqa: F401
    CheckpointError, load_checkpoint, load_weights, save_checkpoint, save_weights,
)
from .metrics import ConfusionMatrix, MetricAccumulator, topk_correct  # noqa: F401
from .trainer import Trainer, evaluate  # noqa: F401
from .distill import DistillationTrainer  # noqa: F401
from .distributed import DistributedTrainer  # noqa: F401
