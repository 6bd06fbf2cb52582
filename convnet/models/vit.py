"""Vision Transformer (Dosovitskiy et al., "An image is worth 16x16 words: Transformers for
image recognition at scale", ICLR 2021).

The idea: cut the image into P x P patches, embed each with one linear map (a conv with
kernel = stride = P), prepend a learned class token, add learned position embeddings, and let
multi-head self-attention relate every patch to every other from the first layer on (a global
receptive field, where a CNN grows its field layer by layer). torchvision's layout and names
(``conv_proj``, ``class_token``, ``encoder.pos_embedding``, ``encoder.layers.encoder_layer_i``,
``encoder.ln``, ``heads.head``); vit_b_16 has 86,567,656 parameters at 1000 classes.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import nn
from ..creation import cat
from ..nn.modules.transformer import MultiheadAttention
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["EncoderBlock", "Encoder", "VisionTransformer", "vit_tiny", "vit_b_16"]


class MLPBlock(nn.Sequential):
    """fc (dim -> mlp_dim) -> GELU -> dropout -> fc (mlp_dim -> dim) -> dropout."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float):
        super().__init__(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(mlp_dim, dim), nn.Dropout(dropout))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block on ``(N, L, D)``:
    ``x = x + Dropout(MSA(LN(x)))``, then ``x = x + MLP(LN(x))``."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int, dropout: float,
                 attention_dropout: float, norm_eps: float = 1e-6):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=norm_eps)
        self.self_attention = MultiheadAttention(hidden_dim, num_heads,
                                                 dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=norm_eps)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Adds position embeddings ``(1, L, D)``, runs the blocks, normalises."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int,
                 mlp_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.pos_embedding = nn.Parameter(np.empty((1, seq_length, hidden_dim), np.float32))
        nn.init.normal_(self.pos_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}",
             EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout))
            for i in range(num_layers)))
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x):
        if x.shape[1:] != self.pos_embedding.shape[1:]:
            raise ValueError(f"ViT encoder: got {x.shape[1]} tokens of width {x.shape[2]}, "
                             f"position embeddings expect {tuple(self.pos_embedding.shape[1:])}")
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """ViT: ``(N, C, image_size, image_size) -> (N, num_classes)``.

    ``conv_proj`` (P x P conv, stride P) makes ``(image_size / P)^2`` patch tokens of width
    ``hidden_dim``; a class token is prepended; the encoder's output at the class token goes to
    ``heads.head``.

    Args:
        image_size, patch_size: input side (fixed, since position embeddings are learned per
            position) and patch side (must divide it).
        num_layers, num_heads, hidden_dim, mlp_dim: the encoder's size.
        dropout, attention_dropout: dropout after embeddings/attention/MLP and on weights.
        num_classes, in_channels: outputs and image channels (default 1000, 3).
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, num_layers: int = 12,
                 num_heads: int = 12, hidden_dim: int = 768, mlp_dim: int = 3072,
                 dropout: float = 0.0, attention_dropout: float = 0.0,
                 num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"VisionTransformer: image_size {image_size} is not divisible by "
                             f"patch_size {patch_size}")
        self.image_size, self.patch_size, self.hidden_dim = image_size, patch_size, hidden_dim
        self.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(np.zeros((1, 1, hidden_dim), np.float32))
        self.encoder = Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout,
                               attention_dropout)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))
        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    def forward(self, x):
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"VisionTransformer: expected {self.image_size}x{self.image_size} "
                             f"images, got input of shape {tuple(x.shape)} (set image_size)")
        x = self.conv_proj(x)                                # (N, D, H/P, W/P)
        x = x.reshape(n, self.hidden_dim, -1).transpose(1, 2)  # (N, L, D): one token per patch
        cls = self.class_token.expand(n, 1, self.hidden_dim)
        x = self.encoder(cat([cls, x], dim=1))
        return self.heads(x[:, 0])


def _input_rule(o: dict) -> InputRule:
    p = o["patch_size"]
    return InputRule(minimum=p, multiple=p, exact=o["input_size"] or o["image_size"],
                     why=f"one learned position per {p}x{p} patch")


def _input_fixes(side: int, o: dict) -> list[dict]:
    """Patch sides dividing ``side``: the largest leaving at least 4x4 patches first."""
    divisors = [p for p in range(side, 0, -1) if side % p == 0]
    return [{"input_size": side, "patch_size": p}
            for p in sorted(divisors, key=lambda p: (side // p < 4, -p))]


_VIT = dict(family="ViT", builds=VisionTransformer, input_rule=_input_rule,
            input_fixes=_input_fixes)


@register(**_VIT)
def vit_tiny(num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
             patch_size: int = 4, input_size: int | None = None, num_layers: int = 6,
             num_heads: int = 3, hidden_dim: int = 192, mlp_dim: int = 768,
             **options) -> VisionTransformer:
    """A small ViT for 28x28 / 32x32 images: patch 4 (49 or 64 tokens), DeiT-Tiny width
    (192, 3 heads, MLP 768) and 6 layers by default. ``input_size`` is accepted as an alias
    of ``image_size`` (the CLI passes it)."""
    return VisionTransformer(input_size or image_size, patch_size, num_layers, num_heads,
                             hidden_dim, mlp_dim, num_classes=num_classes,
                             in_channels=in_channels, **options)


@register(**_VIT)
def vit_b_16(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
             patch_size: int = 16, input_size: int | None = None, *, weights=None,
             progress: bool = True, **options) -> VisionTransformer:
    """ViT-Base/16 (224x224, 12 layers, 768 wide, 12 heads); torchvision-compatible names.
    ``input_size`` is an alias of ``image_size``; other sides need a ``patch_size`` that
    divides them (28x28: 7, 4 or 14). torchvision's defaults; ``weights`` must be None."""
    weights_file = pretrained_file("vit_b_16", weights, options)
    return local_weights(weights_file, VisionTransformer(input_size or image_size, patch_size, num_classes=num_classes,
                             in_channels=in_channels, **options))
