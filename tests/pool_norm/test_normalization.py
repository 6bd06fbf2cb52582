"""Batch, instance, layer and group norm (functional and layers) against torch in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
import convnet.nn as nn
from convnet.autograd import gradcheck
from tests.helpers.oracle import check


@pytest.mark.parametrize("seed", range(12))
def test_batch_norm_training_random_shapes(seed):
    rng = np.random.default_rng(seed)
    nd = seed % 4  # (N, C), (N, C, L), (N, C, H, W), (N, C, D, H, W)
    shape = (int(rng.integers(2, 5)), int(rng.integers(1, 5))) + \
        tuple(int(v) for v in rng.integers(1, 5, nd))
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    check(lambda t, u, v: F.batch_norm(t, None, None, u, v, True, 0.1, 1e-3),
          lambda t, u, v: TF.batch_norm(t, None, None, u, v, True, 0.1, 1e-3), [x, w, b])
    check(lambda t: F.batch_norm(t, None, None, training=True),
          lambda t: TF.batch_norm(t, None, None, training=True), [x])


def test_batch_norm_eval_uses_running_stats():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5, 2))
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    check(lambda t, u, v: F.batch_norm(t, cn.tensor(rm), cn.tensor(rv), u, v, False),
          lambda t, u, v: TF.batch_norm(t, torch.tensor(rm), torch.tensor(rv), u, v, False),
          [x, w, b])
    check(lambda t: F.batch_norm(t, cn.tensor(rm), cn.tensor(rv)),
          lambda t: TF.batch_norm(t, torch.tensor(rm), torch.tensor(rv)), [x])


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("dims", [2, 3, 4, 5])
def test_batchnorm_layer_running_stats_then_eval(momentum, dims):
    """Several training steps (forward + backward) update running mean / unbiased var like
    torch; eval mode then normalizes with them."""
    rng = np.random.default_rng(dims)
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[dims]
    ours = getattr(nn, cls)(3, momentum=momentum).double()
    ref = getattr(torch.nn, cls)(3, momentum=momentum).double()
    ours.weight.numpy()[:] = rng.standard_normal(3)
    ref.weight.data[:] = torch.tensor(ours.weight.numpy())
    shape = (4, 3) + (3,) * (dims - 2)
    for _ in range(4):
        x = rng.standard_normal(shape) * 2 + 0.5
        check(ours, ref, [x])
    np.testing.assert_allclose(ours.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.running_var.numpy(), ref.running_var.numpy(), rtol=1e-10)
    assert int(ours.num_batches_tracked.item()) == int(ref.num_batches_tracked) == 4
    ours.eval()
    ref.eval()
    check(ours, ref, [rng.standard_normal(shape)])
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-8)


def test_batchnorm_without_running_stats_and_affine():
    rng = np.random.default_rng(2)
    ours = nn.BatchNorm2d(3, affine=False, track_running_stats=False).double()
    ref = torch.nn.BatchNorm2d(3, affine=False, track_running_stats=False).double()
    assert ours.running_mean is None and list(ours.parameters()) == []
    x = rng.standard_normal((2, 3, 4, 4))
    check(ours, ref, [x])
    ours.eval()
    ref.eval()
    check(ours, ref, [x])  # still batch statistics


def test_batchnorm_state_dict_keys_match_torch():
    assert list(nn.BatchNorm2d(4).state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    assert list(nn.LayerNorm(4).state_dict()) == list(torch.nn.LayerNorm(4).state_dict())


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("dims", [3, 4, 5])
def test_instance_norm_layers(affine, track, dims):
    rng = np.random.default_rng(dims)
    cls = f"InstanceNorm{dims - 2}d"
    ours = getattr(nn, cls)(3, affine=affine, track_running_stats=track).double()
    ref = getattr(torch.nn, cls)(3, affine=affine, track_running_stats=track).double()
    if affine:
        ours.weight.numpy()[:] = rng.standard_normal(3)
        ref.weight.data[:] = torch.tensor(ours.weight.numpy())
    shape = (2, 3) + (4,) * (dims - 2)
    for _ in range(2):
        check(ours, ref, [rng.standard_normal(shape)])
    if track:
        np.testing.assert_allclose(ours.running_mean.numpy(), ref.running_mean.numpy())
        np.testing.assert_allclose(ours.running_var.numpy(), ref.running_var.numpy())
    ours.eval()
    ref.eval()
    check(ours, ref, [rng.standard_normal(shape)])
    check(ours, ref, [rng.standard_normal(shape[1:])])  # unbatched


@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4, 5), (4, 5)),
                                              ((2, 3, 4), (2, 3, 4)), ((7, 1), 1)])
def test_layer_norm(shape, normalized):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w, b = rng.standard_normal(ns), rng.standard_normal(ns)
    check(lambda t, u, v: F.layer_norm(t, normalized, u, v),
          lambda t, u, v: TF.layer_norm(t, ns, u, v), [x, w, b])
    check(lambda t: F.layer_norm(t, normalized, eps=1e-3),
          lambda t: TF.layer_norm(t, ns, eps=1e-3), [x])
    ours, ref = nn.LayerNorm(normalized).double(), torch.nn.LayerNorm(normalized).double()
    check(ours, ref, [x])
    ours = nn.LayerNorm(normalized, elementwise_affine=False)
    check(ours, torch.nn.LayerNorm(normalized, elementwise_affine=False), [x])


@pytest.mark.parametrize("groups,shape", [(1, (2, 4, 3, 3)), (2, (3, 4, 5)), (4, (1, 4, 2, 3)),
                                          (3, (2, 6, 2, 2, 2)), (2, (5, 4))])
def test_group_norm(groups, shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    check(lambda t, u, v: F.group_norm(t, groups, u, v),
          lambda t, u, v: TF.group_norm(t, groups, u, v), [x, w, b])
    check(nn.GroupNorm(groups, c).double(), torch.nn.GroupNorm(groups, c).double(), [x])
    check(nn.GroupNorm(groups, c, affine=False), torch.nn.GroupNorm(groups, c, affine=False), [x])


def test_gradcheck_norms():
    rng = np.random.default_rng(5)
    x = cn.tensor(rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    w = cn.tensor(rng.standard_normal(2), requires_grad=True)
    b = cn.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda t, u, v: F.batch_norm(t, None, None, u, v, True), [x, w, b])
    assert gradcheck(lambda t, u, v: F.instance_norm(t, weight=u, bias=v), [x, w, b])
    assert gradcheck(lambda t, u, v: F.group_norm(t, 1, u, v), [x, w, b])
    rm, rv = cn.tensor(rng.standard_normal(2)), cn.tensor(rng.random(2) + 0.5)
    assert gradcheck(lambda t, u, v: F.batch_norm(t, rm, rv, u, v, False), [x, w, b])
    wl = cn.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    assert gradcheck(lambda t, u: F.layer_norm(t, (2, 2), u), [x, wl])


def test_float32_norm_accuracy_and_dtype():
    rng = np.random.default_rng(6)
    x64 = rng.standard_normal((8, 4, 6, 6)) * 5 + 3
    m = nn.BatchNorm2d(4)
    x = cn.tensor(x64.astype(np.float32), requires_grad=True)
    y = m(x)
    (y * y).sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert m.running_mean.dtype == np.float32 and m.weight.grad.dtype == np.float32
    xt = torch.tensor(x64.astype(np.float32), requires_grad=True)
    ref_m = torch.nn.BatchNorm2d(4)
    ref = ref_m(xt)
    (ref * ref).sum().backward()
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(m.weight.grad.numpy(), ref_m.weight.grad.numpy(), rtol=1e-4)
    np.testing.assert_allclose(m.running_var.numpy(), ref_m.running_var.numpy(), rtol=1e-5)


@pytest.mark.parametrize("size,shape", [(1, (2, 3, 4)), (2, (2, 5, 3, 3)), (5, (1, 7, 2, 3)),
                                        (4, (2, 3, 2, 2, 2))])
def test_local_response_norm(size, shape):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(shape)
    check(lambda t: F.local_response_norm(t, size, 0.5, 0.75, 2.0),
          lambda t: TF.local_response_norm(t, size, 0.5, 0.75, 2.0), [x])
    check(nn.LocalResponseNorm(size), torch.nn.LocalResponseNorm(size), [x])


def test_batchnorm_loads_torch_state_dict():
    rng = np.random.default_rng(7)
    ref = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(3)))
        ref.bias.copy_(torch.tensor(rng.standard_normal(3)))
    ref(torch.tensor(rng.standard_normal((4, 3, 2, 2))))  # moves the running statistics
    ref.eval()
    ours = nn.BatchNorm2d(3).double()
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    ours.eval()
    check(ours, ref, [rng.standard_normal((2, 3, 2, 2))])


@pytest.mark.parametrize("workers", [2, 3])
def test_batch_norm_eval_split_between_workers(monkeypatch, workers):
    """Large eval-mode batch norms split the images between the chunk workers."""
    import convnet.kernels.norm as KN
    import convnet.kernels.parallel as P

    monkeypatch.setattr(KN, "workers", lambda: workers)
    monkeypatch.setattr(P, "_workers", lambda: workers)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 3, 120, 110))  # above the size where splitting starts
    assert x.size >= KN._PARALLEL_MIN
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    got = F.batch_norm(cn.tensor(x), cn.tensor(rm), cn.tensor(rv), cn.tensor(w), cn.tensor(b)).numpy()
    want = TF.batch_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv), torch.tensor(w),
                         torch.tensor(b)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
