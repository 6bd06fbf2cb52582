"""Bucket layout, and broadcast/allreduce in a world of one (no-ops that check their input)."""
import numpy as np
import pytest

import convnet as cn
import convnet.distributed as dist
from convnet import nn

MIB = 1 << 20


def test_buckets_fill_per_dtype_in_order():
    f4, f8 = np.dtype(np.float32), np.dtype(np.float64)
    shapes = [((MIB // 4,), f4),  # 1 MiB
              ((10,), f8),
              ((MIB // 4,), f4),  # 2 MiB with the first: still fits a 2 MiB bucket
              ((MIB // 8,), f4),  # would make 2.5 MiB: starts a new bucket
              ((3 * MIB // 4,), f4),  # 3 MiB alone: larger than a bucket, a bucket of its own
              ((5,), f8)]
    assert dist.bucket_layout(shapes, bucket_size_mb=2) == [
        (f4, [0, 2]), (f8, [1, 5]), (f4, [3]), (f4, [4])]
    assert dist.bucket_layout(shapes, bucket_size_mb=25) == [(f4, [0, 2, 3, 4]), (f8, [1, 5])]
    assert dist.bucket_layout(shapes, bucket_size_mb=0) == [
        (f4, [0]), (f8, [1]), (f4, [2]), (f4, [3]), (f4, [4]), (f8, [5])]
    with pytest.raises(ValueError, match="bucket_size_mb must be >= 0, got -1"):
        dist.bucket_layout(shapes, bucket_size_mb=-1)


def test_resnet20_gradients_fit_one_bucket():
    model = cn.models.resnet20()
    params = list(model.parameters())
    layout = dist.bucket_layout((p.shape, p.dtype) for p in params)
    assert len(params) > 50 and layout == [(np.dtype(np.float32), list(range(len(params))))]


def test_world_of_one_leaves_parameters_and_gradients_alone(rng):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    model(cn.tensor(rng.standard_normal((4, 3)).astype(np.float32))).sum().backward()
    model[2].bias.grad = None
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    dist.broadcast_parameters(model)
    dist.broadcast_parameters(model.state_dict())
    dist.broadcast_parameters(list(model.parameters()))
    dist.allreduce_gradients(model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None) == (g is None)
        if g is not None:
            np.testing.assert_array_equal(p.grad.numpy(), g)


def test_argument_errors():
    with pytest.raises(TypeError, match="broadcast_parameters: expected a Module, a state dict "
                                        "or an iterable of tensors, got a single Tensor"):
        dist.broadcast_parameters(cn.zeros(3))
    with pytest.raises(TypeError, match="broadcast_parameters: expected Tensors or NumPy "
                                        "arrays, got str"):
        dist.broadcast_parameters(["w"])
