"""Every model of ``convnet models`` exports to ONNX: onnx.checker (full_check) passes and
onnxruntime's outputs equal convnet's (max |diff| <= 1e-5 * max(1, max |output|)) at batch 1
and 3 from one export. Models are built as ``convnet train`` builds them for 28x28 digits
(1 channel, 10 classes), with random weights and BatchNorm statistics; the detectors export
their backbone (FPN: one output per level)."""
from __future__ import annotations

import numpy as np
import pytest

import convnet
import convnet.onnx
from convnet import models
from convnet.cli._setup import DatasetInfo, model_options

from .helpers import check_export, op_types, randomize

DIGITS = DatasetInfo(1, 28, (0.1307,), (0.3081,), [str(i) for i in range(10)])
# the big ones at their smallest: the same ops with fewer repeats or narrower linear layers
SMALLER = {"vit_b_16": {"num_layers": 1}, "alexnet": {"hidden": 512}}
# the zoo as shipped: names other test modules register for themselves (cli_test*, zz_*) are
# not models of convnet's and may be collected here when the whole suite runs
ZOO = [n for n in models.list_models() if not n.startswith(("cli_test", "zz_"))]
DETECTORS = [n for n in ZOO if models.model_info(n).family == "Detection"]
CLASSIFIERS = [n for n in ZOO if n not in DETECTORS and n != "unet"]


def build(name: str, **extra):
    try:
        opts = model_options({"model": name, "dataset": "mnist-bundled"}, DIGITS)
    except ValueError:  # vit_b_16 needs a patch size dividing 28: the fix the CLI suggests
        opts = {"patch_size": 7, "input_size": 28}
    opts.update(SMALLER.get(name, {}), **extra)
    return randomize(models.create(name, num_classes=10, in_channels=1, **opts))


def test_the_zoo_is_covered():
    assert len(CLASSIFIERS) >= 30 and DETECTORS and "vit_b_16" in CLASSIFIERS


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier(name):
    check_export(build(name), (1, 28, 28))


@pytest.mark.parametrize("activation,pooling", [("tanh", "max"), ("sigmoid", "avg")])
def test_lenet5_options(activation, pooling):
    proto = check_export(build("lenet5", activation=activation, pooling=pooling), (1, 28, 28))
    assert activation.capitalize() in op_types(proto)


def test_mobilenet_relu6_is_a_clip():
    assert "Clip" in op_types(check_export(build("mobilenet_v2"), (1, 28, 28)))


def test_googlenet_with_aux_heads_exports_the_eval_graph():
    model = build("googlenet", aux_logits=True)
    model.train()
    proto = convnet.onnx.export(model, convnet.tensor(np.zeros((2, 1, 28, 28), np.float32)))
    assert len(proto.graph.output) == 1  # the logits; the aux heads run only in training
    assert model.training and model.aux1.training  # export restores the modes
    check_export(model, (1, 28, 28))


@pytest.mark.parametrize("opts", [{}, {"up_mode": "bilinear", "base_channels": 16}])
def test_unet(opts):
    proto = check_export(build("unet", **opts), (1, 28, 28))
    assert ("Resize" in op_types(proto)) == bool(opts)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_backbone_with_fpn_outputs(name):
    backbone = build(name).backbone
    proto = check_export(backbone, (1, 28, 28))
    assert len(proto.graph.output) >= 3
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "batch" for o in proto.graph.output)


@pytest.mark.parametrize("name,opts", [("resnet18", {}), ("mobilenet_v2", {}),
                                       ("vit_tiny", {"image_size": 32}),
                                       ("vit_b_16", {"image_size": 32, "num_layers": 1}),
                                       ("shufflenet_v2_x0_5", {})])
def test_three_channel_32x32(name, opts):
    model = randomize(models.create(name, num_classes=7, in_channels=3, **opts))
    check_export(model, (3, 32, 32))
