"""Observers against torch.ao.quantization 2.13: statistics, scales and zero points equal
torch's bit for bit (same float32 arithmetic), dtypes of the returned tensors, errors."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import convnet as cn
import convnet.quantization as cq
from convnet.quantization import _histogram, observer

from .torch_twins import torch_kwargs

pytestmark = pytest.mark.filterwarnings("ignore:.*must run observer before calling")

PER_TENSOR_CONFIGS = [
    {},
    {"reduce_range": True},
    {"dtype": "qint8"},
    {"dtype": "qint8", "qscheme": "per_tensor_symmetric"},
    {"dtype": "qint8", "qscheme": "per_tensor_symmetric", "reduce_range": True},
    {"qscheme": "per_tensor_symmetric"},
    {"quant_min": 0, "quant_max": 127},
    {"quant_min": 0, "quant_max": 15, "qscheme": "per_tensor_symmetric"},
    {"dtype": "qint8", "quant_min": -127, "quant_max": 127, "eps": 2 ** -12},
    {"quant_min": 0, "quant_max": 255, "reduce_range": True},
]


def _batches(rng, kind: str):
    if kind == "normal":
        return [rng.standard_normal((4, 3, 6, 6)).astype(np.float32) * s for s in (1, 2, 0.5)]
    if kind == "positive":
        return [np.maximum(rng.standard_normal(500), 0).astype(np.float32) * 3 for _ in range(2)]
    if kind == "skewed":
        return [rng.lognormal(0, 1.5, 2000).astype(np.float32) for _ in range(3)]
    if kind == "negative":
        return [-rng.uniform(0.1, 2, 300).astype(np.float32)]
    if kind == "tiny":
        return [rng.standard_normal(100).astype(np.float32) * 1e-9]
    if kind == "float64":
        return [rng.standard_normal(300) * 3, rng.standard_normal(300)]
    raise ValueError(kind)


def _assert_qparams_equal(t_obs, c_obs):
    ts, tz = t_obs.calculate_qparams()
    cs, cz = c_obs.calculate_qparams()
    assert cs.dtype == np.float32 and str(tz.dtype) == f"torch.{cz.dtype}"
    np.testing.assert_array_equal(cs.numpy(), ts.numpy())
    np.testing.assert_array_equal(cz.numpy(), tz.numpy())


def _feed(t_obs, c_obs, batches):
    for b in batches:
        out = c_obs(cn.tensor(b))
        assert np.array_equal(out.numpy(), b)  # observers return their input unchanged
        t_obs(torch.from_numpy(b))


@pytest.mark.parametrize("kw", PER_TENSOR_CONFIGS)
@pytest.mark.parametrize("kind", ["normal", "positive", "skewed", "negative", "tiny", "float64"])
def test_minmax_observer_matches_torch(kw, kind):
    if kw.get("reduce_range") and kw.get("qscheme") == "per_tensor_symmetric" and "dtype" not in kw:
        pytest.skip("torch rejects reduce_range with symmetric quint8")
    rng = np.random.default_rng(0)
    t_obs, c_obs = tq.MinMaxObserver(**torch_kwargs(kw)), cq.MinMaxObserver(**kw)
    assert (c_obs.quant_min, c_obs.quant_max) == (t_obs.quant_min, t_obs.quant_max)
    _feed(t_obs, c_obs, _batches(rng, kind))
    assert c_obs.min_val.numpy() == t_obs.min_val.item()
    assert c_obs.max_val.numpy() == t_obs.max_val.item()
    _assert_qparams_equal(t_obs, c_obs)


@pytest.mark.parametrize("kw", PER_TENSOR_CONFIGS[:5])
@pytest.mark.parametrize("c", [0.01, 0.5, 1.0])
def test_moving_average_observer_matches_torch(kw, c):
    rng = np.random.default_rng(1)
    t_obs = tq.MovingAverageMinMaxObserver(averaging_constant=c, **torch_kwargs(kw))
    c_obs = cq.MovingAverageMinMaxObserver(averaging_constant=c, **kw)
    batches = [rng.standard_normal(200).astype(np.float32) * s + m
               for s, m in ((1, 0), (3, 1), (0.2, -2), (5, 0))]
    for b in batches:
        c_obs(cn.tensor(b))
        t_obs(torch.from_numpy(b))
        assert c_obs.min_val.numpy() == t_obs.min_val.item()
        assert c_obs.max_val.numpy() == t_obs.max_val.item()
    _assert_qparams_equal(t_obs, c_obs)


PER_CHANNEL_CONFIGS = [
    {},
    {"dtype": "qint8", "qscheme": "per_channel_symmetric"},
    {"dtype": "qint8", "qscheme": "per_channel_symmetric", "ch_axis": 1},
    {"ch_axis": 2, "reduce_range": True},
    {"dtype": "qint8", "qscheme": "per_channel_affine", "quant_min": -127, "quant_max": 127},
    {"qscheme": "per_channel_affine_float_qparams"},  # embeddings: float zero points
]


@pytest.mark.parametrize("kw", PER_CHANNEL_CONFIGS)
@pytest.mark.parametrize("moving", [False, True])
def test_per_channel_observers_match_torch(kw, moving):
    rng = np.random.default_rng(2)
    if moving:
        t_obs = tq.MovingAveragePerChannelMinMaxObserver(averaging_constant=0.3, **torch_kwargs(kw))
        c_obs = cq.MovingAveragePerChannelMinMaxObserver(averaging_constant=0.3, **kw)
    else:
        t_obs, c_obs = tq.PerChannelMinMaxObserver(**torch_kwargs(kw)), cq.PerChannelMinMaxObserver(**kw)
    assert c_obs.min_val.shape == (0,)
    for s in (1.0, 2.5, 0.3):
        w = (rng.standard_normal((6, 4, 3, 3)) * s).astype(np.float32)
        w[0] = np.abs(w[0])      # a channel with no negatives
        w[1] = 0                 # an all-zero channel (scale falls back to eps)
        c_obs(cn.tensor(w))
        t_obs(torch.from_numpy(w))
    np.testing.assert_array_equal(c_obs.min_val.numpy(), t_obs.min_val.numpy())
    np.testing.assert_array_equal(c_obs.max_val.numpy(), t_obs.max_val.numpy())
    _assert_qparams_equal(t_obs, c_obs)
    assert c_obs.calculate_qparams()[0].shape == (w.shape[c_obs.ch_axis],)


def test_per_channel_symmetric_weight_formula():
    """qint8 per-channel symmetric: scale_c = max|W_c| / 127.5, zero point 0."""
    w = np.array([[1.0, -2.0, 0.5], [0.25, 0.1, -0.05]], np.float32)
    obs = cq.default_per_channel_weight_observer()
    obs(cn.tensor(w))
    scale, zp = obs.calculate_qparams()
    np.testing.assert_array_equal(scale.numpy(), np.float32([2.0, 0.25]) / np.float32(127.5))
    assert zp.numpy().tolist() == [0, 0] and zp.dtype == np.int64


def test_affine_formula_worked_example():
    """min -1, max 3 on quint8: scale = 4/255, zero_point = 0 - round(-1/scale) = 64."""
    obs = cq.MinMaxObserver()
    obs(cn.tensor(np.array([-1.0, 0.5, 3.0], np.float32)))
    scale, zp = obs.calculate_qparams()
    assert scale.numpy()[0] == np.float32(4.0) / np.float32(255)
    assert zp.numpy().tolist() == [64] and zp.dtype == np.int32  # torch: int32 for affine


@pytest.mark.parametrize("kw", PER_TENSOR_CONFIGS)
@pytest.mark.parametrize("kind", ["normal", "positive", "skewed", "negative", "float64"])
def test_histogram_observer_matches_torch(kw, kind):
    if kw.get("reduce_range") and kw.get("qscheme") == "per_tensor_symmetric" and "dtype" not in kw:
        pytest.skip("torch rejects reduce_range with symmetric quint8")
    rng = np.random.default_rng(3)
    t_obs, c_obs = tq.HistogramObserver(**torch_kwargs(kw)), cq.HistogramObserver(**kw)
    _feed(t_obs, c_obs, _batches(rng, kind))
    np.testing.assert_array_equal(c_obs.histogram.numpy(), t_obs.histogram.numpy())
    assert c_obs.min_val.numpy() == t_obs.min_val.item()
    assert c_obs.max_val.numpy() == t_obs.max_val.item()
    _assert_qparams_equal(t_obs, c_obs)


@pytest.mark.parametrize("seed", range(6))
def test_histogram_observer_random_streams_match_torch(seed):
    """Ranges that grow, shrink and jump between calls (histograms re-binned 16x), heavy
    tails and outliers, float32 and float64 batches."""
    rng = np.random.default_rng(100 + seed)
    t_obs, c_obs = tq.HistogramObserver(), cq.HistogramObserver()
    for _ in range(4):
        n = int(rng.integers(50, 5000))
        scale = 10 ** rng.uniform(-2, 2)
        kind = rng.integers(0, 4)
        b = [rng.standard_normal(n), rng.standard_t(2, n), rng.lognormal(0, 2, n),
             np.maximum(rng.standard_normal(n), 0)][kind] * scale + rng.uniform(-1, 1) * scale
        b = b.astype(np.float32 if rng.random() < 0.8 else np.float64)
        _feed(t_obs, c_obs, [b])
        np.testing.assert_array_equal(c_obs.histogram.numpy(), t_obs.histogram.numpy())
    _assert_qparams_equal(t_obs, c_obs)


def test_histogram_observer_range_within_min_max_with_outliers():
    """The L2 search may trim the tails but never widens the range (as torch: with 8-bit
    targets it trims little, even for outliers)."""
    rng = np.random.default_rng(4)
    for x in (np.concatenate([rng.standard_normal(5000), [60.0]]), rng.standard_t(2, 5000),
              np.concatenate([rng.standard_normal(5000), rng.uniform(20, 60, 50)])):
        x = x.astype(np.float32)
        t_obs, h, m = tq.HistogramObserver(), cq.HistogramObserver(), cq.MinMaxObserver()
        _feed(t_obs, h, [x])
        m(cn.tensor(x))
        _assert_qparams_equal(t_obs, h)
        assert h.calculate_qparams()[0].numpy()[0] <= m.calculate_qparams()[0].numpy()[0]


@pytest.mark.parametrize("cls", [cq.MinMaxObserver, cq.MovingAverageMinMaxObserver,
                                 cq.HistogramObserver])
def test_all_zero_and_constant_inputs_match_torch(cls):
    t_cls = getattr(tq, cls.__name__)
    for batches in ([np.zeros(50, np.float32)],
                    [np.zeros(50, np.float32), np.linspace(-1, 2, 40, dtype=np.float32)],
                    [np.full(30, 2.5, np.float32), np.full(30, -1.0, np.float32)]):
        t_obs, c_obs = t_cls(), cls()
        _feed(t_obs, c_obs, batches)
        _assert_qparams_equal(t_obs, c_obs)
    zero = cls()
    zero(cn.tensor(np.zeros(8, np.float32)))
    scale, zp = zero.calculate_qparams()
    assert scale.numpy()[0] == np.finfo(np.float32).eps and zp.numpy()[0] == 0


@pytest.mark.parametrize("cls", [cq.MinMaxObserver, cq.PerChannelMinMaxObserver,
                                 cq.HistogramObserver])
def test_unobserved_returns_torch_defaults(cls):
    scale, zp = cls().calculate_qparams()
    assert scale.numpy().tolist() == [1.0] and zp.numpy().tolist() == [0]
    assert zp.dtype == np.int64


def test_empty_input_is_ignored():
    obs = cq.MinMaxObserver()
    out = obs(cn.tensor(np.zeros((0, 3), np.float32)))
    assert out.shape == (0, 3) and obs.min_val.numpy() == np.inf


@pytest.mark.parametrize("cls", [cq.MinMaxObserver, cq.MovingAverageMinMaxObserver,
                                 cq.PerChannelMinMaxObserver, cq.HistogramObserver])
def test_nan_input_is_a_clear_error(cls):
    x = np.array([[1.0, np.nan], [0.5, 2.0]], np.float32)
    with pytest.raises(ValueError, match=r"NaN"):
        cls()(cn.tensor(x))


def test_inf_input_minmax_error_histogram_ignores_like_torch():
    x = np.array([1.0, -2.0, np.inf, 0.5], np.float32)
    with pytest.raises(ValueError, match=r"1 inf"):
        cq.MinMaxObserver()(cn.tensor(x))
    t_obs, c_obs = tq.HistogramObserver(), cq.HistogramObserver()
    with pytest.warns(UserWarning, match="inf"):
        c_obs(cn.tensor(x))
        t_obs(torch.from_numpy(x))
    assert c_obs.max_val.numpy() == t_obs.max_val.item() == 1.0
    _assert_qparams_equal(t_obs, c_obs)


def test_argument_errors():
    with pytest.raises(NotImplementedError, match="per_tensor"):
        cq.MinMaxObserver(qscheme="per_channel_affine")
    with pytest.raises(NotImplementedError, match="per_channel"):
        cq.PerChannelMinMaxObserver(qscheme="per_tensor_affine")
    with pytest.raises(NotImplementedError, match="symmetric"):
        cq.MinMaxObserver(qscheme="per_tensor_symmetric", reduce_range=True)
    with pytest.raises(ValueError, match="qscheme must be one of"):
        cq.MinMaxObserver(qscheme="per_row")
    with pytest.raises(TypeError, match="dtype"):
        cq.MinMaxObserver(dtype="int4")
    with pytest.raises(ValueError, match="include 0"):
        cq.MinMaxObserver(quant_min=1, quant_max=10)
    with pytest.raises(ValueError, match="at most 256"):
        cq.MinMaxObserver(dtype="qint8", quant_min=-200, quant_max=100)
    with pytest.raises(TypeError, match="unexpected arguments"):
        cq.MinMaxObserver(averaging_constant=0.1)
    with pytest.raises(ValueError, match="ch_axis=3"):
        cq.PerChannelMinMaxObserver(ch_axis=3)(cn.tensor(np.ones((2, 2), np.float32)))
    obs = cq.PerChannelMinMaxObserver()
    obs(cn.tensor(np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match="3 were observed"):
        obs(cn.tensor(np.ones((4, 2), np.float32)))


def test_quant_ranges_match_torch():
    for kw in PER_TENSOR_CONFIGS + [{"dtype": "qint32"}]:
        if kw.get("reduce_range") and kw.get("qscheme") == "per_tensor_symmetric" and "dtype" not in kw:
            continue
        t_obs, c_obs = tq.MinMaxObserver(**torch_kwargs(kw)), cq.MinMaxObserver(**kw)
        assert (c_obs.quant_min, c_obs.quant_max) == (t_obs.quant_min, t_obs.quant_max), kw


def test_with_args_builds_independent_observers():
    factory = cq.MinMaxObserver.with_args(dtype=cq.qint8).with_args(qscheme=cq.per_tensor_symmetric)
    a, b = factory(), factory()
    assert a is not b and a.dtype == cq.qint8 and a.qscheme == "per_tensor_symmetric"
    a(cn.tensor(np.ones(3, np.float32)))
    assert b.min_val.numpy() == np.inf
    counter = iter(range(10))
    lazy = cq.MovingAverageMinMaxObserver.with_callable_args(averaging_constant=lambda: next(counter) / 10)
    assert [lazy().averaging_constant for _ in range(3)] == [0.0, 0.1, 0.2]


def test_placeholder_noop_and_fixed_observers():
    x = cn.tensor(np.arange(4, dtype=np.float32))
    for obs in (cq.PlaceholderObserver(dtype=np.float16), cq.NoopObserver()):
        assert obs(x) is x
        with pytest.raises(RuntimeError, match="should not be called"):
            obs.calculate_qparams()
    fixed = observer.default_fixed_qparams_range_0to1_observer()
    scale, zp = fixed.calculate_qparams()
    assert scale.numpy().tolist() == [1 / 256] and zp.numpy().tolist() == [0]


def test_state_dict_and_reset():
    obs = cq.HistogramObserver(bins=16)
    obs(cn.tensor(np.linspace(-1, 1, 100, dtype=np.float32)))
    sd = obs.state_dict()
    assert set(sd) == {"eps", "histogram", "min_val", "max_val"}
    fresh = cq.HistogramObserver(bins=16)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.calculate_qparams()[0].numpy(),
                                  obs.calculate_qparams()[0].numpy())
    mm = cq.MinMaxObserver()
    mm(cn.tensor(np.ones(2, np.float32)))
    mm.reset_min_max_vals()
    assert mm.min_val.numpy() == np.inf and mm.max_val.numpy() == -np.inf


def test_float32_kernels_follow_torch_order():
    """The helpers that decide HistogramObserver's search: sum order, cumsum, linspace."""
    rng = np.random.default_rng(5)
    for n in (5, 16, 300, 2048, 2049):
        a = (rng.standard_normal(n) * 10 ** rng.uniform(-3, 3, n)).astype(np.float32)
        assert _histogram.sum_f32(a) == torch.from_numpy(a).sum().item()
        np.testing.assert_array_equal(_histogram.cumsum_f32(np.abs(a)),
                                      torch.cumsum(torch.from_numpy(np.abs(a)), 0).numpy())
    for steps in (2, 2049, 32769):
        lo, hi = sorted(rng.standard_normal(2).astype(np.float32) * 3)
        np.testing.assert_array_equal(_histogram.linspace_f32(lo, hi, steps),
                                      torch.linspace(torch.tensor(lo), torch.tensor(hi), steps).numpy())
    x = rng.standard_normal(5000).astype(np.float32)
    np.testing.assert_array_equal(_histogram.histc(x, 2048, float(x.min()), float(x.max())),
                                  torch.histc(torch.from_numpy(x), 2048, float(x.min()), float(x.max())).numpy())
