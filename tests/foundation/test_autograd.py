"""Autograd engine behaviour: accumulation, graph freeing, grad modes, gradcheck."""
import gc
import weakref

import numpy as np
import pytest

import convnet as cn
from convnet.autograd import Function, GradcheckError, gradcheck


def test_gradients_accumulate_across_backward_calls():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert np.allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 2).sum().backward()
    assert np.allclose(x.grad.numpy(), [2, 2])


def test_shared_subexpression_gradient_sums_paths():
    x = cn.tensor(np.array([0.3, -1.2]), requires_grad=True)
    y = x.exp()
    z = (y * y + y).sum()  # y used twice
    z.backward()
    e = np.exp(x.numpy())
    assert np.allclose(x.grad.numpy(), 2 * e * e + e)


def test_graph_is_freed_after_backward_unless_retained():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert np.allclose(x.grad.numpy(), [4, 8])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_non_scalar_needs_gradient():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="one-element"):
        y.backward()
    y.backward(cn.tensor([1.0, -1.0]))
    assert np.allclose(x.grad.numpy(), [2, -2])
    with pytest.raises(ValueError, match="gradient has shape"):
        (x * 2).backward(cn.tensor([1.0, 2.0, 3.0]))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        cn.tensor([1.0]).sum().backward()


def test_no_grad_and_enable_grad():
    x = cn.tensor([1.0], requires_grad=True)
    with cn.no_grad():
        y = x * 2
        assert not cn.is_grad_enabled()
        with cn.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    assert cn.is_grad_enabled()

    @cn.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad


def test_detach_and_leaf_flags():
    x = cn.tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.numpy(), y.numpy())
    with pytest.raises(TypeError, match="floating-point"):
        cn.tensor([1, 2]).requires_grad_()


def test_retain_grad_on_intermediate():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    assert np.allclose(y.grad.numpy(), 2 * y.numpy())


def test_deep_graph_does_not_overflow_the_stack():
    x = cn.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert np.isclose(x.grad.item(), 1.0001**5000, rtol=1e-4)


def test_no_reference_cycles_keep_activations_alive():
    x = cn.tensor(np.ones(10), requires_grad=True)
    gc.disable()
    try:
        y = x.exp() * 2
        ref = weakref.ref(y)
        y.sum().backward()
        del y
        assert ref() is None  # freed by reference counting alone
    finally:
        gc.enable()


def test_gradcheck_passes_on_correct_and_catches_wrong_backward():
    x = cn.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda t: (t.tanh() * t).sum(1), [x])

    class WrongSquare(Function):
        def forward(self, a):
            self.a = a
            return a * a

        def backward(self, g):
            return g * self.a  # should be 2 * a

    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: WrongSquare.apply(t), [x])
    assert gradcheck(lambda t: WrongSquare.apply(t), [x], raise_exception=False) is False


def test_gradcheck_rejects_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [cn.tensor([1.0], requires_grad=True)])


@pytest.mark.parametrize("fn", [
    lambda a, b: (a * b + a / (b * b + 1)).sum(0),
    lambda a, b: (a @ b.T).tanh(),
    lambda a, b: a.max(1)[0] * b.mean(1),
    lambda a, b: cn.cat([a, b], 0).reshape(4, 6).std(1),
    lambda a, b: (a - b).abs().clamp(0.1, 1.0).sqrt(),
    lambda a, b: a.permute(1, 0)[1:3] ** 2 + b.var(1).unsqueeze(0),
    lambda a, b: cn.where(a.numpy() > 0, a, b).sigmoid().log(),
])
def test_gradcheck_composites(fn):
    rng = np.random.default_rng(5)
    a = cn.tensor(rng.standard_normal((2, 6)) + 0.05, requires_grad=True)
    b = cn.tensor(rng.standard_normal((2, 6)), requires_grad=True)
    assert gradcheck(fn, [a, b])


def test_error_messages_name_op_and_shapes():
    a, b = cn.ones(2, 3), cn.ones(4, 5)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes"):
        a * b
    with pytest.raises(ValueError, match=r"cat: tensor 1 has shape \(4, 5\)"):
        cn.cat([a, b])
    with pytest.raises(ValueError, match=r"view: shape \(4, 2\) is invalid for a tensor of shape \(2, 3\)"):
        a.view(4, 2)
    with pytest.raises(ValueError, match=r"reshape"):
        a.reshape(-1, 4)
    with pytest.raises(ValueError, match="stack"):
        cn.stack([a, b])
    with pytest.raises(IndexError, match="sum: dim 5"):
        a.sum(5)
    with pytest.raises(ValueError, match="permute"):
        a.permute(0, 0)
