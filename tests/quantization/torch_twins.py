"""Helpers for the float-side quantization tests: the same model in convnet and torch
(same weights), torch names for convnet's quantization arguments, observer paths."""
from __future__ import annotations

import torch

from convnet import nn

TORCH_NAMES = {"quint8": torch.quint8, "qint8": torch.qint8, "qint32": torch.qint32,
               "per_tensor_affine": torch.per_tensor_affine,
               "per_tensor_symmetric": torch.per_tensor_symmetric,
               "per_channel_affine": torch.per_channel_affine,
               "per_channel_symmetric": torch.per_channel_symmetric,
               "per_channel_affine_float_qparams": torch.per_channel_affine_float_qparams}


def torch_kwargs(kw: dict) -> dict:
    """convnet observer kwargs with dtype/qscheme strings turned into torch's objects."""
    return {k: TORCH_NAMES.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}


def copy_weights(torch_model: torch.nn.Module, cn_model: nn.Module) -> None:
    """Load torch's parameters and buffers into the convnet twin (same state-dict keys)."""
    cn_model.load_state_dict({k: v.detach().numpy().copy()
                              for k, v in torch_model.state_dict().items()})


def randomize_bn(torch_model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN affine parameters and running statistics (so folding is exercised)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


def small_cnn_pair(dtype=torch.float32, seed: int = 0):
    """``conv-bn-relu-pool, conv(no bias)-bn, flatten, linear-relu, dropout, linear`` in
    torch and convnet with equal (seeded) weights, for 14x14 single-channel inputs."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        t = _torch_small_cnn()
    c = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(150, 10),
        nn.ReLU(), nn.Dropout(0.2), nn.Linear(10, 3))
    randomize_bn(t, seed)
    t = t.to(dtype)
    if dtype == torch.float64:
        c.double()
    copy_weights(t, c)
    return t, c


def _torch_small_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, bias=False), torch.nn.BatchNorm2d(6),
        torch.nn.Flatten(), torch.nn.Linear(150, 10), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(10, 3))


def observed_paths(model) -> list[str]:
    """Paths of the modules that own an ``activation_post_process`` (observer or fake quant),
    not counting the observers' own insides."""
    return sorted(n for n, m in model.named_modules()
                  if hasattr(m, "activation_post_process")
                  and not n.endswith("activation_post_process"))
