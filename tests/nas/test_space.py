"""convnet.nas.space: choices in factory code, the SearchSpace API, arch files, constraints."""
import json

import numpy as np
import pytest

import convnet as cn
from convnet import nn
from convnet import nas
from convnet.nas.space import CHOICE_MODULES


def tiny(num_classes=3):
    w = nas.ValueChoice([4, 8], label="width")
    k = nas.ValueChoice([1, 3], label="kernel")
    act = nas.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, label="act")
    return nn.Sequential(nn.Conv2d(1, w, k, padding="same"), act, nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(w, num_classes))


@pytest.fixture(scope="module")
def space():
    return nas.SearchSpace("tiny", tiny)


def test_trace_records_choices_in_order(space):
    assert space.choices == {"width": [4, 8], "kernel": [1, 3], "act": ["relu", "tanh"]}
    assert space.size == 8 and space.labels == ["width", "kernel", "act"]


def test_build_gives_ordinary_model_with_chosen_values(space):
    m = nas.build(space, {"width": 8, "kernel": 3, "act": "tanh"}, num_classes=5)
    assert not any(isinstance(x, CHOICE_MODULES) for _, x in m.named_modules())
    assert m[0].out_channels == 8 and m[0].kernel_size == (3, 3)
    assert isinstance(m[1], nn.Tanh) and m[4].out_features == 5
    assert m(cn.randn(2, 1, 6, 6)).shape == (2, 5)


def test_auto_labels_and_shared_labels():
    def f():
        a = nas.ValueChoice([1, 2])
        nas.ValueChoice([1, 2], label="shared")
        nas.ValueChoice([1, 2], label="shared")  # a re-used label is one choice
        nas.LayerChoice([nn.ReLU(), nn.Identity()])
        nas.InputChoice(3, n_chosen=2)
        return nn.Linear(a, 1)

    s = nas.SearchSpace("auto", f)
    assert s.choices == {"value_0": [1, 2], "shared": [1, 2], "layer_1": [0, 1],
                         "input_2": [[0, 1], [0, 2], [1, 2]]}
    m = s.build({"value_0": 2, "shared": 1, "layer_1": 1, "input_2": [0, 2]})
    assert m.in_features == 2


def test_shared_label_with_other_options_is_refused():
    def f():
        nas.ValueChoice([1, 2], label="x")
        nas.ValueChoice([1, 3], label="x")
        return nn.Identity()

    with pytest.raises(ValueError, match="'x' is declared twice"):
        nas.SearchSpace("bad", f)


def test_choice_modules_outside_a_factory_hold_all_candidates():
    lc = nas.LayerChoice([nn.ReLU(), nn.Tanh()], label="a")
    assert isinstance(lc, nas.LayerChoice) and len(list(lc.children())) == 2
    x = cn.tensor([-1.0, 2.0])
    assert lc(x).tolist() == [0.0, 2.0]
    lc.active = 1
    assert np.allclose(lc(x).numpy(), np.tanh([-1.0, 2.0]))
    ic = nas.InputChoice(2, n_chosen=None, label="i")
    assert ic.options == [[], [0], [1], [0, 1]]
    ic.active = [0, 1]
    assert ic([cn.tensor([1.0]), cn.tensor([2.0])]).tolist() == [3.0]
    vc = nas.ValueChoice([3, 5], label="k")
    assert vc.candidates == [3, 5] and vc.label == "k"


def test_input_choice_built_is_chosen_inputs():
    def f():
        return nas.InputChoice(3, n_chosen=None, label="in")

    s = nas.SearchSpace("inputs", f)
    assert s.size == 8
    m = s.build({"in": [0, 2]})
    assert type(m) is nas.ChosenInputs and m.chosen == [0, 2]
    xs = [cn.tensor([1.0]), cn.tensor([10.0]), cn.tensor([100.0])]
    assert m(xs).tolist() == [101.0]
    assert s.build({"in": []})(xs) is None


def test_index_bijection_all_and_size(space):
    archs = list(space.all())
    assert len(archs) == space.size
    assert [space.to_index(a) for a in archs] == list(range(space.size))
    assert all(space.from_index(i) == a for i, a in enumerate(archs))
    assert space.from_index(0) == {"width": 4, "kernel": 1, "act": "relu"}
    assert space.from_index(1) == {"width": 4, "kernel": 1, "act": "tanh"}  # last label fastest
    with pytest.raises(ValueError, match="not in range"):
        space.from_index(space.size)


def test_sample_is_seeded_and_valid(space):
    a, b = space.sample(np.random.default_rng(5)), space.sample(np.random.default_rng(5))
    assert a == b and space.validate(a) == a
    seen = {space.to_index(space.sample(np.random.default_rng(i))) for i in range(60)}
    assert len(seen) == space.size  # uniform over 8: 60 draws cover all


def test_mutate_changes_exactly_one_label(space):
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert sum(a[k] != b[k] for k in a) == 1
    nb = space.neighbours({"width": 4, "kernel": 1, "act": "relu"})
    assert len(nb) == 3 and all(sum(v != {"width": 4, "kernel": 1, "act": "relu"}[k]
                                    for k, v in n.items()) == 1 for n in nb)


def test_mutate_needs_a_free_choice():
    s = nas.SearchSpace("one", lambda: nn.Linear(nas.ValueChoice([2], label="w"), 1))
    with pytest.raises(ValueError, match="every choice has one option"):
        s.mutate({"w": 2})


def test_validate_errors_name_label_value_and_allowed(space):
    with pytest.raises(ValueError, match=r"width=12 is not allowed; allowed values: \[4, 8\]"):
        space.validate({"width": 12, "kernel": 1, "act": "relu"})
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['depth'\]"):
        space.validate({"width": 4, "kernel": 1, "act": "relu", "depth": 2})
    with pytest.raises(ValueError, match=r"missing label\(s\) \['act'\]"):
        space.validate({"width": 4, "kernel": 1})
    with pytest.raises(ValueError, match="act='gelu' is not allowed"):
        nas.build(space, {"width": 4, "kernel": 1, "act": "gelu"})
    with pytest.raises(ValueError, match="width=True"):  # JSON identity: True is not 4 or 8
        space.validate({"width": True, "kernel": 1, "act": "relu"})
    with pytest.raises(TypeError, match="dict"):
        space.validate([4, 1, "relu"])


def test_empty_spaces_are_refused():
    with pytest.raises(ValueError, match="empty"):
        nas.SearchSpace("none", lambda: nn.Identity())
    with pytest.raises(ValueError, match="'w': the candidate list is empty"):
        nas.SearchSpace("e", lambda: nn.Linear(nas.ValueChoice([], label="w"), 1))
    with pytest.raises(ValueError, match="candidate list is empty"):
        nas.LayerChoice([], label="l")
    with pytest.raises(ValueError, match="repeat"):
        nas.ValueChoice([3, 3], label="k")
    with pytest.raises(ValueError, match="no options"):
        nas.SearchSpace("c", choices={"a": []})
    with pytest.raises(ValueError, match="n_chosen"):
        nas.InputChoice(2, n_chosen=3)


def test_undeclared_choice_at_build_time_is_refused():
    calls = []

    def f():
        calls.append(1)
        if len(calls) > 1:  # a factory that declares a choice only when building
            nas.ValueChoice([1, 2], label="late")
        return nn.Linear(nas.ValueChoice([1, 2], label="w"), 1)

    s = nas.SearchSpace("cond", f)
    with pytest.raises(ValueError, match="'late' was not declared when the space was traced"):
        s.build({"w": 1})


def test_save_load_round_trip_and_build_saved(tmp_path):
    space = nas.spaces.get("small-cnn")
    arch = space.sample(3)
    p = tmp_path / "best.json"
    nas.save_arch(p, space, arch, {"num_classes": 4, "input_shape": [1, 12, 12]})
    rec = nas.load_arch(p)
    assert rec == {"format": 1, "space": "small-cnn", "arch": arch,
                   "options": {"num_classes": 4, "input_shape": [1, 12, 12]}}
    a = nas.build_saved(p)
    b = nas.build(space, arch, num_classes=4, input_shape=(1, 12, 12))
    assert repr(a) == repr(b) and a(cn.randn(2, 1, 12, 12)).shape == (2, 4)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not an architecture file"),
    ('{"format": 2, "space": "small-cnn", "arch": {}}', "format 2"),
    ('{"format": 1, "space": "small-cnn", "arch": []}', "'arch' a dict"),
    ('{"format": 1, "space": "small-cnn", "arch": {"depth": 7}}', "unknown label|missing label"),
])
def test_load_arch_rejects_corrupt_files(tmp_path, text, match):
    p = tmp_path / "a.json"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        nas.load_arch(p)


def test_save_arch_validates_against_the_space(tmp_path, space):
    with pytest.raises(ValueError, match="width=5"):
        nas.save_arch(tmp_path / "x.json", space, {"width": 5, "kernel": 1, "act": "relu"})
    assert not (tmp_path / "x.json").exists()


def test_constraint_counts_match_summary(space):
    from convnet.analysis import summary

    arch = {"width": 8, "kernel": 3, "act": "relu"}
    m = nas.build(space, arch)
    s = summary(m, (1, 6, 6))
    n_params = sum(int(np.prod(p.shape)) for p in m.parameters())
    assert nas.count_params(space, arch, (1, 6, 6)) == s.total_params == n_params == 8 * 9 + 8 + 8 * 3 + 3
    assert nas.count_macs(space, arch, (1, 6, 6)) == s.total_macs == 8 * 36 * 9 + 8 * 3
    c = nas.Constraint(max_params=100, input_shape=(1, 6, 6))
    assert c.allows(space, {"width": 4, "kernel": 3, "act": "relu"})  # 40 + 15 = 55 params
    assert not c.allows(space, arch)
    assert c.why(space, arch) == "params 107 > max_params=100"
    c2 = nas.Constraint(max_macs=1000, input_shape=(1, 6, 6))
    assert "MACs 2,616 > max_macs=1,000" == c2.why(space, arch)
    with pytest.raises(ValueError, match="max_params"):
        nas.Constraint(max_params=-1)


def test_registry():
    assert {"small-cnn", "cell"} <= set(nas.spaces.names())
    assert nas.spaces.get("small-cnn") is nas.spaces.get("small-cnn")
    with pytest.raises(ValueError, match=r"unknown search space 'nope'; known spaces: \["):
        nas.spaces.get("nope")


def test_arch_is_json_round_trippable(space):
    a = space.sample(1)
    assert json.loads(json.dumps(a)) == a
