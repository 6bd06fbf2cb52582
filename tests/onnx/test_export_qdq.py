"""Quantized models (prepare -> calibrate -> convert) export as QDQ graphs: int8 weights
with DequantizeLinear per output channel, int32 biases, QuantizeLinear/DequantizeLinear at
every quantized module's output. onnxruntime's outputs equal convnet's quantized model
bit-exactly or within 1 step of the output scale on >= 99.9% of elements."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import convnet
import convnet.onnx
import convnet.quantization as cq
from convnet import models, nn
from convnet.quantization.pipeline import fusion_groups

from .helpers import op_types, randomize, session


def quantize(model, calibration, qconfig="x86", fuse=True, wrap=True):
    model = randomize(model).eval()
    groups = fusion_groups(model) if fuse else []
    fused = cq.fuse_modules(model, groups) if groups else model
    wrapped = cq.QuantWrapper(fused) if wrap else fused
    wrapped.qconfig = cq.get_default_qconfig(qconfig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = cq.prepare(wrapped)
        with convnet.no_grad():
            for x in calibration:
                prepared(convnet.tensor(x))
        return cq.convert(prepared)


def output_scale(model) -> float:
    scales = [m.scale for m in model.modules() if "scale" in m._buffers]
    return scales[-1]


def check_qdq(qmodel, sample_shape, batches=(1, 3, 32), seed=1, min_equal=0.999, **kw):
    rs = np.random.RandomState(seed)
    proto = convnet.onnx.export(qmodel, convnet.tensor(rs.randn(2, *sample_shape)
                                                       .astype(np.float32)), **kw)
    onnx.checker.check_model(proto, full_check=True)
    sess, step = session(proto), output_scale(qmodel)
    equal = []
    for n in batches:
        x = rs.randn(n, *sample_shape).astype(np.float32)
        got = sess.run(None, {"input": x})[0]
        with convnet.no_grad():
            want = qmodel(convnet.tensor(x)).numpy()
        steps = np.rint(np.abs(got.astype(np.float64) - want) / step)
        assert got.shape == want.shape
        assert (steps <= 1).mean() >= min_equal, f"batch {n}: {(steps > 1).sum()} elements " \
            f"differ by more than one step (max {steps.max():.0f})"
        equal.append((steps == 0).mean())
    print(f"bit-exact: {min(equal):.4%} of the outputs")  # shown with pytest -s
    return proto


def calibration(shape, n=4, batch=16, seed=0):
    rs = np.random.RandomState(seed)
    return [rs.randn(batch, *shape).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("name", ["simple_cnn", "lenet5"])
def test_zoo_models_as_convnet_quantize_builds_them(name):
    model = models.create(name, num_classes=10, in_channels=1)
    q = quantize(model, calibration((1, 28, 28)))
    proto = check_qdq(q, (1, 28, 28))
    ops = op_types(proto)
    assert ops[0] == "QuantizeLinear" and ops.count("QuantizeLinear") >= 5
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    weights = {k: v for k, v in inits.items() if k.endswith(".weight_quantized")}
    assert weights and all(v.dtype == np.int8 for v in weights.values())
    biases = [v for k, v in inits.items() if k.endswith(".bias_quantized")]
    assert biases and all(v.dtype == np.int32 for v in biases)
    # per-channel weights: DequantizeLinear along the output channels
    deq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0].endswith(".weight_quantized")]
    assert deq and all(inits[n.input[1]].ndim == 1 for n in deq)
    assert not any(np.asarray(v).dtype == np.float32 and v.size > 1000 for v in inits.values())


class Mixed(nn.Module):
    """QFunctional add_relu/cat, ReLU6, a grouped conv, a QTensor flatten in forward, a
    non-divisible adaptive average pool, average pooling with ceil mode, linear on 3-D."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu6 = nn.ReLU6()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.skip = cq.FloatFunctional()
        self.join = cq.FloatFunctional()
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.adapt = nn.AdaptiveAvgPool2d((3, 2))
        self.fc = nn.Linear(2, 5)

    def forward(self, x):
        a = self.relu6(self.conv1(x))
        y = self.skip.add_relu(a, self.conv2(a))
        y = self.adapt(self.pool(self.join.cat([y, a], 1)))   # (N, 16, 3, 2)
        return self.fc(y.flatten(1, 2))                        # (N, 48, 5)


@pytest.mark.parametrize("qconfig", ["x86", "qnnpack"])
def test_functional_ops_and_per_tensor_weights(qconfig):
    q = quantize(Mixed(), calibration((3, 9, 9)), qconfig=qconfig)
    proto = check_qdq(q, (3, 9, 9))
    assert {"Concat", "Add", "Relu", "Clip", "Conv", "MatMul"} <= set(op_types(proto))


def test_static_batch_and_float_layers_after_dequant():
    part = quantize(nn.Sequential(cq.QuantStub(), nn.Conv2d(1, 4, 3), cq.DeQuantStub()),
                    calibration((1, 7, 7)), fuse=False, wrap=False)
    model = nn.Sequential(part, nn.Flatten(), randomize(nn.Linear(4 * 5 * 5, 3))).eval()
    proto = convnet.onnx.export(model, convnet.tensor(np.ones((2, 1, 7, 7), np.float32)),
                                dynamic_batch=False)
    assert op_types(proto)[-2:] == ["Reshape", "Gemm"]
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][0] == 2
    x = calibration((1, 7, 7), batch=2)[1]
    np.testing.assert_allclose(session(proto).run(None, {"input": x})[0],
                               model(convnet.tensor(x)).numpy(), rtol=1e-4, atol=1e-4)
