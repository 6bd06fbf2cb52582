"""QTensor, quantize_per_tensor / quantize_per_channel: bit for bit against torch 2.13."""
import numpy as np
import pytest

import convnet
import convnet.quantization as cq
from convnet.kernels import quantized as K
from convnet.quantization.qtensor import QTensor

torch = pytest.importorskip("torch")

_TORCH_DTYPES = {"quint8": "quint8", "qint8": "qint8", "qint32": "qint32"}


def _tdtype(name):
    return getattr(torch, _TORCH_DTYPES[name])


def _with_ties(rng, scale, n):
    """Random values plus exact half-steps ``(k + 0.5) * scale`` (where rounding rules
    differ) and values far outside the range (clamping)."""
    k = rng.integers(-300, 300, n)
    return np.concatenate([(k + 0.5) * scale, rng.normal(0, 5, n),
                           [1e6, -1e6, 0.0, -0.0]]).astype(np.float32)


@pytest.mark.parametrize("dtype", ["quint8", "qint8", "qint32"])
def test_quantize_per_tensor_matches_torch_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    qd = getattr(cq, dtype)
    total = 0
    for _ in range(120):
        scale = float(rng.uniform(1e-3, 0.2))  # a double: torch rounds 1/scale in float32
        zp = int(rng.integers(max(qd.qmin, -1000), min(qd.qmax, 1000) + 1))
        x = _with_ties(rng, scale, int(rng.integers(1, 60)))
        want = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, _tdtype(dtype))
        got = cq.quantize_per_tensor(convnet.tensor(x), scale, zp, qd)
        np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
        assert got.int_repr().numpy().dtype == want.int_repr().numpy().dtype
        np.testing.assert_array_equal(got.dequantize().numpy(), want.dequantize().numpy())
        assert got.q_scale() == want.q_scale() and got.q_zero_point() == want.q_zero_point()
        total += x.size
    assert total > 5000


def test_per_tensor_rounding_is_not_the_naive_formula():
    """The naive ``round(x / s) + z`` differs from torch on ties; ours must not."""
    scale, zp = 0.1, 1
    x = np.array([0.05, 0.15, -0.05, 0.25], np.float32)
    naive = np.clip(np.rint(x / np.float32(scale)) + zp, 0, 255)
    want = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8).int_repr()
    got = cq.quantize_per_tensor(x, scale, zp, cq.quint8).int_repr().numpy()
    np.testing.assert_array_equal(got, want.numpy())
    assert (naive != want.numpy()).any()  # the test can tell the two formulas apart


@pytest.mark.parametrize("dtype,axis", [("qint8", 0), ("quint8", 1), ("qint8", 2),
                                        ("qint32", 0)])
def test_quantize_per_channel_matches_torch_bit_for_bit(dtype, axis):
    rng = np.random.default_rng(1)
    qd = getattr(cq, dtype)
    for _ in range(40):
        shape = [int(rng.integers(1, 6)) for _ in range(3)]
        c = shape[axis]
        scales = rng.uniform(1e-3, 0.2, c)
        zps = rng.integers(max(qd.qmin, -50), min(qd.qmax, 50) + 1, c)
        x = (rng.integers(-300, 300, shape) + 0.5) * scales.reshape(
            [-1 if i == axis else 1 for i in range(3)])
        x = np.where(rng.random(shape) < 0.5, x, rng.normal(0, 3, shape)).astype(np.float32)
        want = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales),
                                          torch.from_numpy(zps), axis, _tdtype(dtype))
        got = cq.quantize_per_channel(x, scales, zps, axis, qd)
        np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
        np.testing.assert_array_equal(got.dequantize().numpy(), want.dequantize().numpy())
        np.testing.assert_array_equal(got.q_per_channel_scales().numpy(),
                                      want.q_per_channel_scales().numpy())
        np.testing.assert_array_equal(got.q_per_channel_zero_points().numpy(),
                                      want.q_per_channel_zero_points().numpy())
        assert got.q_per_channel_axis() == axis
        assert got.q_per_channel_scales().numpy().dtype == np.float64
        assert got.q_per_channel_zero_points().numpy().dtype == np.int64


def test_accessors_and_schemes():
    q = cq.quantize_per_tensor(convnet.tensor([[0.5, -1.0, 2.0]]), 0.5, 3, cq.qint8)
    assert q.qscheme() == "per_tensor_affine" and q.dtype is cq.qint8
    assert q.shape == (1, 3) and q.size() == (1, 3) and q.size(1) == 3 and q.dim() == 2
    assert q.int_repr().numpy().tolist() == [[4, 1, 7]]
    assert q.dequantize().numpy().dtype == np.float32
    assert q.flatten().shape == (3,) and q.reshape(3, 1).shape == (3, 1)
    assert q.reshape(3, 1).q_scale() == 0.5
    with pytest.raises(RuntimeError, match="per-channel"):
        q.q_per_channel_scales()
    qc = cq.quantize_per_channel(np.ones((2, 3), np.float32), [0.1, 0.2], [0, 1], 0, cq.qint8)
    assert qc.qscheme() == "per_channel_affine"
    with pytest.raises(RuntimeError, match="per-tensor"):
        qc.q_scale()
    with pytest.raises(RuntimeError, match="per-tensor"):
        qc.reshape(6)
    with pytest.raises(TypeError, match="FloatFunctional"):
        q + q


def test_repr_shows_values_and_qparams():
    q = cq.quantize_per_tensor(convnet.tensor([1.0, 2.0]), 0.1, 3, cq.quint8)
    text = repr(q)
    assert "quint8" in text and "scale=0.1" in text and "zero_point=3" in text
    assert "per_tensor_affine" in text and "[1., 2.]" in text


def test_from_int_repr_round_trip():
    q = cq.quantize_per_channel(np.arange(6, dtype=np.float32).reshape(2, 3), [0.1, 0.5],
                                [0, -2], 0, cq.qint8)
    back = QTensor.from_int_repr(q.int_repr(), q.q_per_channel_scales(),
                                 q.q_per_channel_zero_points(), axis=0)
    np.testing.assert_array_equal(back.dequantize().numpy(), q.dequantize().numpy())
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        QTensor.from_int_repr(np.array([-1, 3], np.int32), 0.1, 0, cq.quint8)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: cq.quantize_per_tensor(np.ones(3, np.float32), 0.0, 0, cq.quint8), ValueError,
     "scale must be positive"),
    (lambda: cq.quantize_per_tensor(np.ones(3, np.float32), 0.1, 300, cq.quint8), ValueError,
     "zero_point must be between 0 and 255"),
    (lambda: cq.quantize_per_tensor(np.ones(3, np.int64), 0.1, 0, cq.quint8), TypeError,
     "floating point"),
    (lambda: cq.quantize_per_tensor(np.ones(3, np.float32), 0.1, 0, "float32"), TypeError,
     "dtype must be"),
    (lambda: cq.quantize_per_channel(np.ones((2, 3), np.float32), [0.1], [0], 0, cq.qint8),
     ValueError, r"length 2 \(size of axis 0 of the input \(2, 3\)\)"),
    (lambda: cq.quantize_per_channel(np.ones((2, 3), np.float32), [0.1, 0.1], [0, 0], 2,
                                     cq.qint8), ValueError, "axis 2 is out of range"),
])
def test_bad_arguments_are_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_kernel_dequantize_is_float32_product():
    q = np.array([0, 10, 255], np.uint8)
    np.testing.assert_array_equal(K.dequantize(q, 0.1, 10),
                                  ((q.astype(np.float32) - 10) * np.float32(0.1)))
