"""Tensor operators and methods against torch (float64 forward and gradients)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet as cn
from tests.helpers.oracle import check, tie_free

R = np.random.default_rng(0)


def randn(*shape):
    return R.standard_normal(shape)


def positive(*shape):
    return R.uniform(0.5, 2.0, shape)


BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
]

BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 1, 5), (3, 1)),
    ((1,), (2, 3)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((4, 1, 1), (1, 3, 1)),
]


@pytest.mark.parametrize("name,fn", BINARY)
@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS)
def test_binary_broadcast(name, fn, sa, sb):
    a = R.standard_normal(sa)
    b = R.uniform(0.5, 2.0, sb) * np.sign(R.standard_normal(sb) + 0.1)
    check(fn, fn, [a, b])


@st.composite
def broadcastable(draw):
    ndim = draw(st.integers(0, 4))
    base = draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim))
    a = [n if draw(st.booleans()) else 1 for n in base]
    b = [n if draw(st.booleans()) else 1 for n in base]
    a = a[draw(st.integers(0, ndim)):]
    b = b[draw(st.integers(0, ndim)):]
    return tuple(a), tuple(b)


@settings(max_examples=60, deadline=None)
@given(shapes=broadcastable(), op=st.sampled_from(BINARY), seed=st.integers(0, 2**16))
def test_binary_broadcast_property(shapes, op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes
    a = rng.standard_normal(sa)
    b = rng.uniform(0.5, 2.0, sb)
    check(op[1], op[1], [a, b], seed=seed)


@pytest.mark.parametrize("scalar", [2, 0.5, -3.0])
def test_scalar_operands(scalar):
    a = randn(3, 4)
    for fn in (lambda x: x + scalar, lambda x: scalar - x, lambda x: x * scalar,
               lambda x: scalar / (x * x + 1), lambda x: x / scalar, lambda x: -x):
        check(fn, fn, [a])


def test_pow_variants():
    a = positive(3, 4)
    check(lambda x: x**3, lambda x: x**3, [a])
    check(lambda x: x**-1.5, lambda x: x**-1.5, [a])
    check(lambda x: x**0.5, lambda x: x**0.5, [a])
    check(lambda x: 2.0**x, lambda x: 2.0**x, [a])
    check(lambda x, y: x**y, lambda x, y: x**y, [a, randn(4)])
    check(lambda x: x.pow(2), lambda x: x.pow(2), [randn(5)])


UNARY = [
    ("exp", lambda x: x.exp(), randn),
    ("log", lambda x: x.log(), positive),
    ("sqrt", lambda x: x.sqrt(), positive),
    ("abs", lambda x: x.abs(), randn),
    ("sigmoid", lambda x: x.sigmoid(), randn),
    ("tanh", lambda x: x.tanh(), randn),
    ("relu", lambda x: x.relu(), randn),
    ("clamp", lambda x: x.clamp(-0.5, 0.7), randn),
    ("clamp_min", lambda x: x.clamp(min=0.1), randn),
    ("clamp_max", lambda x: x.clamp(max=0.1), randn),
]


@pytest.mark.parametrize("name,fn,gen", UNARY)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
def test_unary(name, fn, gen, shape):
    check(fn, fn, [gen(*shape)])


def test_sigmoid_extreme_values_are_finite():
    x = cn.tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    assert np.all(np.isfinite(y.numpy())) and np.allclose(y.numpy(), [0, 0.5, 1])


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean(dim, keepdim):
    a = randn(2, 3, 4)
    if dim is None and keepdim:  # torch has no keepdim without dim: compare with NumPy
        x = cn.tensor(a, requires_grad=True)
        y = x.sum(None, True)
        assert y.shape == (1, 1, 1) and np.isclose(y.item(), a.sum())
        y.backward(cn.tensor(np.full((1, 1, 1), 2.0)))
        assert np.allclose(x.grad.numpy(), 2.0)
        return
    tdim = dim
    check(lambda x: x.sum(dim, keepdim) if dim is not None else x.sum(),
          lambda x: x.sum(tdim, keepdim) if dim is not None else x.sum(), [a])
    check(lambda x: x.mean(dim, keepdim) if dim is not None else x.mean(),
          lambda x: x.mean(tdim, keepdim) if dim is not None else x.mean(), [a])


@pytest.mark.parametrize("dim", [None, 0, 2, (1, 2)])
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var_std(dim, unbiased, keepdim):
    a = randn(3, 4, 5)
    if dim is None:
        check(lambda x: x.var(unbiased=unbiased), lambda x: x.var(unbiased=unbiased), [a])
        check(lambda x: x.std(unbiased=unbiased), lambda x: x.std(unbiased=unbiased), [a])
        return
    check(lambda x: x.var(dim, unbiased, keepdim), lambda x: x.var(dim, unbiased=unbiased, keepdim=keepdim), [a])
    check(lambda x: x.std(dim, unbiased, keepdim), lambda x: x.std(dim, unbiased=unbiased, keepdim=keepdim), [a])


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("which", ["max", "min"])
def test_max_min_dim_returns_values_and_indices(dim, keepdim, which):
    a = tie_free((3, 4, 5), R)
    out = check(lambda x: getattr(x, which)(dim, keepdim), lambda x: tuple(getattr(x, which)(dim, keepdim)), [a])
    assert out[1].dtype == cn.int64


def test_max_all_splits_gradient_among_ties_like_torch():
    a = np.array([[1.0, 3.0], [3.0, 2.0]])
    check(lambda x: x.max(), lambda x: x.max(), [a])
    check(lambda x: x.min(), lambda x: x.min(), [a])


def test_argmax_argmin():
    a = tie_free((4, 6), R)
    for dim in (None, 0, 1):
        for keep in (False, True):
            if dim is None and keep:
                continue
            c = cn.tensor(a)
            t = torch.tensor(a)
            kw = {} if dim is None else {"dim": dim, "keepdim": keep}
            np.testing.assert_array_equal(c.argmax(**kw).numpy(), t.argmax(**kw).numpy())
            np.testing.assert_array_equal(c.argmin(**kw).numpy(), t.argmin(**kw).numpy())


SHAPE_OPS = [
    ("reshape", lambda x: x.reshape(6, 4), lambda x: x.reshape(6, 4)),
    ("reshape_-1", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2)),
    ("view", lambda x: x.view(4, 6), lambda x: x.view(4, 6)),
    ("transpose", lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    ("flatten", lambda x: x.flatten(), lambda x: x.flatten()),
    ("flatten1", lambda x: x.flatten(1), lambda x: x.flatten(1)),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    ("unsqueeze_neg", lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    ("T", lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3)),
    ("repeat_lead", lambda x: x.repeat(2, 1, 1, 2), lambda x: x.repeat(2, 1, 1, 2)),
]


@pytest.mark.parametrize("name,cfn,tfn", SHAPE_OPS)
def test_shape_ops(name, cfn, tfn):
    check(cfn, tfn, [randn(2, 3, 4)])


def test_squeeze_expand():
    a = randn(3, 1, 4, 1)
    check(lambda x: x.squeeze(), lambda x: x.squeeze(), [a])
    check(lambda x: x.squeeze(1), lambda x: x.squeeze(1), [a])
    check(lambda x: x.squeeze(0), lambda x: x.squeeze(0), [a])
    check(lambda x: x.expand(2, 3, 5, 4, 2), lambda x: x.expand(2, 3, 5, 4, 2), [a])
    check(lambda x: x.expand(-1, 6, -1, 3), lambda x: x.expand(-1, 6, -1, 3), [a])


INDEXES = [
    1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, 1), (None, 0), (slice(None, None, 2), slice(1, None)),
    np.array([0, 2, 0]),  # repeated integer index: gradients accumulate
    (np.array([0, 1]), np.array([2, 3])),
    (slice(None), np.array([3, 3, 1])),
]


@pytest.mark.parametrize("idx", INDEXES, ids=range(len(INDEXES)))
def test_getitem(idx):
    a = randn(3, 4, 5)
    check(lambda x: x[idx], lambda x: x[torch.as_tensor(idx) if isinstance(idx, np.ndarray) else
                                       tuple(torch.as_tensor(i) if isinstance(i, np.ndarray) else i for i in idx)
                                       if isinstance(idx, tuple) else idx], [a])


def test_getitem_boolean_mask():
    a = randn(4, 5)
    mask = a > 0
    check(lambda x: x[mask], lambda x: x[torch.as_tensor(mask)], [a])
    check(lambda x: x[cn.tensor(mask)], lambda x: x[torch.as_tensor(mask)], [a])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack(dim):
    a, b, c = randn(2, 3), randn(2, 3), randn(2, 3)
    check(lambda x, y, z: cn.stack([x, y, z], dim), lambda x, y, z: torch.stack([x, y, z], dim), [a, b, c])
    b2 = randn(2, 3) if dim == 0 else b
    check(lambda x, y: cn.cat([x, y], dim), lambda x, y: torch.cat([x, y], dim), [a, b2])
    a3 = randn(4, 3)
    check(lambda x, y: cn.cat([x, y], 0), lambda x, y: torch.cat([x, y], 0), [a, a3])


def test_where():
    a, b = randn(3, 4), randn(4)
    cond = R.standard_normal((3, 4)) > 0
    check(lambda x, y: cn.where(cn.tensor(cond), x, y), lambda x, y: torch.where(torch.as_tensor(cond), x, y), [a, b])


MATMUL_SHAPES = [
    ((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb):
    check(lambda a, b: a @ b, lambda a, b: a @ b, [randn(*sa), randn(*sb)])


def test_dtype_rules():
    assert cn.tensor([1.0, 2.0]).dtype == cn.float32
    assert cn.tensor(np.array([1.0])).dtype == cn.float64
    assert cn.tensor([1, 2]).dtype == cn.int64
    assert cn.tensor([True]).dtype == cn.bool
    x = cn.tensor([1.0, 2.0])
    assert (x * 2).dtype == cn.float32 and (x + 1.5).dtype == cn.float32
    assert (x.double() + 1).dtype == cn.float64
    i = cn.tensor([1, 2])
    assert (i * 2).dtype == cn.int64
    assert (i / 2).dtype == cn.float32
    assert (i + x).dtype == cn.float32
    assert (x + x.double()).dtype == cn.float64
    assert x.long().dtype == cn.int64 and x.float().dtype == cn.float32
    assert cn.zeros(2, 3).dtype == cn.float32 and cn.arange(5).dtype == cn.int64
    assert cn.arange(0, 1, 0.25).shape == (4,)


def test_cast_gradient_returns_to_original_dtype():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == cn.float32 and np.allclose(x.grad.numpy(), 3)


def test_float32_ops_stay_float32():
    x = cn.randn(4, 5, requires_grad=True)
    w = cn.randn(5, 3, requires_grad=True)
    y = ((x @ w).relu() * 2 + 1).exp().log().mean(0).sum()
    y.backward()
    assert y.dtype == cn.float32 and x.grad.dtype == cn.float32 and w.grad.dtype == cn.float32


def test_factories():
    cn.manual_seed(0)
    a = cn.randn(2, 3)
    cn.manual_seed(0)
    b = cn.randn(2, 3)
    assert np.array_equal(a.numpy(), b.numpy()) and a.shape == (2, 3)
    assert cn.ones(2).numpy().tolist() == [1, 1]
    assert cn.full((2, 2), 7.0).numpy().sum() == 28
    assert cn.zeros_like(a).shape == a.shape and cn.ones_like(a).numpy().sum() == 6
    assert cn.empty(3, 4).shape == (3, 4)
    r = cn.rand(1000)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    arr = np.arange(3.0)
    shared = cn.from_numpy(arr)
    arr[0] = 10
    assert shared.numpy()[0] == 10 and shared.dtype == cn.float64
    assert cn.tensor(arr).numpy() is not arr


def test_item_numpy_array_protocol():
    x = cn.tensor([[1.5]])
    assert x.item() == 1.5 and float(x) == 1.5
    assert np.asarray(cn.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="item"):
        cn.tensor([1.0, 2.0]).item()


def test_comparisons_have_no_grad():
    x = cn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == cn.bool and not m.requires_grad
    assert m.numpy().tolist() == [False, True, True]
    assert (x == 2.0).numpy().tolist() == [False, True, False]


def test_max_returns_named_values_indices():
    x = cn.tensor(np.array([[1.0, 5.0], [7.0, 2.0]]))
    out = x.max(1)
    assert out.values.numpy().tolist() == [5.0, 7.0] and out.indices.numpy().tolist() == [1, 0]
    v, i = cn.max(x, 0)
    assert v.numpy().tolist() == [7.0, 5.0] and i.numpy().tolist() == [1, 0]
    assert cn.max(x, cn.tensor(np.full((2, 2), 3.0))).numpy().tolist() == [[3, 5], [7, 3]]


def test_norm_logsumexp_square():
    a = randn(3, 4)
    check(lambda x: x.norm(), lambda x: x.norm(), [a])
    check(lambda x: x.norm(1, 1), lambda x: x.norm(1, 1), [a])
    check(lambda x: x.norm(3, 0, True), lambda x: x.norm(3, 0, True), [a])
    check(lambda x: x.logsumexp(1), lambda x: x.logsumexp(1), [a * 50])
    check(lambda x: x.square(), lambda x: x.square(), [a])
