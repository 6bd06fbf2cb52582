"""Forward (and parameter-gradient) parity with models built from torch.nn in the test, weights
copied across, in float64; and torchvision-named weights loaded through safetensors."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import convnet as cn
import convnet.functional as F
import convnet.models as models
from convnet.models.googlenet import InceptionC
from tests.models import torch_refs


def _copy_and_randomise(ours, ref, rng):
    """Random BN statistics/affine (so eval mode is a real test) copied from torch to ours."""
    with torch.no_grad():
        for name, b in ref.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.tensor(rng.standard_normal(b.shape) * 0.1))
            elif name.endswith("running_var"):
                b.copy_(torch.tensor(rng.uniform(0.5, 1.5, b.shape)))
        for name, p in ref.named_parameters():
            if ".bn" in name or name.split(".")[-2:-1] and p.ndim == 1:
                p.add_(torch.tensor(rng.standard_normal(p.shape) * 0.05))
    own = ours.state_dict()
    state = {k: v.numpy() for k, v in ref.state_dict().items()
             if k in own or not k.endswith("num_batches_tracked")}
    ours.load_state_dict(state)


def _compare(ours, ref, x, train: bool, grads: bool = True, atol=1e-9):
    ours.train(train)
    ref.train(train)
    xc = cn.tensor(x)
    xt = torch.tensor(x)
    out_c, out_t = ours(xc), ref(xt)
    np.testing.assert_allclose(out_c.numpy(), out_t.detach().numpy(), rtol=1e-7, atol=atol)
    if not grads:
        return
    target = np.arange(x.shape[0]) % out_t.shape[1]
    F.cross_entropy(out_c, cn.tensor(target)).backward()
    torch.nn.functional.cross_entropy(out_t, torch.tensor(target)).backward()
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), rtol=1e-6,
                                   atol=atol, err_msg=name)
    if train:  # running statistics updated like torch's
        tb = dict(ref.named_buffers())
        for name, b in ours.named_buffers():
            np.testing.assert_allclose(b.numpy(), tb[name].numpy(), rtol=1e-7, atol=atol,
                                       err_msg=name)


def _pair(name, ref, **opts):
    ours = models.create(name, **opts).double()
    ref = ref.double()
    _copy_and_randomise(ours, ref, np.random.default_rng(0))
    return ours, ref


def test_lenet5_matches_torch():
    ours, ref = _pair("lenet5", torch_refs.LeNet5())
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28))
    _compare(ours, ref, x, train=True)


@pytest.mark.parametrize("train", [True, False])
def test_resnet20_matches_torch(train):
    ours, ref = _pair("resnet20", torch_refs.CifarResNet(20, 10, 3), in_channels=3)
    x = np.random.default_rng(2).standard_normal((2, 3, 12, 12))
    _compare(ours, ref, x, train=train)


def test_resnet18_matches_torch():
    ours, ref = _pair("resnet18", torch_refs.ResNet18(5, 2), num_classes=5, in_channels=2)
    x = np.random.default_rng(3).standard_normal((2, 2, 33, 33))
    _compare(ours, ref, x, train=True)


@pytest.mark.parametrize("train", [True, False])
def test_mobilenet_v2_matches_torch(train):
    ours, ref = _pair("mobilenet_v2", torch_refs.MobileNetV2(4, 3, width_mult=0.35, dropout=0.0),
                      num_classes=4, in_channels=3, width_mult=0.35, dropout=0.0)
    # 64x64 leaves a 2x2 final map: train-mode BN then averages 8 values, not 2 (ill-posed)
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64))
    _compare(ours, ref, x, train=train)


def test_mobilenet_v1_matches_torch():
    ours, ref = _pair("mobilenet_v1", torch_refs.MobileNetV1(6, 1), num_classes=6,
                      in_channels=1, dropout=0.0)
    x = np.random.default_rng(5).standard_normal((2, 1, 32, 32))
    _compare(ours, ref, x, train=False, grads=False)


@pytest.mark.parametrize("train", [True, False])
def test_shufflenet_v2_matches_torch(train):
    ref = torch_refs.ShuffleNetV2((2, 2, 2), (8, 16, 32, 64, 48), num_classes=5, in_channels=3)
    ours = models.ShuffleNetV2((2, 2, 2), (8, 16, 32, 64, 48), num_classes=5, in_channels=3)
    ours, ref = ours.double(), ref.double()
    _copy_and_randomise(ours, ref, np.random.default_rng(6))
    x = np.random.default_rng(7).standard_normal((2, 3, 29, 29))
    _compare(ours, ref, x, train=train)


def test_inception_v3_block_matches_torch():
    ref, ours = torch_refs.InceptionC(24, 8).double(), InceptionC(24, 8).double()
    _copy_and_randomise(ours, ref, np.random.default_rng(8))
    x = np.random.default_rng(9).standard_normal((2, 24, 9, 7))
    ours.eval()
    ref.eval()
    out = ours(cn.tensor(x))
    assert out.shape == (2, 768, 9, 7)
    np.testing.assert_allclose(out.numpy(), ref(torch.tensor(x)).detach().numpy(), atol=1e-9)


def test_vit_tiny_matches_torch():
    opts = dict(num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24)
    ours = models.create("vit_tiny", num_classes=5, in_channels=1, image_size=12,
                         patch_size=4, **opts).double()
    ref = torch_refs.ViT(12, 4, 2, 2, 16, 24, 5, 1).double()
    rng = np.random.default_rng(10)
    with torch.no_grad():  # torchvision zero-inits the head; randomise so outputs differ
        for p in ref.parameters():
            p.copy_(torch.tensor(rng.standard_normal(p.shape) * 0.2))
    _copy_and_randomise(ours, ref, rng)
    x = rng.standard_normal((3, 1, 12, 12))
    _compare(ours, ref, x, train=False)


def test_torch_weights_load_through_safetensors(tmp_path):
    """A torch model's state dict (with BN's num_batches_tracked) saved as safetensors loads
    into the float32 convnet model and gives the same outputs."""
    torch.manual_seed(0)
    ref = torch_refs.ShuffleNetV2((1, 2, 1), (8, 16, 32, 64, 40), num_classes=3, in_channels=1)
    ref.train()
    with torch.no_grad():
        ref(torch.randn(4, 1, 32, 32))  # move the running statistics away from 0 / 1
    ref.eval()
    path = tmp_path / "shufflenet.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    ours = models.ShuffleNetV2((1, 2, 1), (8, 16, 32, 64, 40), num_classes=3, in_channels=1)
    models.load_weights(ours, path)
    ours.eval()
    x = np.random.default_rng(11).standard_normal((2, 1, 32, 32)).astype(np.float32)
    out = ours(cn.tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_inception_v1_block_matches_torch():
    from convnet.models.googlenet import Inception

    ref, ours = torch_refs.Inception(12, 4, 3, 5, 2, 3, 6).double(), \
        Inception(12, 4, 3, 5, 2, 3, 6).double()
    _copy_and_randomise(ours, ref, np.random.default_rng(12))
    x = np.random.default_rng(13).standard_normal((2, 12, 7, 6))
    ours.train()
    ref.train()
    out = ours(cn.tensor(x))
    assert out.shape == (2, 4 + 5 + 3 + 6, 7, 6)
    np.testing.assert_allclose(out.numpy(), ref(torch.tensor(x)).detach().numpy(), atol=1e-9)


@pytest.mark.parametrize("size", [(16, 16), (13, 10)])
def test_unet_matches_torch(size):
    ours = models.create("unet", num_classes=3, in_channels=2, base_channels=4,
                         depth=2).double()
    ref = torch_refs.UNet(3, 2, 4, 2).double()
    _copy_and_randomise(ours, ref, np.random.default_rng(14))
    x = np.random.default_rng(15).standard_normal((2, 2) + size)
    ours.train()
    ref.train()
    xc, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_c, out_t = ours(xc), ref(xt)
    np.testing.assert_allclose(out_c.numpy(), out_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    w = np.random.default_rng(16).standard_normal(out_t.shape)
    (out_c * cn.tensor(w)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-9)
