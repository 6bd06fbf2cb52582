"""In-place operators and the version counter, against torch (issue 14's "silent differences").

Each test runs the same program on convnet and on torch and compares values, gradients and
errors. Before in-place ops were real, ``p -= lr * p.grad`` rebound the name and manual SGD did
not train, and ``+=`` never raised where torch does.
"""
import numpy as np
import pytest
import torch

import convnet as cn


def _pair(rng, shape=(3, 4), requires_grad=False):
    a = rng.standard_normal(shape)
    return (cn.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def test_manual_sgd_updates_the_parameter_in_place(rng):
    # the tutorials' manual loop: `with no_grad(): w -= w.grad * lr` must train
    w, wt = _pair(rng, (4,), requires_grad=True)
    x, xt = _pair(rng, (8, 4))
    same_object = w
    for _ in range(5):
        loss = ((x @ w) ** 2).sum()
        loss.backward()
        with cn.no_grad():
            w -= w.grad * 0.01
            w.grad.zero_()
        lt = ((xt @ wt) ** 2).sum()
        lt.backward()
        with torch.no_grad():
            wt -= wt.grad * 0.01
            wt.grad.zero_()
    assert w is same_object and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), wt.detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(w.grad.numpy(), 0)


@pytest.mark.parametrize("op", ["iadd", "isub", "imul", "itruediv", "add_", "sub_", "mul_",
                                "div_", "add_alpha", "clamp_", "pow_", "zero_", "fill_"])
def test_inplace_values_and_aliasing(rng, op):
    a, at = _pair(rng)
    b, bt = _pair(rng, (4,))
    view, viewt = a[1], at[1]  # a view must see the change
    programs = {
        "iadd": lambda x, y: x.__iadd__(y), "isub": lambda x, y: x.__isub__(y),
        "imul": lambda x, y: x.__imul__(y), "itruediv": lambda x, y: x.__itruediv__(y),
        "add_": lambda x, y: x.add_(y), "sub_": lambda x, y: x.sub_(y),
        "mul_": lambda x, y: x.mul_(y), "div_": lambda x, y: x.div_(y),
        "add_alpha": lambda x, y: x.add_(y, alpha=-2.5),
        "clamp_": lambda x, y: x.clamp_(-0.5, 0.5), "pow_": lambda x, y: x.pow_(2),
        "zero_": lambda x, y: x.zero_(), "fill_": lambda x, y: x.fill_(1.5),
    }
    out, outt = programs[op](a, b), programs[op](at, bt)
    assert out is a and outt is at and a._version == at._version == 1
    np.testing.assert_allclose(a.numpy(), at.numpy(), rtol=1e-15)
    np.testing.assert_allclose(view.numpy(), viewt.numpy(), rtol=1e-15)
    assert view._version == viewt._version == 1  # views share the counter


def test_leaf_requiring_grad_refuses_inplace_outside_no_grad(rng):
    w, wt = _pair(rng, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        wt += 1
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w += 1
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.mul_(2)
    with cn.no_grad():
        w += 1  # allowed, as torch


def test_inplace_on_a_non_leaf_is_differentiated(rng):
    # out = bn(x); out += identity; relu(out) -- torchvision's BasicBlock pattern
    x, xt = _pair(rng, requires_grad=True)
    s, st = _pair(rng, (4,), requires_grad=True)
    g = rng.standard_normal((3, 4))

    def program(x, s):
        y = x * 2.0
        y += s            # add_ with a tensor that requires grad
        y *= x            # mul_ needs y's old value for x's gradient
        y.sub_(s, alpha=0.5)
        y.clamp_(min=-1.0)
        y[0] = s * 3.0    # index_put with grad to both sides
        return y

    y, yt = program(x, s), program(xt, st)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-14)
    y.backward(cn.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), st.grad.numpy(), rtol=1e-12)


def test_earlier_consumers_keep_the_old_history(rng):
    # z used y before y was changed in place: z's gradient flows through y's old history
    x, xt = _pair(rng, requires_grad=True)

    def program(x):
        y = x * 3.0
        z = y + 1.0       # Add saves nothing: later in-place on y is allowed (as torch)
        y.add_(x * x)
        return (z * 2.0).sum() + (y * y).sum()

    loss, losst = program(x), program(xt)
    loss.backward()
    losst.backward()
    np.testing.assert_allclose(loss.item(), losst.item(), rtol=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("case", ["saved_input", "saved_output", "view"])
def test_modifying_a_saved_tensor_raises_on_backward(rng, case):
    def program(lib, x):
        if case == "saved_input":
            y = x * 2.0
            z = y * y          # Mul saves y
            y.add_(1.0)
        elif case == "saved_output":
            y = x * 2.0
            z = y.sigmoid()    # sigmoid saves its output
            z.mul_(2.0)
        else:
            y = x * 2.0
            z = y.exp()        # exp saves its output; modified through a view of it
            z[0].add_(1.0)
        return z.sum()

    x, xt = _pair(rng, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        program(torch, xt).backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        program(cn, x).backward()


def test_setitem_and_copy_under_autograd(rng):
    x, xt = _pair(rng, (5, 3), requires_grad=True)
    v, vt = _pair(rng, (3,), requires_grad=True)
    g = rng.standard_normal((5, 3))

    def program(lib, x, v):
        y = x + 0.0
        y[1:3] = v
        y[4, 0] = 7.0
        z = lib.zeros(5, 3, dtype=x.dtype)
        z.copy_(y * 2.0)
        return z

    z, zt = program(cn, x, v), program(torch, xt, vt)
    np.testing.assert_allclose(z.detach().numpy(), zt.detach().numpy(), rtol=1e-15)
    z.backward(cn.tensor(g))
    zt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(v.grad.numpy(), vt.grad.numpy(), rtol=1e-15)


def test_inplace_errors_match_torch(rng):
    a, at = _pair(rng)
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        at.add_(torch.ones(2, 3, 4, dtype=at.dtype))
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        a.add_(cn.ones(2, 3, 4, dtype=a.dtype))
    i, it = cn.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        it += 0.5
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5
    i += 2
    assert i.tolist() == [3, 4, 5] and i.dtype == cn.int64


def test_inplace_dtype_stays(rng):
    a = cn.tensor(rng.standard_normal(4).astype(np.float32))
    a *= cn.tensor(rng.standard_normal(4))  # float64 operand: result cast back, as torch
    assert a.dtype == np.float32


@pytest.mark.parametrize("name,args", [("relu", ()), ("relu6", ()), ("hardtanh", (-0.5, 0.5)),
                                       ("leaky_relu", (0.2,)), ("elu", (0.7,)), ("silu", ()),
                                       ("hardsigmoid", ()), ("hardswish", ())])
def test_activation_inplace_true_changes_the_input(rng, name, args):
    import convnet.functional as F
    import torch.nn.functional as TF

    x, xt = _pair(rng, (4, 5), requires_grad=True)
    g = rng.standard_normal((4, 5))
    y, yt = x * 3.0, xt * 3.0
    out = getattr(F, name)(y, *args, inplace=True)
    outt = getattr(TF, name)(yt, *args, inplace=True)
    assert out is y  # torch returns the input itself
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-14)
    out.backward(cn.tensor(g))
    outt.backward(torch.tensor(g))
    # torch's float64 hardsigmoid backward uses a float32 1/6 (gradients off by 3e-8)
    rtol = 1e-7 if name in ("hardsigmoid", "hardswish") else 1e-12
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=rtol)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(F, name)(x, *args, inplace=True)


def test_relu_module_inplace_and_dropout_inplace(rng):
    from convnet import nn

    a = cn.tensor(rng.standard_normal((3, 4)))
    assert nn.ReLU(inplace=True)(a) is a and float(a.numpy().min()) >= 0
    b = cn.tensor(np.ones((200, 10)))
    out = nn.Dropout(0.5, inplace=True)(b)
    assert out is b and set(np.unique(b.numpy())) <= {0.0, 2.0}
