"""What the registry knows without building a model: options, parameter counts, input sizes.

Each claim is checked against real modules: option lists against what the classes accept,
counts against torchvision's published numbers and real builds, input rules against a
forward pass at the sizes where they change their answer.
"""
import time

import numpy as np
import pytest

import convnet as cn
import convnet.models as models
from convnet.models import registry


def _param_total(m) -> int:
    return sum(p.numpy().size for p in m.parameters())


def _forward_ok(name: str, side: int, opts: dict) -> bool:
    """Does ``name`` built with ``opts`` run a (1, 1, side, side) batch? Built shapes-only,
    then zero weights (lazily mapped pages, so a VGG costs no memory)."""
    try:
        with registry._shapes_only():
            m = models.create(name, **opts)
        for p in m.parameters():
            p.data = cn.tensor(np.zeros(p.numpy().shape, p.numpy().dtype))
        m.eval()
        with cn.no_grad():
            m(cn.zeros(1, 1, side, side))
        return True
    except ValueError:
        return False


# the smallest model of each family and class: they share one input rule
_REPS = {}
for _n in sorted(models.list_models(), key=models.count_parameters):
    _i = models.model_info(_n)
    if _i.input_rule is not None:
        _REPS.setdefault((_i.family, _i.builds), _n)
CASES = [(n, o) for n in sorted(_REPS.values())
         for o in ([{}, {"small_input": True}] if "small_input" in models.model_options(n)
                   else [{}])]


def test_every_zoo_model_has_metadata():
    for name in models.list_models():
        if name.startswith(("cli_test", "zz_")):  # registered by other tests
            continue
        info = models.model_info(name)
        assert info.family and info.input_rule is not None, name
        assert models.model_options(name) is not None, name


@pytest.mark.parametrize("name, opts", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_input_rule_matches_a_real_forward(name, opts):
    """At the rule's minimum, one below it, its exact size and 28: the rule says yes exactly
    when the network runs, and the fix it suggests makes the network run."""
    accepted = models.model_options(name)
    rule = models.input_rule(name, **opts)
    sides = {rule.minimum, rule.minimum - 1, 28}
    if rule.exact and "input_size" not in accepted:
        sides.add(rule.exact)
    for side in sorted(s for s in sides if s >= 1):
        o = {**opts, **({"input_size": side} if "input_size" in accepted else {})}
        try:
            models.check_input_size(name, side, **o)
            fits, fix = True, None
        except models.InputSizeError as e:
            fits, fix = False, e.fix
        assert _forward_ok(name, side, o) == fits, (name, side, o)
        if fix:
            assert _forward_ok(name, side, {**o, **fix}), (name, side, fix)


# ---- parameter counts without building weights -------------------------------------------

def test_count_parameters_matches_published_counts_without_drawing_weights():
    """Torchvision's / the papers' counts (the list test_param_counts checks on real builds),
    from shapes-only builds: no weight is drawn (the global generator does not move) and the
    whole list, 138M-parameter VGG-16 included, takes well under the seconds a real build
    takes."""
    from tests.models.test_param_counts import CIFAR, IMAGENET

    cn.manual_seed(3)
    before = cn.randn(4).numpy()
    cn.manual_seed(3)
    start = time.perf_counter()
    for name, opts, expected in IMAGENET:
        assert models.count_parameters(name, 1000, 3, **opts) == expected, name
    for name, expected in CIFAR:
        assert models.count_parameters(name, 10, 3) == expected, name
    assert time.perf_counter() - start < 5
    np.testing.assert_array_equal(cn.randn(4).numpy(), before)


@pytest.mark.parametrize("name, opts", [("lenet5", {}), ("simple_cnn", {"widths": [4, 8]}),
                                        ("resnet20", {"shortcut": "B"}), ("vit_tiny", {}),
                                        ("squeezenet1_1", {"small_input": True}),
                                        ("unet", {"base_channels": 4, "depth": 2})])
def test_count_parameters_equals_a_real_build(name, opts):
    assert models.count_parameters(name, 7, 2, **opts) == _param_total(
        models.create(name, num_classes=7, in_channels=2, **opts))


# ---- options --------------------------------------------------------------------------------

def test_model_options_come_from_the_factory_and_its_class():
    assert models.model_options("lenet5") == {"input_size": 28, "activation": "relu",
                                              "pooling": "avg"}
    # VGG's cfg and batch_norm are set by the vgg16 factory, not options
    assert set(models.model_options("vgg16")) == {"dropout", "small_input"}
    vit = models.model_options("vit_tiny")
    assert vit["num_layers"] == 6 and vit["image_size"] == 28 and "dropout" in vit
    assert set(models.model_options("resnet20")) == {"shortcut", "widths"}


def test_unknown_option_is_named_with_the_accepted_ones():
    with pytest.raises(TypeError) as e:
        models.create("lenet5", widht=3)
    assert str(e.value) == ("lenet5 has no option 'widht'; it accepts: activation, input_size, "
                            "pooling")
    with pytest.raises(TypeError, match=r"simple_cnn has no option 'widht' \(did you mean "
                                        r"'widths'\?\); it accepts: dropout, hidden, widths"):
        models.create("simple_cnn", widht=3)
    with pytest.raises(TypeError, match="vgg16 has no option 'cfg'"):
        models.create("vgg16", cfg="A")


def test_option_errors_of_factories_without_metadata_name_no_python_internals():
    def zz_loose(num_classes=10, in_channels=1, **options):
        return cn.nn.Linear(in_channels, num_classes, **options)

    try:
        registry.register("zz_loose", zz_loose)
        assert models.model_options("zz_loose") is None  # nothing to check before the call
        with pytest.raises(TypeError) as e:
            models.create("zz_loose", widht=3)
        assert str(e.value) == "zz_loose has no option 'widht'"
    finally:
        registry._REGISTRY.pop("zz_loose", None)
        registry._INFO.pop("zz_loose", None)


def test_errors_name_no_internal_functions():
    for call in (lambda: models.create("resnet19"), lambda: models.create("lenet5", widht=1),
                 lambda: models.create("lenet5", num_classes=0),
                 lambda: models.check_input_size("alexnet", 28)):
        with pytest.raises((TypeError, ValueError)) as e:
            call()
        assert "create(" not in str(e.value) and "__init__" not in str(e.value)


# ---- input sizes ----------------------------------------------------------------------------

def test_fit_input_adapts_alexnet_and_refuses_what_it_cannot_adapt():
    assert models.fit_input("alexnet", 28) == ({"small_input": True}, {"small_input": True})
    assert models.fit_input("alexnet", 224) == ({}, {})
    assert models.fit_input("lenet5", 32) == ({"input_size": 32}, {})
    with pytest.raises(models.InputSizeError) as e:
        models.fit_input("alexnet", 28, small_input=False)  # the user said no
    err = e.value
    assert err.minimum == 63 and err.fix == {"small_input": True}
    assert str(err) == ("alexnet needs images of at least 63x63 (an 11x11/4 stem and three 3x3/2 "
                        "max-pools), got 28x28; small_input=True fixes it")
    assert err.message(cli=True).endswith("; --model-option small_input=true fixes it")
    with pytest.raises(models.InputSizeError, match=r"at least 15x15 .* got 14x14 even with "
                                                    r"small_input=True; it needs larger images"):
        models.fit_input("alexnet", 14)
    with pytest.raises(models.InputSizeError) as e:
        models.fit_input("vit_b_16", 28)
    assert e.value.fix == {"patch_size": 7}
    with pytest.raises(models.InputSizeError) as e:
        models.fit_input("unet", 28, depth=5)
    assert e.value.fix == {"depth": 4}
    assert e.value.message(cli=True).endswith("--model-option depth=4 fixes it")


def test_check_input_size_does_not_adapt():
    models.check_input_size("alexnet", 63)
    models.check_input_size("resnet20", (3, 32, 40))
    with pytest.raises(models.InputSizeError, match="alexnet needs images of at least 63x63"):
        models.check_input_size("alexnet", (1, 28, 28))
    with pytest.raises(models.InputSizeError) as e:
        models.check_input_size("lenet5", 32)  # built for 28x28 by default
    assert e.value.fix == {"input_size": 32}
    assert str(e.value) == ("lenet5 is built for 28x28 images (fc1 is sized for input_size), got "
                            "32x32; input_size=32 fixes it")


def test_min_input_size():
    assert models.min_input_size("alexnet") == 15  # with small_input set for it
    assert models.min_input_size("alexnet", small_input=False) == 63
    assert models.min_input_size("lenet5") == 12
    assert models.min_input_size("unet", depth=2) == 4
    assert models.min_input_size("vit_b_16") == 16
    assert models.min_input_size("resnet20") == 1
