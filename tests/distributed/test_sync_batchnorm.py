"""SyncBatchNorm: its kernels with K simulated ranks against torch's BatchNorm over the
concatenated batch, the layer in a world of one (== BatchNorm), and convert_sync_batchnorm.
The layer across real MPI ranks is tested in test_mpi."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.distributed as dist
from convnet import nn
from convnet.distributed import norm_kernels as K


def _torch_bn(x, w, b, ct):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    y = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    y.backward(torch.tensor(ct))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_kernels_over_simulated_ranks_match_one_batch_norm(rng, dtype, tol):
    """Three 'ranks' with 2, 5 and 1 images: combine the moments, then the gradient sums."""
    x = (rng.standard_normal((8, 3, 4, 5)) * 2 + 5).astype(dtype)  # a mean far from 0
    ct = rng.standard_normal(x.shape).astype(dtype)
    w = rng.standard_normal(3).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    parts = [slice(0, 2), slice(2, 7), slice(7, 8)]
    moments = [K.local_moments(x[p].reshape(x[p].shape[0], 3, -1)) for p in parts]
    total, mean, var = K.combine_moments(np.array([m[0] for m in moments]),
                                         np.stack([m[1] for m in moments]),
                                         np.stack([m[2] for m in moments]))
    assert total == 8 * 20
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=tol)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=tol)
    invstd = (1 / np.sqrt(var + 1e-5)).astype(dtype)
    ys, sums, xcs = [], [], []
    for (_, mean_r, _, xc), p in zip(moments, parts):
        K.recentre(xc, mean_r - mean)
        xcs.append(xc)
        ys.append(K.affine(xc, invstd, w, b).reshape(x[p].shape))
        sums.append(K.grad_sums(ct[p].reshape(xc.shape), xc))
    sum_g = sum(s[0] for s in sums)
    sum_gxc = sum(s[1] for s in sums)
    gx = [K.input_grad(ct[p].reshape(xc.shape), xc, invstd, w, sum_g, sum_gxc, total)
          .reshape(x[p].shape) for xc, p in zip(xcs, parts)]
    y_ref, gx_ref, gw_ref, gb_ref = _torch_bn(x.astype(np.float64), w.astype(np.float64),
                                              b.astype(np.float64), ct.astype(np.float64))
    scale = 1 if dtype == np.float64 else 10
    np.testing.assert_allclose(np.concatenate(ys), y_ref, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(np.concatenate(gx), gx_ref, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(sum_gxc * invstd, gw_ref, rtol=tol * scale)  # weight gradient
    np.testing.assert_allclose(sum_g, gb_ref, rtol=tol * scale)  # bias gradient
    assert all(a.dtype == dtype for a in ys + gx)


def test_sync_batch_norm_function_in_a_world_of_one_matches_torch(rng):
    x = rng.standard_normal((4, 3, 5, 5)) + 2
    ct = rng.standard_normal(x.shape)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    xc, wc, bc = (cn.tensor(a, requires_grad=True) for a in (x, w, b))
    rm, rv = cn.zeros(3, dtype=cn.float64), cn.ones(3, dtype=cn.float64)
    y = dist.sync_batch_norm(xc, rm, rv, wc, bc, momentum=0.2)
    y.backward(cn.tensor(ct))
    y_ref, gx_ref, gw_ref, gb_ref = _torch_bn(x, w, b, ct)
    for got, ref in ((y, y_ref), (xc.grad, gx_ref), (wc.grad, gw_ref), (bc.grad, gb_ref)):
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-10, rtol=1e-8)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.2)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)  # unbiased variance


@pytest.mark.parametrize("momentum", [0.1, None])
def test_layer_in_a_world_of_one_is_batch_norm(rng, momentum):
    cn.manual_seed(0)
    sync = nn.SyncBatchNorm(4, momentum=momentum)
    plain = nn.BatchNorm2d(4, momentum=momentum)
    x = rng.standard_normal((3, 4, 6, 6)).astype(np.float32)
    for step in range(2):
        xs, xp = cn.tensor(x + step, requires_grad=True), cn.tensor(x + step, requires_grad=True)
        (sync(xs) ** 2).sum().backward()
        (plain(xp) ** 2).sum().backward()
        np.testing.assert_array_equal(xs.grad.numpy(), xp.grad.numpy())
    for k, v in plain.state_dict().items():
        np.testing.assert_array_equal(sync.state_dict()[k].numpy(), v.numpy())
    sync.eval(), plain.eval()
    np.testing.assert_array_equal(sync(cn.tensor(x)).numpy(), plain(cn.tensor(x)).numpy())
    assert nn.SyncBatchNorm is dist.SyncBatchNorm
    assert list(sync.state_dict()) == list(torch.nn.SyncBatchNorm(4).state_dict())


def test_layer_takes_2d_to_5d_inputs_and_checks_channels(rng):
    bn = nn.SyncBatchNorm(3)
    for shape in [(4, 3), (4, 3, 5), (2, 3, 4, 4), (2, 3, 2, 2, 2)]:
        assert bn(cn.tensor(rng.standard_normal(shape).astype(np.float32))).shape == shape
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected a 2-D or 3-D or 4-D or 5-D "
                                         r"input, got shape \(3,\)"):
        bn(cn.zeros(3))
    with pytest.raises(ValueError, match=r"expected 3 channels \(num_features\) but the input "
                                         r"has 2"):
        bn(cn.zeros(4, 2))


def test_convert_sync_batchnorm_replaces_every_batch_norm_and_keeps_the_tensors():
    model = cn.models.resnet20()
    model.eval()
    bns = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    before = model.state_dict(keep_vars=True)
    out = dist.convert_sync_batchnorm(model)
    assert out is model and len(bns) >= 19
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    after = dict(model.named_modules())
    for name, old in bns.items():
        new = after[name]
        assert type(new) is nn.SyncBatchNorm and not new.training
        assert new.weight is old.weight and new.running_var is old.running_var
        assert (new.eps, new.momentum, new.num_features) == (old.eps, old.momentum,
                                                              old.num_features)
    now = model.state_dict(keep_vars=True)
    assert list(now) == list(before) and all(now[k] is before[k] for k in before)
    # a BatchNorm itself is returned converted; InstanceNorm is not a batch norm
    assert type(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(2))) is nn.SyncBatchNorm
    inorm = nn.InstanceNorm2d(2)
    assert dist.convert_sync_batchnorm(inorm) is inorm
    no_stats = dist.convert_sync_batchnorm(nn.BatchNorm2d(2, affine=False,
                                                          track_running_stats=False))
    assert no_stats.weight is None and no_stats.running_mean is None
    with pytest.raises(TypeError, match="convert_sync_batchnorm: expected a Module, got int"):
        dist.convert_sync_batchnorm(3)
