"""Shared by the ONNX export tests: export, check with onnx.checker, run in onnxruntime and
compare with convnet at several batch sizes."""
from __future__ import annotations

import numpy as np
import onnx  # the dev extra installs onnx and onnxruntime: a missing one fails, not skips
import onnxruntime as ort

import convnet
import convnet.onnx

TOL = 1e-5  # max |onnxruntime - convnet| <= TOL * max(1, max |convnet|), per output


def randomize(model, seed: int = 0):
    """Random weights of a sensible scale (zero-initialised heads would make every output 0)
    and random BatchNorm statistics (fresh ones make BN an identity)."""
    rs = np.random.RandomState(seed)
    for name, p in model.named_parameters():
        d = p._data
        if d.ndim > 1:
            d[...] = rs.randn(*d.shape) / np.sqrt(np.prod(d.shape[1:]))
        else:
            d[...] = rs.randn(*d.shape) * 0.1 + (1.0 if name.endswith("weight") else 0.0)
    for name, b in model.named_buffers():
        if name.endswith("running_var"):
            b._data[...] = rs.uniform(0.5, 1.5, b.shape)
        elif name.endswith("running_mean"):
            b._data[...] = rs.randn(*b.shape) * 0.1
    return model


def outputs_of(out):
    if isinstance(out, convnet.Tensor):
        return [out.numpy()]
    if isinstance(out, dict):
        return [o for v in out.values() for o in outputs_of(v)]
    if isinstance(out, (tuple, list)):
        return [o for v in out for o in outputs_of(v)]
    return []


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def check_export(model, sample_shape, batches=(1, 3), tol=TOL, seed=0, make=None, **kw):
    """Export ``model`` on a batch of 2 (one file), check it, and compare onnxruntime's
    outputs with convnet's at each batch size in ``batches``. Returns the ModelProto."""
    model.eval()
    rs = np.random.RandomState(seed)
    make = make or (lambda n: rs.randn(n, *sample_shape).astype(np.float32))
    proto = convnet.onnx.export(model, convnet.tensor(make(2)), **kw)
    onnx.checker.check_model(proto, full_check=True)
    sess = session(proto)
    for n in batches:
        x = make(n)
        with convnet.no_grad():
            want = outputs_of(model(convnet.tensor(x)))
        got = sess.run(None, {sess.get_inputs()[0].name: x})
        assert len(got) == len(want)
        for w, o in zip(want, got):
            assert o.shape == w.shape, (o.shape, w.shape)
            err = float(np.abs(o.astype(np.float64) - w).max()) if w.size else 0.0
            assert err <= tol * max(1.0, float(np.abs(w).max()) if w.size else 0.0), \
                f"batch {n}: max error {err:.3g} (max |output| {np.abs(w).max():.3g})"
    return proto


def op_types(proto) -> list[str]:
    return [n.op_type for n in proto.graph.node]
