"""Devices and factory keywords (issue 14): cn.device, Tensor/Module .to/.cpu/.cuda, cn.cuda,
cn.accelerator, cn.backends.cudnn/mps, and device=/dtype=/requires_grad= on every factory and
layer, checked against torch 2.13 (dtype, shape, values, requires_grad, errors)."""
import numpy as np
import pytest
import torch

import convnet as cn
from convnet import nn

GPU_MSG = "convnet runs on the CPU"
DTYPES = [(cn.float32, torch.float32), (cn.float64, torch.float64), (cn.int64, torch.int64),
          (cn.int32, torch.int32), (cn.uint8, torch.uint8), (cn.bool, torch.bool)]


def _name(dtype) -> str:
    return str(dtype).split(".")[-1]


def _same(c, t, values=True):
    """convnet tensor ``c`` matches torch tensor ``t`` in dtype, shape, requires_grad (and
    values)."""
    assert isinstance(c, cn.Tensor)
    assert _name(c.dtype) == _name(t.dtype)
    assert tuple(c.shape) == tuple(t.shape)
    assert c.requires_grad == t.requires_grad
    if values:
        np.testing.assert_allclose(c.detach().numpy(), t.detach().numpy(), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ device
@pytest.mark.parametrize("args", [("cpu",), ("cpu", 0), ("cpu:0",), ("cpu:3",), ("cuda",),
                                  ("cuda:1",), ("cuda", 2), ("mps",), ("meta",), ("xpu", 0)])
def test_device_str_repr_type_index_as_torch(args):
    c, t = cn.device(*args), torch.device(*args)
    assert (str(c), repr(c), c.type, c.index) == (str(t), repr(t), t.type, t.index)
    assert cn.device(c) == c and hash(cn.device(c)) == hash(c)


@pytest.mark.parametrize("args", [("foo",), ("",), ("cuda:x",), ("cpu:-1",), ("cpu", -1),
                                  ("cpu:01",), ("cuda:1", 1)])
def test_device_errors_as_torch(args):
    with pytest.raises(RuntimeError):
        torch.device(*args)
    with pytest.raises(RuntimeError):
        cn.device(*args)


def test_device_type_errors_and_equality():
    for bad in [(1.5,), ("cpu", "a")]:
        with pytest.raises(TypeError):
            torch.device(*bad)
        with pytest.raises(TypeError):
            cn.device(*bad)
    assert cn.device("cpu") == cn.device("cpu") and cn.device("cpu") != cn.device("cpu", 0)
    assert (cn.device("cpu") == "cpu") == (torch.device("cpu") == "cpu")  # both False
    assert {cn.device("cpu"): 1}[cn.device("cpu")] == 1
    assert isinstance(cn.ones(1).device, cn.device)
    with cn.device("cpu"):
        assert cn.zeros(1).device.type == "cpu"


def test_cuda_accelerator_backends_flags():
    assert cn.cuda.is_available() is False and cn.cuda.device_count() == 0
    assert cn.cuda.manual_seed(0) is None and cn.cuda.manual_seed_all(0) is None
    cn.manual_seed(5)
    a = cn.rand(3).numpy()
    cn.manual_seed(5)
    cn.cuda.manual_seed(123)  # a no-op: the CPU generator is untouched
    np.testing.assert_array_equal(cn.rand(3).numpy(), a)
    cn.cuda.empty_cache()
    with pytest.raises(RuntimeError, match=GPU_MSG):
        cn.cuda.current_device()
    assert cn.accelerator.is_available() is False and cn.accelerator.current_accelerator() is None
    assert cn.backends.mps.is_available() is False and cn.backends.mps.is_built() is False
    from convnet.backends import cudnn

    assert (cudnn.benchmark, cudnn.deterministic, cudnn.enabled) == (
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
        torch.backends.cudnn.enabled)
    assert cudnn.is_available() is False
    old = cudnn.benchmark
    try:
        cn.backends.cudnn.benchmark = True
        assert cudnn.benchmark is True
    finally:
        cudnn.benchmark = old
    assert callable(cn.backends.get) and callable(cn.backends.use)  # the kernel API stays


def test_typical_device_selection_lines_pick_cpu():
    device = cn.device("cuda" if cn.cuda.is_available() else "cpu")
    acc = cn.accelerator.current_accelerator() if cn.accelerator.is_available() else None
    device2 = acc or cn.device("cpu")
    model = nn.Linear(3, 2).to(device)
    x = cn.randn(4, 3).to(device2)
    assert model(x).device == device == device2


# ------------------------------------------------------------------------------ Tensor.to
def _pair(seed=0):
    a = np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)
    return cn.tensor(a), torch.tensor(a)


@pytest.mark.parametrize("form", [
    lambda m, x: x.to("cpu"),
    lambda m, x: x.to(m.device("cpu")),
    lambda m, x: x.to(m.float64),
    lambda m, x: x.to(m.int64),
    lambda m, x: x.to("cpu", m.float64),
    lambda m, x: x.to(m.device("cpu"), dtype=m.int32),
    lambda m, x: x.to(device="cpu", dtype=m.float64),
    lambda m, x: x.to(dtype=m.float64, non_blocking=True),
    lambda m, x: x.to(m.float64, True, True),
    lambda m, x: x.to(m.zeros(1, dtype=m.float64)),
    lambda m, x: x.to(m.zeros(1, dtype=m.uint8), non_blocking=False),
    lambda m, x: x.to(None),
    lambda m, x: x.to(),
    lambda m, x: x.cpu(),
])
def test_tensor_to_forms_as_torch(form):
    c, t = _pair()
    rc, rt = form(cn, c), form(torch, t)
    _same(rc, rt)
    assert (rc is c) == (rt is t)


def test_tensor_to_copy_and_identity():
    c, t = _pair()
    for kw in ({}, {"copy": True}):
        rc, rt = c.to(cn.float32, **kw), t.to(torch.float32, **kw)
        assert (rc is c) == (rt is t)
    rc = c.to("cpu", copy=True)
    rc.numpy()[0, 0] = 99.0
    assert c.numpy()[0, 0] != 99.0
    assert c.device == cn.device("cpu") and str(c.device) == str(t.device) == "cpu"
    assert c.is_cuda is False and t.is_cuda is False


def test_tensor_to_keeps_autograd_as_torch():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    g = rng.standard_normal((3, 4))
    for m in (cn, torch):
        x = m.tensor(a, requires_grad=True)
        y = x.to("cpu", m.float64)
        assert y.requires_grad
        (y * m.tensor(g)).sum().backward()
        if m is cn:
            gc = x.grad.numpy()
        else:
            gt = x.grad.numpy()
    np.testing.assert_allclose(gc, gt, rtol=1e-6)
    x = cn.tensor(a, requires_grad=True)
    z = x.to(cn.float32, copy=True)  # a copy that still reaches x
    (z * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(a, 3))


@pytest.mark.parametrize("call", [lambda x: x.cuda(), lambda x: x.to("cuda"),
                                  lambda x: x.to("cuda:0", cn.float64), lambda x: x.to("mps"),
                                  lambda x: x.to(device=cn.device("cuda")), lambda x: x.to(0)])
def test_tensor_gpu_requests_raise_one_clear_error(call):
    with pytest.raises(RuntimeError, match=GPU_MSG):
        call(cn.ones(2))


def test_tensor_to_argument_errors():
    x = cn.ones(2)
    with pytest.raises(TypeError):
        torch.ones(2).to(torch.float64, torch.float32)
    with pytest.raises(TypeError):
        x.to(cn.float64, cn.float32)
    with pytest.raises(TypeError):
        torch.ones(2).to("cpu", device="cpu")
    with pytest.raises(TypeError):
        x.to("cpu", device="cpu")
    with pytest.raises(TypeError):
        x.to(cn.float64, bogus=1)


# ------------------------------------------------------------------------------ factories
SIZE_FORMS = [lambda f, **k: f(2, 3, **k), lambda f, **k: f((2, 3), **k),
              lambda f, **k: f([2, 3], **k), lambda f, **k: f(size=(2, 3), **k),
              lambda f, **k: f(cn.ones(2, 3).shape if f.__module__.startswith("convnet")
                               else torch.ones(2, 3).shape, **k)]


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "randn", "rand"])
@pytest.mark.parametrize("form", range(len(SIZE_FORMS)))
def test_sized_factories_size_forms(name, form):
    c = SIZE_FORMS[form](getattr(cn, name))
    t = SIZE_FORMS[form](getattr(torch, name))
    _same(c, t, values=name in ("zeros", "ones"))


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "randn", "rand"])
@pytest.mark.parametrize("dt", [0, 1])
def test_sized_factories_keywords(name, dt):
    cd, td = DTYPES[dt]
    kw = dict(dtype=cd, device="cpu", requires_grad=True)
    c = getattr(cn, name)(2, 3, layout=None, **kw)
    t = getattr(torch, name)(2, 3, **dict(kw, dtype=td))
    _same(c, t, values=name in ("zeros", "ones"))
    c = getattr(cn, name)(4, device=cn.device("cpu", 0))
    assert c.device == cn.device("cpu")


CASES = [  # (convnet call, torch call) with the module as argument; values compared
    lambda m, d: m.tensor([[1.5, 2.0]], dtype=d("f64"), device="cpu", requires_grad=True),
    lambda m, d: m.tensor([1, 2, 3]),
    lambda m, d: m.tensor([True, False]),
    lambda m, d: m.tensor(3.5),
    lambda m, d: m.tensor(np.arange(4, dtype=np.int32)),
    lambda m, d: m.tensor(np.arange(4, dtype=np.float64)),
    lambda m, d: m.tensor(np.arange(4, dtype=np.uint8)),
    lambda m, d: m.full((2, 2), 7.0, requires_grad=True),
    lambda m, d: m.full((2,), 2),
    lambda m, d: m.full((2,), True),
    lambda m, d: m.full([3], 1.5, dtype=d("f64"), device="cpu"),
    lambda m, d: m.zeros_like(m.ones(2, 3, dtype=d("i64"))),
    lambda m, d: m.ones_like(m.ones(2, 3), dtype=d("f64"), requires_grad=True),
    lambda m, d: m.full_like(m.ones(2, dtype=d("i64")), 4),
    lambda m, d: m.full_like(m.ones(2), 4, device="cpu", requires_grad=True),
    lambda m, d: m.arange(5),
    lambda m, d: m.arange(end=5),
    lambda m, d: m.arange(1, 7, 2, dtype=d("f64")),
    lambda m, d: m.arange(0, 1, 0.25, requires_grad=True),
    lambda m, d: m.arange(0, 1, 0.1),
    lambda m, d: m.arange(m.tensor(4)),
    lambda m, d: m.linspace(-1.3, 2.7, 11),
    lambda m, d: m.linspace(0, 1, 5, dtype=d("f64"), device="cpu", requires_grad=True),
    lambda m, d: m.logspace(0, 2, 3),
    lambda m, d: m.eye(3),
    lambda m, d: m.eye(2, 4, dtype=d("i64"), device="cpu"),
    lambda m, d: m.eye(3, requires_grad=True),
    lambda m, d: m.zeros([]),
    lambda m, d: m.zeros(0, 3),
]


def _dt(m):
    table = {"f64": (cn.float64, torch.float64), "i64": (cn.int64, torch.int64)}
    return lambda k: table[k][0 if m is cn else 1]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_factories_as_torch(case):
    _same(CASES[case](cn, _dt(cn)), CASES[case](torch, _dt(torch)))


RANDOM_CASES = [
    lambda m, d, g: m.randint(10, (3,)),
    lambda m, d, g: m.randint(3, 10, (2, 3)),
    lambda m, d, g: m.randint(high=10, size=(3,)),
    lambda m, d, g: m.randint(0, 10, size=[3], dtype=d("f64")),
    lambda m, d, g: m.randint(0, 10, (3,), generator=g),
    lambda m, d, g: m.randperm(5),
    lambda m, d, g: m.randperm(5, dtype=d("f64"), requires_grad=True),
    lambda m, d, g: m.randn(2, 2, generator=g, dtype=d("f64")),
    lambda m, d, g: m.rand(3, generator=g, requires_grad=True),
    lambda m, d, g: m.randn_like(m.ones(2, dtype=d("f64"))),
    lambda m, d, g: m.rand_like(m.ones(2), requires_grad=True),
    lambda m, d, g: m.randint_like(m.ones(2), 5),
    lambda m, d, g: m.randint_like(m.ones(2, dtype=d("i64")), 3, 5),
    lambda m, d, g: m.empty_like(m.ones(2, dtype=d("f64")), requires_grad=True),
]


@pytest.mark.parametrize("case", range(len(RANDOM_CASES)))
def test_random_factories_dtype_shape_grad_as_torch(case):
    c = RANDOM_CASES[case](cn, _dt(cn), np.random.default_rng(0))
    t = RANDOM_CASES[case](torch, _dt(torch), torch.Generator().manual_seed(0))
    _same(c, t, values=False)


def test_random_values_ranges_and_generator():
    x = cn.randint(3, 7, (1000,)).numpy()
    assert x.min() == 3 and x.max() == 6
    assert sorted(cn.randperm(6).numpy().tolist()) == list(range(6))
    a = cn.randn(4, generator=np.random.default_rng(7)).numpy()
    b = cn.randn(4, generator=np.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(a, b)
    y = cn.randint_like(cn.ones(500), 2, 4).numpy()
    assert set(np.unique(y)) == {2.0, 3.0}


def test_tensor_copies_as_torch():
    a = np.arange(3.0)
    c = cn.tensor(a)
    a[0] = 9.0
    assert c.numpy()[0] == 0.0  # tensor() copies
    src = cn.ones(2, requires_grad=True)
    d = cn.tensor(src)
    assert not d.requires_grad and not np.shares_memory(d.numpy(), src.numpy())
    b = np.ones(3)
    e = cn.as_tensor(b)
    e.numpy()[0] = 5.0
    assert b[0] == 5.0  # as_tensor shares, like torch.as_tensor
    assert cn.as_tensor(e) is e and _name(cn.as_tensor(b, dtype=cn.float32).dtype) == "float32"
    out = cn.empty(2, 3)
    r = cn.zeros(2, 3, out=out)
    assert r is out and out.numpy().sum() == 0


@pytest.mark.parametrize("call", [
    lambda m: m.zeros(2, dtype=m.int64, requires_grad=True),
    lambda m: m.tensor([1, 2], requires_grad=True),
    lambda m: m.randperm(4, requires_grad=True),
    lambda m: m.zeros(-1),
    lambda m: m.ones(2, -3),
    lambda m: m.zeros(2, pin_memory=True) if m is torch else m.empty(2, pin_memory=True),
])
def test_factory_errors_as_torch(call):
    with pytest.raises(RuntimeError):
        call(torch)
    with pytest.raises(RuntimeError):
        call(cn)


def test_factory_type_errors_as_torch():
    for m in (torch, cn):
        with pytest.raises(TypeError):
            m.zeros()
        with pytest.raises(TypeError):
            m.zeros(2.5)


@pytest.mark.parametrize("call", [
    lambda: cn.zeros(2, device="cuda"), lambda: cn.ones(2, device=cn.device("cuda", 0)),
    lambda: cn.tensor([1.0], device="cuda"), lambda: cn.arange(3, device="mps"),
    lambda: cn.randn(2, device="cuda:0"), lambda: cn.full((2,), 1.0, device="cuda"),
    lambda: cn.zeros_like(cn.ones(2), device="cuda"), lambda: cn.eye(2, device="cuda"),
    lambda: cn.linspace(0, 1, 3, device="cuda"), lambda: cn.randint(3, (2,), device="cuda"),
    lambda: cn.randperm(3, device="cuda"), lambda: cn.rand(2, device=0),
])
def test_factories_gpu_device_raise_clear_error(call):
    with pytest.raises(RuntimeError, match=GPU_MSG):
        call()


# ------------------------------------------------------------------------------ layers
LAYERS = [
    lambda m, **k: m.nn.Linear(3, 4, **k),
    lambda m, **k: m.nn.Linear(3, 4, bias=False, **k),
    lambda m, **k: m.nn.Conv1d(2, 3, 3, **k),
    lambda m, **k: m.nn.Conv2d(2, 4, 3, groups=2, **k),
    lambda m, **k: m.nn.Conv3d(1, 2, 2, **k),
    lambda m, **k: m.nn.ConvTranspose2d(2, 3, 3, **k),
    lambda m, **k: m.nn.BatchNorm1d(3, **k),
    lambda m, **k: m.nn.BatchNorm2d(3, **k),
    lambda m, **k: m.nn.BatchNorm3d(3, **k),
    lambda m, **k: m.nn.InstanceNorm2d(3, affine=True, track_running_stats=True, **k),
    lambda m, **k: m.nn.LayerNorm((2, 3), **k),
    lambda m, **k: m.nn.GroupNorm(2, 4, **k),
    lambda m, **k: m.nn.MultiheadAttention(8, 2, **k),
    lambda m, **k: m.nn.TransformerEncoderLayer(8, 2, 16, **k),
]


@pytest.mark.parametrize("layer", range(len(LAYERS)))
@pytest.mark.parametrize("dt", [None, 0, 1])
def test_layer_dtype_and_device_keywords_as_torch(layer, dt):
    kc, kt = {"device": "cpu"}, {"device": "cpu"}
    if dt is not None:
        kc["dtype"], kt["dtype"] = DTYPES[dt]
    c, t = LAYERS[layer](cn, **kc).state_dict(), LAYERS[layer](torch, **kt).state_dict()
    assert list(c) == list(t)
    for k in c:
        assert _name(c[k].dtype) == _name(t[k].dtype), k
        assert tuple(c[k].shape) == tuple(t[k].shape), k


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_layer_errors(layer):
    with pytest.raises(RuntimeError, match=GPU_MSG):
        LAYERS[layer](cn, device="cuda")
    with pytest.raises(RuntimeError):
        LAYERS[layer](torch, dtype=torch.int64)
    with pytest.raises(RuntimeError):
        LAYERS[layer](cn, dtype=cn.int64)


def test_separable_layers_take_device_and_dtype():
    m = nn.DepthwiseSeparableConv2d(2, 4, device="cpu", dtype=cn.float64)
    assert {_name(p.dtype) for p in m.parameters()} == {"float64"}
    with pytest.raises(RuntimeError, match=GPU_MSG):
        nn.SpatiallySeparableConv2d(2, 4, 3, device="cuda")


# ------------------------------------------------------------------------------ Module.to
MODULE_FORMS = [
    lambda m, net: net.to("cpu"),
    lambda m, net: net.to(m.device("cpu")),
    lambda m, net: net.to(m.float64),
    lambda m, net: net.to("cpu", m.float64),
    lambda m, net: net.to(device="cpu", dtype=m.float64),
    lambda m, net: net.to(m.zeros(1, dtype=m.float64)),
    lambda m, net: net.double().to(m.float32),
    lambda m, net: net.double().float(),
    lambda m, net: net.cpu(),
]


def _net(m):
    return m.nn.Sequential(m.nn.Conv2d(1, 2, 3), m.nn.BatchNorm2d(2), m.nn.Flatten(),
                           m.nn.Linear(8, 2))


@pytest.mark.parametrize("form", range(len(MODULE_FORMS)))
def test_module_to_forms_as_torch(form):
    nc, nt = _net(cn), _net(torch)
    params = list(nc.parameters())
    rc, rt = MODULE_FORMS[form](cn, nc), MODULE_FORMS[form](torch, nt)
    assert rc is nc and rt is nt
    sc, st = rc.state_dict(), rt.state_dict()
    assert list(sc) == list(st)
    for k in sc:
        assert _name(sc[k].dtype) == _name(st[k].dtype), k
    assert all(a is b for a, b in zip(params, rc.parameters()))  # same Parameter objects


def test_module_to_runs_forward_and_backward_in_float64():
    net = _net(cn).to("cpu", cn.float64)
    x = cn.randn(2, 1, 4, 4, dtype=cn.float64, device="cpu")
    y = net(x)
    assert _name(y.dtype) == "float64"
    y.sum().backward()
    assert all(_name(p.grad.dtype) == "float64" for p in net.parameters())


def test_module_to_errors_as_torch():
    with pytest.raises(TypeError):
        _net(torch).to(torch.int64)
    with pytest.raises(TypeError):
        _net(cn).to(cn.int64)
    with pytest.raises(RuntimeError, match=GPU_MSG):
        _net(cn).cuda()
    with pytest.raises(RuntimeError, match=GPU_MSG):
        _net(cn).to("cuda")
    with pytest.raises(RuntimeError, match=GPU_MSG):
        _net(cn).to(cn.device("mps"), cn.float64)
