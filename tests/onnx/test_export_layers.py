"""convnet.onnx.export of single layers and functional ops: onnx.checker (full_check) and
onnxruntime agree with convnet at batch 1 and 3 from one export (dynamic batch)."""
from __future__ import annotations

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import nn

from .helpers import check_export, op_types, randomize


class Fn(nn.Module):
    """A module running ``fn(x)`` (functional ops under test)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


CONV = [
    (nn.Conv1d(4, 6, 3, stride=2, padding=1), (4, 11)),
    (nn.Conv1d(4, 6, 3, padding="same", dilation=2, padding_mode="circular"), (4, 9)),
    (nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2, bias=False), (4, 9, 8)),
    (nn.Conv2d(4, 4, (3, 2), stride=(2, 1), padding=(1, 0), padding_mode="reflect"), (4, 7, 6)),
    (nn.Conv2d(3, 6, 4, padding="same", padding_mode="replicate"), (3, 7, 7)),
    (nn.Conv2d(4, 4, 3, groups=4), (4, 6, 6)),
    (nn.Conv3d(2, 3, 2, stride=(1, 2, 2), padding=1), (2, 4, 5, 5)),
    (nn.ConvTranspose1d(4, 2, 3, stride=2, output_padding=1), (4, 5)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (4, 4, 5)),
    (nn.ConvTranspose2d(3, 2, 2, stride=2, dilation=2, bias=False), (3, 3, 3)),
    (nn.ConvTranspose3d(2, 2, 2, stride=2), (2, 2, 3, 3)),
]


@pytest.mark.parametrize("layer,shape", CONV, ids=[repr(c[0]) for c in CONV])
def test_convolutions(layer, shape):
    check_export(randomize(layer), shape)


POOL = [
    (nn.MaxPool2d(3, 2, padding=1), (3, 9, 9)),
    (nn.MaxPool2d(3, 2, ceil_mode=True), (3, 8, 8)),
    (nn.MaxPool2d(2, 2, ceil_mode=True, padding=1), (2, 7, 6)),
    (nn.MaxPool2d(3, 1, dilation=2), (2, 8, 8)),
    (nn.MaxPool1d(3, 2, ceil_mode=True), (2, 10)),
    (nn.MaxPool3d(2), (2, 4, 4, 5)),
    (nn.MinPool2d(2), (2, 6, 6)),
    (nn.AvgPool2d(3, 2, padding=1), (3, 9, 9)),
    (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), (3, 9, 8)),
    (nn.AvgPool2d(3, 2, ceil_mode=True), (3, 8, 8)),
    (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False), (3, 8, 8)),
    (nn.AvgPool2d(2, divisor_override=3), (2, 6, 6)),
    (nn.AvgPool1d(3, 2, ceil_mode=True), (2, 10)),
    (nn.AvgPool3d(2, padding=1), (2, 4, 4, 4)),
    (nn.AdaptiveAvgPool2d(1), (3, 5, 7)),
    (nn.AdaptiveAvgPool2d((2, 3)), (3, 6, 9)),
    (nn.AdaptiveAvgPool2d((3, 4)), (3, 7, 9)),
    (nn.AdaptiveAvgPool1d(3), (2, 10)),
    (nn.AdaptiveMaxPool2d(1), (3, 5, 7)),
    (nn.AdaptiveMaxPool2d((2, 2)), (3, 6, 6)),
    (nn.AdaptiveMaxPool2d((3, 2)), (3, 7, 5)),
    (nn.LPPool2d(2, 2), (2, 6, 6)),
    (nn.WeightedPool2d(3, 3, stride=2, padding=1) if hasattr(nn, "WeightedPool2d") else
     nn.Identity(), (3, 7, 7)),
]


@pytest.mark.parametrize("layer,shape", POOL, ids=[repr(c[0]) for c in POOL])
def test_pooling(layer, shape):
    check_export(randomize(layer), shape)


NORM = [
    (nn.BatchNorm1d(5), (5,)),
    (nn.BatchNorm1d(5), (5, 7)),
    (nn.BatchNorm2d(4), (4, 5, 5)),
    (nn.BatchNorm3d(2), (2, 3, 3, 3)),
    (nn.BatchNorm2d(4, affine=False), (4, 3, 3)),
    (nn.LayerNorm(6), (3, 6)),
    (nn.LayerNorm((4, 5)), (3, 4, 5)),
    (nn.LayerNorm(6, elementwise_affine=False), (6,)),
    (nn.GroupNorm(2, 6), (6, 4, 4)),
    (nn.GroupNorm(1, 4), (4, 3)),
    (nn.InstanceNorm2d(3, affine=True), (3, 5, 5)),
    (nn.InstanceNorm1d(3), (3, 8)),
    (nn.LocalResponseNorm(3), (6, 4, 4)),
    (nn.LocalResponseNorm(4, alpha=0.1, beta=0.5, k=2.0), (6, 3, 3)),
]


@pytest.mark.parametrize("layer,shape", NORM, ids=[repr(c[0]) for c in NORM])
def test_normalization(layer, shape):
    check_export(randomize(layer), shape)


ACT = [nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.GELU(), nn.GELU("tanh"),
       nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(-0.5, 2.0), nn.Sigmoid(),
       nn.Tanh(), nn.Softplus(), nn.Softplus(beta=2.0), nn.Softmax(dim=1),
       nn.LogSoftmax(dim=-1), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Identity()]


@pytest.mark.parametrize("layer", ACT, ids=[repr(a) for a in ACT])
def test_activations(layer):
    check_export(layer, (4, 5), make=lambda n: (np.random.RandomState(n).randn(n, 4, 5) * 4)
                 .astype(np.float32))


def test_dropout_is_an_identity_in_the_graph():
    proto = check_export(nn.Sequential(nn.Dropout(0.5), nn.Dropout2d(0.3), nn.ReLU()), (3, 4, 4))
    assert op_types(proto) == ["Relu"]


UPSAMPLE = [
    (nn.Upsample(scale_factor=2), (3, 4, 5)),
    (nn.Upsample(size=(7, 9)), (3, 4, 5)),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (2, 4, 5)),
    (nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True), (2, 4, 6)),
    (nn.Upsample(size=(5, 8), mode="bilinear"), (2, 3, 3)),
    (nn.Upsample(scale_factor=3, mode="nearest-exact"), (2, 3, 4)),
    (nn.Upsample(scale_factor=2, mode="bicubic"), (2, 4, 4)),
    (nn.Upsample(scale_factor=2, mode="linear"), (2, 5)),
    (nn.Upsample(scale_factor=2, mode="trilinear"), (2, 2, 3, 3)),
    (nn.Upsample(size=(3, 3), mode="area"), (2, 7, 6)),
    (nn.UpsamplingBilinear2d(scale_factor=2), (2, 3, 4)),
    (nn.UpsamplingNearest2d(size=(6, 6)), (2, 3, 4)),
]


@pytest.mark.parametrize("layer,shape", UPSAMPLE, ids=[repr(c[0]) for c in UPSAMPLE])
def test_upsample(layer, shape):
    proto = check_export(layer, shape)
    if layer.mode != "area":
        assert op_types(proto).count("Resize") == 1


FUNCTIONAL = {
    "interpolate_bilinear": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                     align_corners=False), (2, 3, 4)),
    "interpolate_nearest": (lambda x: F.interpolate(x, size=(6, 10)), (2, 3, 5)),
    "pad_constant": (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), (2, 3, 4)),
    "pad_crop": (lambda x: F.pad(x, (-1, 1)), (2, 3, 4)),
    "pad_reflect": (lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), (2, 4, 4)),
    "pad_replicate": (lambda x: F.pad(x, (1, 1), mode="replicate"), (2, 4)),
    "pad_circular": (lambda x: F.pad(x, (1, 2, 2, 1), mode="circular"), (2, 4, 4)),
    "pixel_shuffle": (lambda x: F.pixel_shuffle(x, 2), (8, 3, 2)),
    "pixel_unshuffle": (lambda x: F.pixel_unshuffle(x, 2), (2, 4, 6)),
    "channel_shuffle": (lambda x: F.channel_shuffle(x, 3), (6, 2, 2)),
    "arithmetic": (lambda x: ((x + 1.5) * x - x / 3.0 - 2.0) / (x.abs() + 1.0), (3, 4)),
    "reverse_ops": (lambda x: 2.0 - x + 3.0 * x - 1.0 / (x * x + 1.0) + 2.0 ** x, (3, 4)),
    "pow_sqrt_exp_log": (lambda x: (x * x).sqrt() + x.exp().log() + (x.abs() + 1) ** 1.5,
                         (3, 4)),
    "clamp": (lambda x: x.clamp(-0.5, 0.7) + x.clamp(min=0.1) + x.clamp(max=0.2), (3, 4)),
    "matmul": (lambda x: x @ x.transpose(1, 2), (3, 4)),
    "reshape_view_flatten": (lambda x: x.reshape(x.shape[0], -1).view(x.shape[0], 2, -1)
                             .flatten(1), (3, 4, 2)),
    "permute_transpose": (lambda x: x.permute(0, 3, 1, 2).transpose(1, 3), (2, 3, 4)),
    "squeeze_unsqueeze": (lambda x: x.unsqueeze(1).unsqueeze(-1).squeeze(-1), (3, 4)),
    "mean_sum": (lambda x: x.mean(dim=(2, 3)) + x.sum(dim=(1, 3)).mean(-1, keepdim=True)
                 + x.mean(), (3, 4, 5)),
    "var_std": (lambda x: x.var(dim=-1) + x.std(dim=1, keepdim=True).mean(2), (3, 4)),
    "max_min": (lambda x: x.max(dim=1).values + x.min(dim=1, keepdim=True).values.squeeze(1)
                + x.max(), (4, 5)),
    "softmax": (lambda x: F.softmax(x, dim=1) + F.log_softmax(x, dim=-1), (3, 4)),
    "cat_stack": (lambda x: convnet.cat([x, x * 2], dim=1) + convnet.stack([x, x], dim=1)
                  .reshape(x.shape[0], 6, 4), (3, 4)),
    "slicing": (lambda x: x[:, 1:3, ::2] + x[:, :2, 1::2] + x[:, -2:, -5::2], (4, 6)),
    "int_index": (lambda x: x[:, 0] + x[..., -1] + x[:, 1, None, :].squeeze(1), (3, 3)),
    "negative_step": (lambda x: x[:, ::-1] + x[:, ::-2].repeat(1, 2, 1), (4, 3)),
    "expand_repeat": (lambda x: x[:, :1].expand(-1, 4, 3) + x.repeat(1, 1, 1), (4, 3)),
    "split_chunk": (lambda x: sum(x.chunk(2, dim=1)) + x.split(1, dim=1)[0], (4, 3)),
    "index_select": (lambda x: x.index_select(1, convnet.tensor(np.array([2, 0, 2]))), (4, 3)),
    "where_const": (lambda x: convnet.where(convnet.tensor(np.array([True, False, True])),
                                            x, x * 2), (3,)),
    "hardtanh_relu6": (lambda x: F.hardtanh(x, -1, 1) + F.relu6(x * 4), (3, 4)),
    "gelu_exact": (lambda x: F.gelu(x * 3), (5,)),
    "silu_hardswish": (lambda x: F.silu(x) + F.hardswish(x * 4), (5,)),
    "leaky_elu": (lambda x: F.leaky_relu(x, 0.3) + F.elu(x, 0.5), (5,)),
    "inplace_relu": (lambda x: F.relu(x * 1.0, inplace=True) + 1.0, (5,)),
    "inplace_add": (lambda x: (lambda y: y.add_(x).mul_(2.0))(x * 3.0), (5,)),
    "sdpa": (lambda x: F.scaled_dot_product_attention(x, x * 0.5, x + 1.0), (3, 4, 6)),
    "sdpa_causal": (lambda x: F.scaled_dot_product_attention(x, x, x, is_causal=True),
                    (2, 5, 4)),
    "conv_functional_flip": (lambda x: F.convolve2d(x, convnet.tensor(
        np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3) / 10)), (1, 5, 5)),
    "einsum": (lambda x: convnet.einsum("nij,njk->nik", x, x), (3, 3)),
    "cast": (lambda x: x.double().float() * 2.0 + x.astype(np.float16).float(), (4,)),
    "log1p_expm1": (lambda x: x.abs().log1p() + (x * 0.1).expm1(), (4,)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional(name):
    fn, shape = FUNCTIONAL[name]
    check_export(Fn(fn), shape)


def test_constant_index_ops_with_a_static_batch():
    """gather/masked_fill take their index or mask as a constant: exact at the traced batch."""
    index = convnet.tensor(np.array([[0, 2], [1, 1]]))
    mask = convnet.tensor(np.array([[True, False, True], [False, False, True]]))
    check_export(Fn(lambda x: x.gather(1, index) + x.masked_fill(mask, -1.0)[:, :2]), (3,),
                 batches=(2,), dynamic_batch=False)
