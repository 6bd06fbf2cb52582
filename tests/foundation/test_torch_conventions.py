"""Places where convnet silently differed from torch (issue 14): legacy loss flags, module
registration order, torchvision's child order. Each compares with torch."""
import warnings

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.functional as F
from convnet import nn

LEGACY = [(None, None), (True, True), (False, True), (True, False), (False, False),
          (None, False), (False, None)]


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "cross_entropy",
                                  "nll_loss", "binary_cross_entropy_with_logits", "kl_div"])
def test_legacy_loss_flags_follow_torch(rng, name, size_average, reduce):
    x = rng.standard_normal((6, 5))
    if name in ("cross_entropy", "nll_loss"):
        t = rng.integers(0, 5, 6)
        a = np.log(np.exp(x) / np.exp(x).sum(1, keepdims=True)) if name == "nll_loss" else x
    elif name == "kl_div":
        a, t = np.log(np.abs(x) + 0.1), rng.random((6, 5))
    else:
        a, t = x, rng.random((6, 5))
    kw = {"size_average": size_average, "reduce": reduce}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(torch.nn.functional, name)(torch.tensor(a), torch.tensor(t), **kw)
        got = getattr(F, name)(cn.tensor(a), cn.tensor(t), **kw)
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_legacy_loss_flags_on_layers_warn_and_map():
    x, t = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    with pytest.warns(UserWarning, match="reduction='sum'"):
        loss = nn.MSELoss(size_average=False)
    assert loss.reduction == "sum"
    with pytest.warns(UserWarning):
        assert nn.MSELoss(False).reduction == "sum"  # positional, as torch's signature
    with pytest.warns(UserWarning):
        assert nn.CrossEntropyLoss(reduce=False).reduction == "none"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch.nn.L1Loss(size_average=False)(torch.tensor(x), torch.tensor(t))
        got = nn.L1Loss(size_average=False)(cn.tensor(x), cn.tensor(t))
    assert got.item() == want.item() == 15.0


def test_reassigned_submodule_keeps_its_slot():
    def build(lib):
        m = lib.nn.Sequential()
        m.a, m.b, m.c = lib.nn.ReLU(), lib.nn.Linear(2, 3), lib.nn.Tanh()
        m.b = lib.nn.Linear(2, 4)  # replace in place
        m.register_buffer("r", lib.zeros(1))
        m.add_module("a", lib.nn.Sigmoid())
        m.register_buffer("r", lib.ones(1))
        return m

    ours, theirs = build(cn), build(torch)
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [type(c).__name__ for c in ours.children()] == ["Sigmoid", "Linear", "Tanh"]


def test_resnet_children_in_torchvision_order():
    from convnet import models

    names = [n for n, _ in models.create("resnet18", 10, 3).named_children()]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "fc"]


def test_data_is_a_tensor_sharing_memory_without_history(rng):
    a = rng.standard_normal((2, 3))
    for lib in (cn, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x * 2.0
        d = y.data
        assert isinstance(d, lib.Tensor) and not d.requires_grad and d.grad_fn is None \
            if lib is torch else isinstance(d, lib.Tensor) and not d.requires_grad and d.is_leaf
        d.mul_(0.0)  # shares memory; autograd does not see it (its own version counter)
        assert float(abs(y.detach()).sum()) == 0.0
        z = x.sigmoid()
        z.data.add_(1.0)  # no error on backward: .data changes are untracked, as torch
        z.sum().backward()
        w = x.detach()
        z2 = x.exp()
        w2 = z2.detach()
        w2.add_(1.0)  # detach shares the version counter: backward refuses
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z2.sum().backward()
        assert w.shape == (2, 3)


def test_data_assignment_swaps_the_storage():
    p = cn.nn.Parameter(cn.zeros(2))
    p.data = cn.ones(3)
    assert p.shape == (3,) and p.requires_grad
    np.testing.assert_array_equal(p.numpy(), 1.0)
    with pytest.raises(TypeError, match="must be a Tensor"):
        p.data = np.zeros(2)
    with pytest.raises(TypeError):
        torch.nn.Parameter(torch.zeros(2)).data = np.zeros(2)


@pytest.mark.parametrize("name,shape", [("dropout1d", (3, 5)), ("dropout1d", (2, 3, 5)),
                                        ("dropout2d", (4, 6)), ("dropout2d", (2, 3, 5)),
                                        ("dropout2d", (2, 3, 4, 4)), ("dropout3d", (2, 3, 2, 2)),
                                        ("dropout3d", (2, 3, 2, 2, 2))])
def test_feature_dropout_masks_the_same_axes_as_torch(name, shape):
    # which axes share one mask value: compare the pattern of constant blocks with torch's
    def shared_axes(y):
        y = np.asarray(y)
        return tuple(a for a in range(y.ndim) if np.all(y == y.take([0], axis=a)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        cn.manual_seed(0)
        ours = {shared_axes(getattr(F, name)(cn.ones(*shape, dtype=cn.float64), 0.5).numpy())
                for _ in range(20)}
        theirs = {shared_axes(getattr(torch.nn.functional, name)(
            torch.ones(*shape, dtype=torch.float64), 0.5).numpy()) for _ in range(20)}
    # the axes that are always constant within one draw agree (all draws, both libraries)
    assert set.intersection(*map(set, ours)) == set.intersection(*map(set, theirs))


def test_dropout1d_rank_error_as_torch():
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        torch.nn.functional.dropout1d(torch.ones(2, 3, 4, 4), 0.5)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(cn.ones(2, 3, 4, 4), 0.5)


def test_variable_is_the_tensor_as_in_torch():
    from convnet.autograd import Variable

    x = Variable(cn.ones(2), requires_grad=True)
    assert isinstance(x, cn.Tensor) and x.requires_grad
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3.0)
    assert isinstance(torch.autograd.Variable(torch.ones(2)), torch.Tensor)
    with cn.autograd.inference_mode():
        assert not cn.is_grad_enabled()


def test_weight_enums_import_and_refuse_clearly():
    from convnet.models import ResNet18_Weights, VGG16_Weights, resnet18

    assert ResNet18_Weights.DEFAULT is ResNet18_Weights.IMAGENET1K_V1
    assert VGG16_Weights.DEFAULT.name == "IMAGENET1K_V1"
    with pytest.raises(ValueError, match="load_weights"):
        resnet18(weights=ResNet18_Weights.DEFAULT)


def test_utils_data_after_a_plain_import():
    import subprocess
    import sys

    code = "import convnet as torch; print(torch.utils.data.DataLoader.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "DataLoader"


def test_weights_load_from_the_local_cache(tmp_path, monkeypatch):
    from convnet.io import save_file
    from convnet.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("CONVNET_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=str(tmp_path / "weights" / "resnet18.safetensors")):
        resnet18(weights=ResNet18_Weights.DEFAULT)
    cn.manual_seed(1)
    source = resnet18()
    (tmp_path / "weights").mkdir()
    save_file({k: v.numpy() for k, v in source.state_dict().items()},
              tmp_path / "weights" / "resnet18.safetensors")
    cn.manual_seed(2)
    for model in (resnet18(weights=ResNet18_Weights.DEFAULT), resnet18(pretrained=True),
                  resnet18(weights="IMAGENET1K_V1")):
        for (k, a), b in zip(model.state_dict().items(), source.state_dict().values()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
