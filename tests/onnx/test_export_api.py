"""convnet.onnx.export's API and its errors: file targets, names, dynamic batch, opsets,
constant folding, and clear failures (no mapping, bad input, unwritable path, no onnx)."""
from __future__ import annotations

import io
import os
import sys

import numpy as np
import onnx
import pytest

import convnet
import convnet.onnx
from convnet import nn
from convnet.autograd import Function
from convnet.autograd import function as function_module

from .helpers import check_export, op_types, randomize, session


def small_cnn():
    return randomize(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)))


def x_of(n=2, shape=(1, 8, 8)):
    return convnet.tensor(np.random.RandomState(n).randn(n, *shape).astype(np.float32))


class _Cube(Function):  # an op with no ONNX mapping
    def forward(self, x):
        return x ** 3

    def backward(self, g):
        return g


class Foo(nn.Module):
    def forward(self, x):
        return _Cube.apply(x)


def test_writes_a_path_a_file_object_and_returns_the_model(tmp_path):
    model, x = small_cnn(), x_of()
    path = tmp_path / "m.onnx"
    proto = convnet.onnx.export(model, x, path)
    assert isinstance(proto, onnx.ModelProto)
    assert onnx.load(str(path)) == proto
    assert os.listdir(tmp_path) == ["m.onnx"]  # no temporary left behind
    buf = io.BytesIO()
    assert convnet.onnx.export(model, (x,), buf) == proto
    assert buf.getvalue() == path.read_bytes()
    assert convnet.onnx.export(model, x) == proto  # f=None: only returned
    names = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "0.bias", "1.running_mean", "1.running_var", "5.weight"} <= names
    assert op_types(proto) == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Reshape",
                               "Gemm"]


def test_names_dynamic_batch_and_static_batch():
    model, x = small_cnn(), x_of()
    proto = convnet.onnx.export(model, x, input_names=["image"], output_names=["logits"])
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("image", "logits")
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    static = convnet.onnx.export(model, x, dynamic_batch=False)
    dims = [d.dim_value for d in static.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 1, 8, 8]
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session(static).run(None, {"input": x_of(3).numpy()})
    named = convnet.onnx.export(model, x, input_names=["image"], output_names=["logits"],
                                dynamic_axes={"image": {0: "n"}, "logits": [0]})
    assert named.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "n"
    assert named.graph.output[0].type.tensor_type.shape.dim[0].dim_param.startswith("logits")


def test_dynamic_batch_uses_no_traced_batch_size():
    """Reshapes keep -1 for the batch, and the class token is expanded to the runtime batch."""
    vit = convnet.models.create("vit_tiny", num_layers=1, num_classes=3)
    proto = check_export(randomize(vit), (1, 28, 28), batches=(1, 5))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    reshapes = [n for n in proto.graph.node if n.op_type == "Reshape"]
    assert len(reshapes) == 3
    for n in reshapes:  # the traced batch of 2 never leaks into a target shape
        assert inits[n.input[1]][0] == -1, inits[n.input[1]]
    expand = next(n for n in proto.graph.node if n.op_type == "Expand")
    assert expand.input[1] not in inits  # computed from the input's shape


def test_multiple_inputs_and_dict_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, a, b, scale=1.0):
            return {"sum": self.fc(a + b) * scale, "parts": (a * 2, b.relu())}

    model = randomize(Two())
    a, b = x_of(2, (3,)), x_of(4, (3,))[:2]
    proto = convnet.onnx.export(model, (a, b, {"scale": 3.0}))
    assert [i.name for i in proto.graph.input] == ["input_0", "input_1"]
    assert [o.name for o in proto.graph.output] == ["output_sum", "output_parts_0",
                                                    "output_parts_1"]
    got = session(proto).run(None, {"input_0": a.numpy(), "input_1": b.numpy()})
    want = model(a, b, scale=3.0)
    np.testing.assert_allclose(got[0], want["sum"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[2], want["parts"][1].numpy())


@pytest.mark.parametrize("opset", [13, 17, 18, 20])
def test_opsets(opset):
    model = randomize(nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.GELU(),
                                    nn.AdaptiveMaxPool2d((3, 2)), nn.AdaptiveAvgPool2d((2, 2)),
                                    nn.Flatten(), nn.LayerNorm(16)))
    proto = check_export(model, (2, 6, 7), opset_version=opset)
    assert proto.opset_import[0].version == opset
    assert ("Gelu" in op_types(proto)) == (opset >= 20)


def test_layer_norm_below_opset_17_is_decomposed():
    proto = check_export(randomize(nn.LayerNorm(5)), (3, 5), opset_version=13)
    assert "LayerNormalization" not in op_types(proto)


def test_constant_folding():
    """MultiheadAttention with a separate key/value slices its packed projection weight:
    folded, the slices are initializers; unfolded, Slice nodes read the parameter."""
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return self.mha(x, x * 2.0, x * 2.0, need_weights=False)[0]

    model = randomize(Cross())
    folded = check_export(model, (5, 8))
    unfolded = check_export(model, (5, 8), do_constant_folding=False)
    assert op_types(unfolded).count("Slice") >= 6 > op_types(folded).count("Slice")
    assert "mha.in_proj_weight" in {i.name for i in unfolded.graph.initializer}


def test_float64_model():
    model = randomize(nn.Sequential(nn.Linear(4, 3), nn.Tanh())).double()
    x = convnet.tensor(np.random.RandomState(0).randn(2, 4))
    proto = convnet.onnx.export(model, x)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    got = session(proto).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------------- errors
def test_op_without_mapping_names_the_op_and_the_module_path():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), Foo()))
    with pytest.raises(convnet.onnx.ExportError) as e:
        convnet.onnx.export(model, x_of())
    assert str(e.value) == ("convnet.onnx.export: no ONNX mapping for op 'Cube' in module "
                            "'1.1' (Foo)")
    assert function_module._trace_hook is None  # the hook is off again
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_op_without_mapping_in_the_models_own_forward():
    class Top(nn.Module):
        def forward(self, x):
            return _Cube.apply(x)

    with pytest.raises(convnet.onnx.ExportError, match="op 'Cube' in the model's own forward "
                                                       r"\(Top\)"):
        convnet.onnx.export(Top(), x_of())


def test_values_taken_out_of_the_graph_are_refused():
    class Leaky(nn.Module):
        def forward(self, x):
            return x * convnet.tensor(x.numpy() > 0).float()

    with pytest.raises(convnet.onnx.ExportError, match="not computed by traced ops"):
        convnet.onnx.export(Leaky(), x_of())

    class Argmax(nn.Module):
        def forward(self, x):
            return x.flatten(1).argmax(dim=1)

    with pytest.raises(convnet.onnx.ExportError, match="output 'output'.*argmax"):
        convnet.onnx.export(Argmax(), x_of())


def test_wrong_input_shape_gives_the_models_own_error():
    with pytest.raises(ValueError, match="conv2d: input .* has 3 channels"):
        convnet.onnx.export(small_cnn(), x_of(2, (3, 8, 8)))


def test_unwritable_path_is_a_clear_error_and_leaves_the_old_file(tmp_path):
    model, x = small_cnn(), x_of()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        convnet.onnx.export(model, x, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot write .*file/m.onnx"):
        convnet.onnx.export(model, x, blocker / "m.onnx")
    old = tmp_path / "old.onnx"
    old.write_bytes(b"previous")
    with pytest.raises(convnet.onnx.ExportError):
        convnet.onnx.export(nn.Sequential(Foo()), x, old)
    assert old.read_bytes() == b"previous"
    with pytest.raises(TypeError, match="binary mode"):
        convnet.onnx.export(model, x, io.StringIO())


def test_bad_arguments():
    model, x = small_cnn(), x_of()
    with pytest.raises(ValueError, match="opset_version must be an int in \\[13, "):
        convnet.onnx.export(model, x, opset_version=11)
    with pytest.raises(ValueError, match="1 tensor inputs need as many distinct input_names"):
        convnet.onnx.export(model, x, input_names=["a", "b"])
    with pytest.raises(ValueError, match="returns 1 tensors"):
        convnet.onnx.export(model, x, output_names=["a", "b"])
    with pytest.raises(TypeError, match="args must be a Tensor or a tuple"):
        convnet.onnx.export(model, x.numpy())
    with pytest.raises(NotImplementedError, match="only axis 0"):
        convnet.onnx.export(model, x, dynamic_axes={"input": {2: "h"}})
    with pytest.raises(ValueError, match="not an input or output name"):
        convnet.onnx.export(model, x, dynamic_axes={"x": {0: "n"}})


def test_missing_onnx_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r"pip install convnet\[onnx\]"):
        convnet.onnx.export(small_cnn(), x_of())


def test_importing_convnet_does_not_import_onnx():
    import subprocess

    code = "import convnet, convnet.onnx, sys; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
