"""SGD and Adam/AdamW update kernels (numba and the NumPy reference) against each other and
torch.optim over several steps, every option combination, float64 and float32; and the
optimizers of convnet.optim through the backend."""
import itertools

import numpy as np
import pytest

from convnet import backends

torch = pytest.importorskip("torch")
# loading the backend first points numba's cache at $NUMBA_CACHE_DIR (not the source tree)
if "numba" not in backends.available():
    pytest.skip("numba is not installed", allow_module_level=True)

import convnet as cn  # noqa: E402
import convnet.optim as optim  # noqa: E402
from convnet.backends.numba_kernels import optim_update as nb  # noqa: E402
from convnet.kernels import optim_update as ref  # noqa: E402

SHAPES = [(3, 4, 5), (7,), (1,), (2, 1, 3, 3)]
STEPS = 6
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-6, atol=1e-6)}

# (momentum, dampening, nesterov) x weight_decay x maximize
SGD_CASES = [dict(momentum=mu, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
             for (mu, d, n), wd, mx in itertools.product(
                 [(0.0, 0.0, False), (0.9, 0.0, False), (0.8, 0.3, False), (0.9, 0.0, True)],
                 [0.0, 0.1], [False, True])]
# amsgrad x weight_decay x decoupled (AdamW) x maximize; betas other than the defaults once
ADAM_CASES = [dict(amsgrad=a, weight_decay=wd, decoupled=dec, maximize=mx)
              for a, wd, dec, mx in itertools.product([False, True], [0.0, 0.1],
                                                      [False, True], [False, True])]


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run_sgd(kernel, dtype, lr=0.05, **opts):
    ps, bufs = _params(dtype), [None] * len(SHAPES)
    for step in range(STEPS):
        for i, (p, g) in enumerate(zip(ps, _grads(step, dtype))):
            bufs[i] = kernel(p, g, bufs[i], lr, **opts)
    return ps, bufs


def _torch_run(make_opt, dtype):
    ps = [torch.tensor(p, requires_grad=True) for p in _params(dtype)]
    opt = make_opt(ps)
    for step in range(STEPS):
        for p, g in zip(ps, _grads(step, dtype)):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps], opt


def _run_adam(kernel, dtype, lr=0.01, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, **opts):
    ps = _params(dtype)
    state = [(np.zeros_like(p), np.zeros_like(p), np.zeros_like(p) if amsgrad else None)
             for p in ps]
    for step in range(STEPS):
        for p, g, (m, v, vmax) in zip(ps, _grads(step, dtype), state):
            kernel(p, g, m, v, vmax, step + 1, lr, betas[0], betas[1], eps, **opts)
    return ps, state


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opts", SGD_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_matches_reference_and_torch(opts, dtype):
    ps, bufs = _run_sgd(nb.sgd_update, dtype, **opts)
    r_ps, r_bufs = _run_sgd(ref.sgd_update, dtype, **opts)
    t_ps, t_opt = _torch_run(lambda p: torch.optim.SGD(p, lr=0.05, **opts), dtype)
    for p, rp, tp, b, rb in zip(ps, r_ps, t_ps, bufs, r_bufs):
        assert p.dtype == dtype
        # the same operations in the same order and dtype: the same bits
        np.testing.assert_array_equal(p, rp)
        np.testing.assert_allclose(p, tp, **TOL[dtype])
        if opts["momentum"]:
            assert b.dtype == dtype and b.shape == p.shape
            np.testing.assert_array_equal(b, rb)
        else:
            assert b is None and rb is None
    if opts["momentum"]:
        t_bufs = [t_opt.state[p]["momentum_buffer"].numpy() for p in t_opt.param_groups[0]["params"]]
        for b, tb in zip(bufs, t_bufs):
            np.testing.assert_allclose(b, tb, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opts", ADAM_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_adam_matches_reference_and_torch(opts, dtype):
    betas = (0.8, 0.99) if opts["maximize"] else (0.9, 0.999)
    ps, state = _run_adam(nb.adam_update, dtype, betas=betas, **opts)
    r_ps, r_state = _run_adam(ref.adam_update, dtype, betas=betas, **opts)
    t_cls = torch.optim.AdamW if opts["decoupled"] else torch.optim.Adam
    t_opts = dict(weight_decay=opts["weight_decay"], amsgrad=opts["amsgrad"],
                  maximize=opts["maximize"])
    t_ps, t_opt = _torch_run(lambda p: t_cls(p, lr=0.01, betas=betas, eps=1e-8, **t_opts), dtype)
    t_params = t_opt.param_groups[0]["params"]
    for p, rp, tp, s, rs, tparam in zip(ps, r_ps, t_ps, state, r_state, t_params):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p, rp)
        for a, b in zip(s, rs):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(p, tp, **TOL[dtype])
        ts = t_opt.state[tparam]
        np.testing.assert_allclose(s[0], ts["exp_avg"].numpy(), **TOL[dtype])
        np.testing.assert_allclose(s[1], ts["exp_avg_sq"].numpy(), **TOL[dtype])
        if opts["amsgrad"]:
            np.testing.assert_allclose(s[2], ts["max_exp_avg_sq"].numpy(), **TOL[dtype])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf, 0/0 in the reference
def test_nan_and_inf_like_reference():
    """Non-finite gradients, parameters and a zero eps give the reference's bits (NaN too)."""
    for dtype in (np.float64, np.float32):
        g = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 2.0], dtype=dtype)
        p0 = np.array([1.0, -1.0, 0.5, 0.0, 2.0, np.inf, np.nan], dtype=dtype)
        for kwargs in (dict(momentum=0.9, weight_decay=0.1), dict(momentum=0.9, nesterov=True),
                       dict()):
            a, b = p0.copy(), p0.copy()
            ba = nb.sgd_update(a, g, None, 0.1, **kwargs)
            bb = ref.sgd_update(b, g, None, 0.1, **kwargs)
            np.testing.assert_array_equal(a, b)
            if ba is not None:
                np.testing.assert_array_equal(ba, bb)
                nb.sgd_update(a, g, ba, 0.1, **kwargs)
                ref.sgd_update(b, g, bb, 0.1, **kwargs)
                np.testing.assert_array_equal(a, b)
        for amsgrad, wd, eps in ((True, 0.1, 1e-8), (False, 0.0, 0.0), (True, 0.0, 0.0)):
            arrays = [[p0.copy()] + [np.zeros_like(p0) for _ in range(3)] for _ in range(2)]
            for step in (1, 2):
                for kern, (p, m, v, vm) in zip((nb.adam_update, ref.adam_update), arrays):
                    kern(p, g, m, v, vm if amsgrad else None, step, 0.01, 0.9, 0.999, eps,
                         weight_decay=wd)
                for x, y in zip(*arrays):
                    np.testing.assert_array_equal(x, y)
            assert np.isnan(arrays[0][0]).any()


def test_non_contiguous_and_mixed_dtypes_fall_back_in_place():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((6, 8))
    g = rng.standard_normal((3, 8))
    a, b = base.copy(), base.copy()
    pa, pb = a[::2], b[::2]  # non-contiguous parameters: updated in place all the same
    buf_a = nb.sgd_update(pa, g, None, 0.1, momentum=0.9)
    buf_b = ref.sgd_update(pb, g, None, 0.1, momentum=0.9)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(buf_a, buf_b)
    assert not np.array_equal(a, base)
    # a float32 gradient on a float64 parameter; a transposed (non-contiguous) gradient
    p32, r32 = base.copy(), base.copy()
    st = [np.zeros_like(base) for _ in range(4)]
    nb.adam_update(p32, g.repeat(2, 0).astype(np.float32), st[0], st[1], None, 1, 0.01, 0.9,
                   0.999, 1e-8)
    ref.adam_update(r32, g.repeat(2, 0).astype(np.float32), st[2], st[3], None, 1, 0.01, 0.9,
                    0.999, 1e-8)
    np.testing.assert_array_equal(p32, r32)
    gt = rng.standard_normal((8, 6)).T
    p, r = base.copy(), base.copy()
    nb.sgd_update(p, gt, None, 0.1, weight_decay=0.01)
    ref.sgd_update(r, gt, None, 0.1, weight_decay=0.01)
    np.testing.assert_array_equal(p, r)


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


def _optimizer_run(make_c, make_t, dtype):
    """Four steps of a convnet and a torch optimizer on the same parameters and gradients."""
    init = _params(dtype, seed=1)
    cps = [cn.tensor(p.copy(), requires_grad=True) for p in init]
    tps = [torch.tensor(p, requires_grad=True) for p in init]
    co, to = make_c(cps), make_t(tps)
    for step in range(4):
        for cp, tp, g in zip(cps, tps, _grads(step, dtype)):
            cp.grad, tp.grad = cn.tensor(g), torch.tensor(g)
        co.step()
        to.step()
    for cp, tp in zip(cps, tps):
        assert cp.dtype == dtype
        np.testing.assert_allclose(cp.numpy(), tp.detach().numpy(), **TOL[dtype])


OPTIMIZERS = [
    (lambda p: optim.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, maximize=True),
     lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-3,
                               maximize=True)),
    (lambda p: optim.Adam(p, 0.01, weight_decay=0.1, amsgrad=True, maximize=True),
     lambda p: torch.optim.Adam(p, 0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    (lambda p: optim.AdamW(p, 0.01, weight_decay=0.3),
     lambda p: torch.optim.AdamW(p, 0.01, weight_decay=0.3)),
]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make_c, make_t", OPTIMIZERS)
def test_optimizers_through_backend(make_c, make_t, dtype, backend, restore_backend):
    backends.use(backend)
    assert (backends.get().adam_update is nb.adam_update) == (backend == "numba")
    _optimizer_run(make_c, make_t, dtype)


def test_optimizers_call_the_backend_kernels_without_negated_copies(monkeypatch):
    """SGD and Adam update through the backend's kernels, which get ``maximize`` themselves
    (the raw gradient, not a negated copy)."""
    be = backends.get()
    seen = []
    for name in ("sgd_update", "adam_update"):
        kernel = getattr(be, name)

        def spy(p, g, *args, _k=kernel, _n=name, **kw):
            seen.append((_n, g))
            return _k(p, g, *args, **kw)
        monkeypatch.setattr(be, name, spy)
    w = cn.tensor(np.ones(3), requires_grad=True)
    given = []
    for opt in (optim.SGD([w], 0.1, momentum=0.9, maximize=True),
                optim.Adam([w], 0.1, maximize=True), optim.AdamW([w], 0.1, maximize=True)):
        w.grad = cn.tensor(np.array([1.0, 2.0, 3.0]))
        given.append(w.grad.numpy())
        opt.step()
    assert [n for n, _ in seen] == ["sgd_update", "adam_update", "adam_update"]
    assert all(g is d for (_, g), d in zip(seen, given))
