"""Issue 14, Tensor API: torch's printing, Size, grad_fn, type/new_*, arithmetic functions,
sorting/indexing ops, one_hot, einsum — each checked against torch (values, gradients with
random cotangents in float64, error types)."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.functional as F
from tests.helpers.oracle import check, tie_free


def raises_like(cn_call, torch_call):
    """convnet raises the exception type torch raises (or a subclass of it)."""
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)):
        cn_call()


# ----------------------------------------------------------------- printing
PRINT_CASES = [
    np.array([5.5, 3.0], np.float32),
    np.array([1.0, 2.0, -3.0], np.float32),
    np.array([1, 2, 300], np.int64),
    np.array([True, False]),
    np.array(3.5, np.float32),
    np.array(7, np.int64),
    np.array([1e-5, 1.0], np.float32),
    np.array([1e9, 1.0], np.float32),
    np.array([1.0, 2000.0], np.float32),
    np.array([0.0, np.nan, np.inf, -np.inf, 1.5], np.float32),
    np.array([0.0, 0.0], np.float32),
    np.array([np.nan, 1.0], np.float32),
    np.zeros((0,), np.float32),
    np.zeros((0, 3), np.float32),
    np.zeros((0,), np.int64),
    np.array([1.25, 2.0], np.float64),
    np.array([1, 2], np.int32),
    np.array([1, 2], np.uint8),
    np.arange(30, dtype=np.float32) / 7,
    np.arange(2000, dtype=np.int64),
    np.arange(1200, dtype=np.float32).reshape(40, 30) / 3,
]


@pytest.mark.parametrize("i", range(len(PRINT_CASES)))
def test_repr_matches_torch(i):
    a = PRINT_CASES[i]
    expected = repr(torch.tensor(a)).replace("torch.", "convnet.")
    assert repr(cn.tensor(a)) == expected


def test_repr_of_random_tensors_and_nested_dims_matches_torch(rng):
    for shape in [(3, 4), (2, 3, 4), (2, 1, 2, 3), (1, 25), (12,)]:
        a = (rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 3)).astype(np.float32)
        assert repr(cn.tensor(a)) == repr(torch.tensor(a))
        b = rng.integers(-1000, 1000, shape)
        assert repr(cn.tensor(b)) == repr(torch.tensor(b))


def test_repr_suffixes_requires_grad_and_grad_fn_match_torch(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x, tx = cn.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert repr(x) == repr(tx)
    for f in (lambda t: t + 1, lambda t: (t * 2).sum(), lambda t: t.exp(), lambda t: t.relu()):
        assert repr(f(x)) == repr(f(tx))
    x64 = cn.tensor(a.astype(np.float64), requires_grad=True)
    assert repr(x64 * 2) == repr(torch.tensor(a.astype(np.float64), requires_grad=True) * 2) \
        .replace("torch.", "convnet.")
    # a long last line moves the suffix to its own line, as torch
    wide = rng.standard_normal((2, 7)).astype(np.float64)
    assert repr(cn.tensor(wide, requires_grad=True)) == repr(
        torch.tensor(wide, requires_grad=True)).replace("torch.", "convnet.")


def test_dtype_prints_with_convnet_prefix_in_repr_only():
    assert "dtype=convnet.float64" in repr(cn.zeros(2, dtype=cn.float64))
    assert str(cn.zeros(2, dtype=cn.float64).dtype) == "float64"  # a NumPy dtype


# ----------------------------------------------------------------------- Size
def test_size_is_a_tuple_printing_like_torch():
    x = cn.zeros(2, 3)
    assert repr(x.shape) == str(x.size()) == "convnet.Size([2, 3])"
    assert repr(torch.zeros(2, 3).shape) == "torch.Size([2, 3])"
    assert x.shape == (2, 3) and isinstance(x.shape, tuple) and hash(x.shape) == hash((2, 3))
    assert isinstance(x.shape[1:], cn.Size) and x.shape[1:] == (3,)
    assert isinstance(x.shape + (4,), cn.Size) and (1,) + x.shape == (1, 2, 3)
    assert x.shape.numel() == torch.zeros(2, 3).shape.numel() == 6
    assert f"{x.shape}" == "(2, 3)"  # documented difference: error messages keep tuple text
    assert x.size(1) == 3 and x.size(-2) == 2
    raises_like(lambda: cn.tensor(1.0).size(0), lambda: torch.tensor(1.0).size(0))


# -------------------------------------------------------------------- grad_fn
def _walk(node, depth=3):
    """(name, [children]) of a grad_fn graph, for comparing convnet's with torch's."""
    if node is None:
        return None
    name = node.name().replace("torch::autograd::", "")  # torch's AccumulateGrad name()
    if depth == 0:
        return name
    return (name, [(_walk(n, depth - 1), i) for n, i in node.next_functions])


def test_grad_fn_names_and_next_functions_match_torch(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4, 2))
    graphs = [
        lambda x, w: ((x * 2) + 1).sum(),
        lambda x, w: (x @ w).exp().mean(),
        lambda x, w: (-(x - 1) / 2).relu().sigmoid().tanh().sum(),
        lambda x, w: x.sigmoid().log1p().expm1().abs().sqrt().sum(),
        lambda x, w: x.gather(1, x.new_zeros(3, 1).long()).sum(),
        lambda x, w: x.masked_fill(x > 0, 0.0).sum(),
        lambda x, w: x.sort(1)[0].sum() + x.topk(2)[0].sum(),
    ]
    for g in graphs:
        x, w = cn.tensor(a, requires_grad=True), cn.tensor(b, requires_grad=True)
        tx, tw = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        assert _walk(g(x, w).grad_fn) == _walk(g(tx, tw).grad_fn)


def test_grad_fn_names_of_indexing_and_reduction_variants_match_torch():
    def names(lib):
        a = lib.ones(3, 4, requires_grad=True)
        outs = (a[0], a[1:], a[:, 1:], a[0, 1], a[..., 0], a[[0, 1]], a[a > 0], a.sum(0),
                a.sum(), a.mean(), a.mean(1), a[None, 0], a[0:1, 2], a.t(), a.T, a.transpose(0, 1), a.exp())
        return [y.grad_fn.name() for y in outs]

    assert names(cn) == names(torch)


def test_grad_fn_leaves_and_accumulate_grad(rng):
    x = cn.tensor(rng.standard_normal(3), requires_grad=True)
    y = cn.tensor(rng.standard_normal(3))
    assert x.grad_fn is None and y.grad_fn is None
    loss = (x * y).sum()
    mul = loss.grad_fn.next_functions[0][0]
    assert mul.name() == "MulBackward0" and mul == loss.grad_fn.next_functions[0][0]
    (acc, i), (none, j) = mul.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is x and i == 0
    assert none is None and j == 0 and acc.next_functions == ()
    assert repr(loss.grad_fn).startswith("<SumBackward0 object at ")
    x.requires_grad = False  # the setter stays
    assert not x.requires_grad


def test_blitz_network_graph_prints_torch_names(rng):
    # the 60-minute blitz prints loss.grad_fn and the next two nodes
    net = cn.nn.Sequential(cn.nn.Linear(4, 3), cn.nn.ReLU(), cn.nn.Linear(3, 2))
    out = net(cn.tensor(rng.standard_normal((5, 4)), dtype=cn.float32))
    loss = cn.nn.MSELoss()(out, cn.zeros(5, 2))
    assert loss.grad_fn is not None
    first = loss.grad_fn.next_functions[0][0]
    assert first is not None and first.name()
    assert isinstance(loss.grad_fn.next_functions, tuple)


def test_next_functions_after_backward_raise_clearly(rng):
    x = cn.tensor(rng.standard_normal(3), requires_grad=True)
    loss = (x * 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.grad_fn.next_functions


# -------------------------------------------------------------------- format
def test_format_like_torch():
    for lib in (cn, torch):
        assert f"{lib.tensor(2.5):.2f}" == "2.50"
        assert f"{lib.tensor(3):d}" == "3"
    assert f"{cn.tensor([1.5])}" == f"{torch.tensor([1.5])}"
    raises_like(lambda: f"{cn.tensor([1.5]):.2f}", lambda: f"{torch.tensor([1.5]):.2f}")


# ---------------------------------------------------------------- type, new_*
def test_type_names_and_casts():
    for dt, tdt in [(cn.float32, torch.float32), (cn.float64, torch.float64),
                    (cn.int64, torch.int64), (cn.int32, torch.int32), (cn.uint8, torch.uint8),
                    (cn.bool, torch.bool)]:
        assert cn.zeros(2, dtype=dt).type() == torch.zeros(2, dtype=tdt).type() \
            .replace("torch.", "convnet.")
    x = cn.tensor([1.5, -2.5])
    assert x.type(cn.int64).dtype == cn.int64
    assert x.type("torch.DoubleTensor").dtype == cn.float64
    assert x.type("convnet.LongTensor").tolist() == torch.tensor([1.5, -2.5]).type(
        "torch.LongTensor").tolist()
    with pytest.raises(RuntimeError, match="CPU"):
        x.type("torch.cuda.FloatTensor")
    with pytest.raises(ValueError):
        x.type("torch.NoSuchTensor")


def test_new_factories_match_torch():
    for src, tsrc in [(cn.tensor([[1, 2]]), torch.tensor([[1, 2]])),
                      (cn.tensor([1.5], dtype=cn.float64), torch.tensor([1.5], dtype=torch.float64))]:
        pairs = [
            (src.new_ones(2, 3), tsrc.new_ones(2, 3)),
            (src.new_zeros((2,)), tsrc.new_zeros((2,))),
            (src.new_full((2, 2), 7), tsrc.new_full((2, 2), 7)),
            (src.new_tensor([1.5, 2.5]), tsrc.new_tensor([1.5, 2.5])),
            (src.new_ones(2, dtype=cn.float32), tsrc.new_ones(2, dtype=torch.float32)),
            (src.new_empty(2, 1).fill_(0), tsrc.new_empty(2, 1).fill_(0)),
        ]
        for c, t in pairs:
            assert c.shape == tuple(t.shape) and str(c.dtype) == str(t.dtype)[6:]
            np.testing.assert_array_equal(c.numpy(), t.numpy())
    x = cn.zeros(1).new_ones(2, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    with pytest.raises(RuntimeError, match="CPU"):
        cn.zeros(1).new_ones(2, device="cuda")


# ------------------------------------------------------------ arithmetic
def test_arithmetic_functions_and_methods_match_torch(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) + 3
    for name in ("add", "sub"):
        check(lambda x, y: getattr(cn, name)(x, y, alpha=2.5),
              lambda x, y: getattr(torch, name)(x, y, alpha=2.5), [a, b])
        check(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b])
    for name in ("mul", "div", "multiply", "divide", "true_divide"):
        check(lambda x, y: getattr(cn, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b])
        check(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b])
    check(lambda x: cn.mul(x, 3), lambda x: torch.mul(x, 3), [a])
    pos = np.abs(a)
    for name in ("log1p", "expm1", "neg", "negative"):
        check(getattr(cn, name), getattr(torch, name), [pos])
        check(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), [pos])


def test_div_rounding_modes_match_torch(rng):
    a, b = rng.standard_normal((4, 5)) * 5, rng.standard_normal((4, 5)) + 0.5
    for mode in ("trunc", "floor"):
        check(lambda x, y: cn.div(x, y, rounding_mode=mode),
              lambda x, y: torch.div(x, y, rounding_mode=mode), [a, b])
        for num, den in ([5, -7, 0, 8], [2, 2, 3, -3]), ([5, -7], 2), ([5.0, -7.5], 2):
            c = cn.tensor(num).div(den if isinstance(den, int) else cn.tensor(den), rounding_mode=mode)
            t = torch.tensor(num).div(den if isinstance(den, int) else torch.tensor(den),
                                      rounding_mode=mode)
            assert c.tolist() == t.tolist() and str(c.dtype) == str(t.dtype)[6:]
    raises_like(lambda: cn.tensor([1.0]).div(2, rounding_mode="round"),
                lambda: torch.tensor([1.0]).div(2, rounding_mode="round"))


def test_mm_and_matmul_out_match_torch(rng):
    a, b, v = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    check(cn.mm, torch.mm, [a, b])
    check(lambda x, y: x.mm(y), lambda x, y: x.mm(y), [a, b])
    check(cn.matmul, torch.matmul, [a, v])
    check(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), [a, b])
    out = cn.zeros(1, dtype=cn.float64)
    res = cn.matmul(cn.tensor(a), cn.tensor(b), out=out)
    assert res is out and out.shape == (3, 2)
    np.testing.assert_allclose(out.numpy(), a @ b)
    x = cn.tensor(a, requires_grad=True)
    raises_like(lambda: cn.matmul(x, cn.tensor(b), out=cn.zeros(3, 2, dtype=cn.float64)),
                lambda: torch.matmul(torch.tensor(a, requires_grad=True), torch.tensor(b),
                                     out=torch.zeros(3, 2, dtype=torch.float64)))
    raises_like(lambda: cn.matmul(cn.tensor(a), cn.tensor(b), out=cn.zeros(3, 2, dtype=cn.int64)),
                lambda: torch.matmul(torch.tensor(a), torch.tensor(b),
                                     out=torch.zeros(3, 2, dtype=torch.int64)))
    raises_like(lambda: cn.tensor(a).mm(cn.tensor(v)), lambda: torch.tensor(a).mm(torch.tensor(v)))
    raises_like(lambda: cn.tensor(a).mm(cn.tensor(a)), lambda: torch.tensor(a).mm(torch.tensor(a)))


def test_module_level_softmax_family_matches_torch(rng):
    a = rng.standard_normal((3, 5))
    for name in ("softmax", "log_softmax"):
        check(lambda x: getattr(cn, name)(x, 1), lambda x: getattr(torch, name)(x, 1), [a])
        check(lambda x: getattr(cn, name)(x, dim=0), lambda x: getattr(torch, name)(x, dim=0), [a])
    for name in ("sigmoid", "tanh", "relu"):
        check(getattr(cn, name), getattr(torch, name), [a])


# -------------------------------------------------------- sorting, selection
def test_sort_argsort_topk_match_torch(rng):
    a = tie_free((4, 6), rng)
    for dim in (0, 1, -1):
        for desc in (False, True):
            out = check(lambda x: cn.sort(x, dim, desc), lambda x: torch.sort(x, dim, desc), [a])
            assert out[0].grad_fn.name() == "SortBackward0"
            check(lambda x: x.argsort(dim, descending=desc),
                  lambda x: x.argsort(dim, descending=desc), [a])
            check(lambda x: cn.topk(x, 3, dim, largest=not desc),
                  lambda x: torch.topk(x, 3, dim, largest=not desc), [a])
    v, i = cn.tensor(a).topk(2)
    assert v.shape == (4, 2) and cn.tensor(a).sort().values.shape == (4, 6)
    assert i.dtype == cn.int64
    # stable ties, as torch's stable sort
    t = [3, 1, 3, 2, 1]
    for desc in (False, True):
        assert cn.tensor(t).sort(descending=desc, stable=True)[1].tolist() == \
            torch.tensor(t).sort(descending=desc, stable=True)[1].tolist()
    check(lambda x: x.sort()[0], lambda x: x.sort()[0], [np.array(2.5)])
    raises_like(lambda: cn.tensor(a).topk(7), lambda: torch.tensor(a).topk(7))
    raises_like(lambda: cn.tensor(a).topk(2, dim=3), lambda: torch.tensor(a).topk(2, dim=3))


def test_gather_matches_torch(rng):
    a = rng.standard_normal((3, 4))
    idx1 = rng.integers(0, 4, (3, 6))  # repeats: gradient contributions add up
    idx0 = rng.integers(0, 3, (2, 3))  # smaller than input on the other axis
    check(lambda x, i: cn.gather(x, 1, i), lambda x, i: torch.gather(x, 1, i), [a, idx1])
    check(lambda x, i: x.gather(0, i), lambda x, i: x.gather(0, i), [a, idx0])
    check(lambda x, i: x.gather(-1, i), lambda x, i: x.gather(-1, i), [a, idx1])
    x, tx = cn.tensor(a), torch.tensor(a)
    for bad in (np.array([0, 1]), np.array([[5]]), np.array([[-1]])):
        raises_like(lambda: x.gather(1, cn.tensor(bad)), lambda: tx.gather(1, torch.tensor(bad)))
    raises_like(lambda: x.gather(1, cn.tensor([[0.0]])), lambda: tx.gather(1, torch.tensor([[0.0]])))
    raises_like(lambda: x.gather(2, cn.zeros(3, 4, dtype=cn.int64)),
                lambda: tx.gather(2, torch.zeros(3, 4, dtype=torch.int64)))
    raises_like(lambda: x.gather(0, cn.zeros(3, 5, dtype=cn.int64)),
                lambda: tx.gather(0, torch.zeros(3, 5, dtype=torch.int64)))


def test_scatter_and_scatter_add_match_torch(rng):
    # src of index's shape: torch's own backward fails for a larger src
    a, src = rng.standard_normal((3, 5)), rng.standard_normal((3, 2))
    # distinct targets per row (torch leaves duplicate targets of scatter unspecified)
    idx = np.stack([rng.permutation(5)[:2] for _ in range(3)])
    check(lambda x, i, s: x.scatter(1, i, s), lambda x, i, s: x.scatter(1, i, s), [a, idx, src])
    check(lambda x, i, s: cn.scatter(x, 1, i, s), lambda x, i, s: torch.scatter(x, 1, i, s),
          [a, idx, src])
    check(lambda x, i: x.scatter(1, i, 2.5), lambda x, i: x.scatter(1, i, 2.5), [a, idx])
    check(lambda x, i: x.scatter(1, i, value=-1.0), lambda x, i: x.scatter(1, i, value=-1.0), [a, idx])
    rep = rng.integers(0, 3, (4, 5))  # repeated targets accumulate in scatter_add
    src2 = rng.standard_normal((4, 5))
    check(lambda x, i, s: x.scatter_add(0, i, s), lambda x, i, s: x.scatter_add(0, i, s),
          [a, rep, src2])
    check(lambda x, i, s: cn.scatter_add(x, 0, i, s), lambda x, i, s: torch.scatter_add(x, 0, i, s),
          [a, rep, src2])
    check(lambda x, i, s: x.scatter(0, i, s, reduce="add"), lambda x, i, s: x.scatter_add(0, i, s),
          [a, rep, src2])
    # in place: the classic one-hot idiom
    y = cn.tensor([2, 0, 1])
    c = cn.zeros(3, 4).scatter_(1, y.view(-1, 1), 1)
    t = torch.zeros(3, 4).scatter_(1, torch.tensor([2, 0, 1]).view(-1, 1), 1)
    np.testing.assert_array_equal(c.numpy(), t.numpy())
    c2 = cn.zeros(3, 5, dtype=cn.float64).scatter_add_(0, cn.tensor(rep), cn.tensor(src2))
    t2 = torch.zeros(3, 5, dtype=torch.float64).scatter_add_(0, torch.tensor(rep), torch.tensor(src2))
    np.testing.assert_allclose(c2.numpy(), t2.numpy())
    x, tx = cn.tensor(a), torch.tensor(a)
    raises_like(lambda: x.scatter(1, cn.tensor(idx), cn.tensor(src, dtype=cn.float32)),
                lambda: tx.scatter(1, torch.tensor(idx), torch.tensor(src, dtype=torch.float32)))
    raises_like(lambda: x.scatter(1, cn.zeros(3, 2, dtype=cn.int64), cn.zeros(3, 1, dtype=cn.float64)),
                lambda: tx.scatter(1, torch.zeros(3, 2, dtype=torch.int64),
                                   torch.zeros(3, 1, dtype=torch.float64)))
    raises_like(lambda: x.scatter(1, cn.tensor([[9]]), 1.0), lambda: tx.scatter(1, torch.tensor([[9]]), 1.0))


def test_masked_fill_matches_torch(rng):
    a = rng.standard_normal((3, 4))
    mask = rng.standard_normal((3, 4)) > 0
    row = rng.standard_normal(4) > 0
    check(lambda x, m: x.masked_fill(m, -1.5), lambda x, m: x.masked_fill(m, -1.5), [a, mask])
    check(lambda x, m: cn.masked_fill(x, m, 0), lambda x, m: torch.masked_fill(x, m, 0), [a, row])
    big = rng.standard_normal((2, 3, 4)) > 0  # out of place broadcasts self to the mask
    check(lambda x, m: x.masked_fill(m, 2.0), lambda x, m: x.masked_fill(m, 2.0), [a, big])
    check(lambda x, m, v: x.masked_fill(m, v), lambda x, m, v: x.masked_fill(m, v),
          [a, mask, np.array(0.75)])  # a 0-d value tensor gets a gradient
    c = cn.tensor(a)
    c.masked_fill_(cn.tensor(mask), 0.0)
    t = torch.tensor(a)
    t.masked_fill_(torch.tensor(mask), 0.0)
    np.testing.assert_array_equal(c.numpy(), t.numpy())
    x, tx = cn.tensor(a), torch.tensor(a)
    raises_like(lambda: x.masked_fill(x, 0), lambda: tx.masked_fill(tx, 0))
    raises_like(lambda: x.masked_fill(cn.ones(2, dtype=cn.bool), 0),
                lambda: tx.masked_fill(torch.ones(2, dtype=torch.bool), 0))
    raises_like(lambda: x.masked_fill(x > 0, cn.tensor([1.0, 2.0])),
                lambda: tx.masked_fill(tx > 0, torch.tensor([1.0, 2.0])))


def test_chunk_split_match_torch(rng):
    a = rng.standard_normal((7, 4))
    check(lambda x: x.chunk(3), lambda x: x.chunk(3), [a])
    check(lambda x: cn.chunk(x, 2, dim=1), lambda x: torch.chunk(x, 2, dim=1), [a])
    check(lambda x: x.chunk(6), lambda x: x.chunk(6), [a])  # torch may return fewer chunks
    check(lambda x: x.split(3), lambda x: x.split(3), [a])
    check(lambda x: cn.split(x, [1, 4, 2]), lambda x: torch.split(x, [1, 4, 2]), [a])
    check(lambda x: x.split([3, 1], dim=-1), lambda x: x.split([3, 1], dim=-1), [a])
    assert len(cn.zeros(0, 3).split(2)) == len(torch.zeros(0, 3).split(2))
    x, tx = cn.tensor(a), torch.tensor(a)
    raises_like(lambda: x.split([1, 1]), lambda: tx.split([1, 1]))
    raises_like(lambda: x.split(-1), lambda: tx.split(-1))
    raises_like(lambda: x.split(0), lambda: tx.split(0))
    raises_like(lambda: x.chunk(0), lambda: tx.chunk(0))
    raises_like(lambda: x.split(2, dim=2), lambda: tx.split(2, dim=2))


def test_index_select_and_repeat_interleave_match_torch(rng):
    a = rng.standard_normal((4, 3))
    idx = np.array([3, 0, 3, 1])
    check(lambda x, i: x.index_select(0, i), lambda x, i: x.index_select(0, i), [a, idx])
    check(lambda x, i: cn.index_select(x, 1, i), lambda x, i: torch.index_select(x, 1, i),
          [a, np.array([2])])
    check(lambda x: x.repeat_interleave(2), lambda x: x.repeat_interleave(2), [a])
    check(lambda x: x.repeat_interleave(3, dim=1), lambda x: x.repeat_interleave(3, dim=1), [a])
    check(lambda x, r: cn.repeat_interleave(x, r, dim=0),
          lambda x, r: torch.repeat_interleave(x, r, dim=0), [a, np.array([1, 0, 2, 3])])
    assert cn.repeat_interleave(cn.tensor([1, 2])).tolist() == \
        torch.repeat_interleave(torch.tensor([1, 2])).tolist()
    assert cn.tensor([1, 2]).repeat_interleave(2).tolist() == [1, 1, 2, 2]
    x, tx = cn.tensor(a), torch.tensor(a)
    raises_like(lambda: x.index_select(0, cn.tensor([4])), lambda: tx.index_select(0, torch.tensor([4])))
    raises_like(lambda: x.index_select(0, cn.tensor([[0]])), lambda: tx.index_select(0, torch.tensor([[0]])))
    raises_like(lambda: x.index_select(0, cn.tensor([0.0])), lambda: tx.index_select(0, torch.tensor([0.0])))
    raises_like(lambda: x.repeat_interleave(cn.tensor([1, 2])),
                lambda: tx.repeat_interleave(torch.tensor([1, 2])))
    raises_like(lambda: x.repeat_interleave(cn.tensor([1, 2, -1, 0]), dim=0),
                lambda: tx.repeat_interleave(torch.tensor([1, 2, -1, 0]), dim=0))


# ---------------------------------------------------------------- one_hot
def test_one_hot_matches_torch():
    for args in [([0, 2, 1],), ([[1, 0], [3, 3]],), ([1, 0], 5), ([], 3)]:
        c = F.one_hot(cn.tensor(args[0], dtype=cn.int64), *args[1:])
        t = torch.nn.functional.one_hot(torch.tensor(args[0], dtype=torch.int64), *args[1:])
        assert c.dtype == cn.int64 and c.shape == tuple(t.shape)
        np.testing.assert_array_equal(c.numpy(), t.numpy())
    for data, kw in [([1.0], {}), ([-1], {}), ([3], {"num_classes": 3}), ([], {}),
                     ([], {"num_classes": 0}), ([1], {"num_classes": -2})]:
        dt = cn.float32 if isinstance(data[:1] and data[0], float) else cn.int64
        tdt = torch.float32 if dt == cn.float32 else torch.int64
        raises_like(lambda: F.one_hot(cn.tensor(data, dtype=dt), **kw),
                    lambda: torch.nn.functional.one_hot(torch.tensor(data, dtype=tdt), **kw))


# ----------------------------------------------------------------- einsum
EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("ij->", [(3, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ji", [(3, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("b...,b->...", [(2, 3, 4), (2,)]),
    ("...", [(2, 3)]),
    ("ij,kj->ik", [(3, 4), (1, 1)]),
    ("ij , jk , kl -> il", [(2, 3), (3, 4), (4, 5)]),
    ("bchw,bkhw->bck", [(2, 3, 4, 5), (2, 2, 4, 5)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ik,jk->", [(2, 3), (4, 3)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES)
def test_einsum_matches_torch(eq, shapes, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    check(lambda *xs: cn.einsum(eq, *xs), lambda *xs: torch.einsum(eq, *xs), arrays)


def test_einsum_list_operands_and_errors(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    check(lambda x, y: cn.einsum("ij,jk", [x, y]), lambda x, y: torch.einsum("ij,jk", [x, y]), [a, b])
    x, tx = cn.tensor(a), torch.tensor(a)
    for eq, n in [("ij,jk", 1), ("ij", 2), ("ijk", 1), ("ij->ii", 1), ("ij->k", 1), ("i1", 1),
                  ("ii", 1)]:
        raises_like(lambda: cn.einsum(eq, *[x] * n), lambda: torch.einsum(eq, *[tx] * n))
    raises_like(lambda: cn.einsum("ij,jk->ik", x, cn.zeros(5, 2, dtype=cn.float64)),
                lambda: torch.einsum("ij,jk->ik", tx, torch.zeros(5, 2, dtype=torch.float64)))
    raises_like(lambda: cn.einsum("ij,kj->ik", x, cn.zeros(1, 2, dtype=cn.float64)),
                lambda: torch.einsum("ij,kj->ik", tx, torch.zeros(1, 2, dtype=torch.float64)))
