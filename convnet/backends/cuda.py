"""``convnet.backends.cuda``: torch's CUDA flags, kept so scripts that set them run; convnet
has no CUDA backend, so ``is_built()`` is False and the flags change nothing."""
from __future__ import annotations

from types import SimpleNamespace

# torch.backends.cuda.matmul.allow_tf32 (default False) is set by some training scripts.
matmul = SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                         allow_bf16_reduced_precision_reduction=True)


def is_built() -> bool:
    return False
