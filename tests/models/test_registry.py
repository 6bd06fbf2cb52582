"""The registry: names, create(), errors, load_weights()."""
import numpy as np
import pytest

import convnet as cn
import convnet.models as models
from convnet.models import registry

ISSUE_MODELS = [
    "lenet5", "simple_cnn", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn",
    "vgg13_bn", "vgg16_bn", "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "mobilenet_v1",
    "mobilenet_v2", "shufflenet_v1", "shufflenet_v2", "squeezenet1_1", "unet", "vit_tiny",
]


def test_list_models_has_every_model_of_the_issue():
    names = models.list_models()
    assert names == sorted(names)
    missing = set(ISSUE_MODELS) - set(names)
    assert not missing, f"not registered: {missing}"


def test_create_builds_a_module_with_requested_classes_and_channels():
    m = models.create("lenet5", num_classes=7, in_channels=3)
    assert m.features[0].weight.shape == (6, 3, 5, 5)
    assert m.classifier[-1].weight.shape == (7, 84)
    assert m.training


def test_create_is_case_insensitive():
    assert type(models.create("LeNet5")).__name__ == "LeNet5"


def test_create_unknown_name_suggests_the_closest_or_lists_all():
    with pytest.raises(ValueError, match=r"unknown model 'resnet9'; did you mean resnet18\?"):
        models.create("resnet9")
    with pytest.raises(ValueError, match=r"unknown model 'xyzzy'; choose one of: .*lenet5"):
        models.create("xyzzy")


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(num_classes=0), ValueError, "num_classes must be >= 1"),
    (dict(num_classes=2.5), TypeError, "num_classes must be an int"),
    (dict(in_channels=-1), ValueError, "in_channels must be >= 1"),
    (dict(width_mult=0.5), TypeError, "lenet5 has no option 'width_mult'"),
])
def test_create_rejects_bad_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        models.create("lenet5", **kw)


def test_create_rejects_non_string_name():
    with pytest.raises(TypeError, match="model name must be a string"):
        models.create(5)


def test_register_decorator_forms_and_duplicates():
    def tiny(num_classes=10, in_channels=1):
        return cn.nn.Linear(in_channels, num_classes)

    try:
        registry.register("zz_tiny", tiny)
        assert "zz_tiny" in models.list_models()
        assert models.create("zz_tiny", num_classes=3, in_channels=2).weight.shape == (3, 2)
        registry.register("zz_tiny", tiny)  # same function again: allowed
        with pytest.raises(ValueError, match="already registered"):
            registry.register("zz_tiny", lambda **kw: None)

        @registry.register
        def zz_other(num_classes=10, in_channels=1):
            return tiny(num_classes, in_channels)

        assert "zz_other" in models.list_models()
    finally:
        registry._REGISTRY.pop("zz_tiny", None)
        registry._REGISTRY.pop("zz_other", None)


def test_load_weights_errors(tmp_path):
    m = models.create("lenet5")
    with pytest.raises(FileNotFoundError, match="no such file"):
        models.load_weights(m, tmp_path / "missing.safetensors")
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported file type"):
        models.load_weights(m, bad)


def test_load_weights_npz_roundtrip_and_strictness(tmp_path):
    cn.manual_seed(0)
    src, dst = models.create("lenet5"), models.create("lenet5")
    state = {k: v.numpy() for k, v in src.state_dict().items()}
    np.savez(tmp_path / "w.npz", **state)
    models.load_weights(dst, tmp_path / "w.npz")
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    state.pop("classifier.5.bias")
    np.savez(tmp_path / "partial.npz", **state)
    with pytest.raises(RuntimeError, match="classifier.5.bias"):
        models.load_weights(dst, tmp_path / "partial.npz")
    missing, _ = models.load_weights(dst, tmp_path / "partial.npz", strict=False)
    assert missing == ["classifier.5.bias"]
