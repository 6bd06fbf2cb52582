"""NB201 cell space: ops, fixed cells and networks (torch oracle), the CellSpace interface."""
import numpy as np
import pytest

import convnet
from convnet.nas.cell import (
    EDGES, OPS, Cell, CellNetwork, CellSpace, _FallbackSpace, from_nb201_str, make_op, to_nb201_str,
)

torch = pytest.importorskip("torch")
from .nb201_torch import TNet, copy_from, t_op  # noqa: E402

ARCH = {"edge_1_0": "nor_conv_3x3", "edge_2_0": "avg_pool_3x3", "edge_2_1": "nor_conv_1x1",
        "edge_3_0": "skip_connect", "edge_3_1": "none", "edge_3_2": "nor_conv_3x3"}


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("name", OPS)
def test_each_op_matches_torch(name):
    convnet.manual_seed(1)
    op = make_op(name, 3)
    op.double()
    top = t_op(name, 3).double()
    if list(op.state_dict()):
        copy_from(top, op)
    x = _x((2, 3, 5, 5))
    out = op(convnet.tensor(x)).numpy()
    ref = top(torch.tensor(x)).detach().numpy()
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


def test_avg_pool_excludes_padding():
    # a corner of the 3x3 window sees 4 pixels: the mean of those 4, not of 9
    y = make_op("avg_pool_3x3", 1)(convnet.ones(1, 1, 4, 4))
    np.testing.assert_allclose(y.numpy(), 1.0)


@pytest.mark.parametrize("N", [1, 2])
def test_built_network_matches_torch(N):
    space = CellSpace(C=4, N=N)
    convnet.manual_seed(0)
    net = space.build(ARCH, num_classes=5, in_channels=2).double()
    tnet = copy_from(TNet(4, N, 5, 2, arch=ARCH), net)
    x = _x((3, 2, 8, 8))
    np.testing.assert_allclose(net(convnet.tensor(x)).numpy(), tnet(torch.tensor(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-11)
    # 3 stages of N cells and 2 reductions; none edges hold no module
    cells = [m for m in net.cells if isinstance(m, Cell)]
    assert len(cells) == 3 * N and len(net.cells) == 3 * N + 2
    assert "edge_3_1" not in cells[0].edges and "edge_1_0" in cells[0].edges
    assert cells[-1].edges["edge_1_0"].op[1].weight.shape == (16, 16, 3, 3)


def test_all_none_cell_outputs_zeros():
    cell = Cell({e: "none" for e in EDGES}, 3)
    assert list(cell.parameters()) == []
    np.testing.assert_array_equal(cell(convnet.randn(2, 3, 4, 4)).numpy(), 0.0)


def test_network_options_and_bad_sizes():
    net = CellSpace().build(ARCH, num_classes=7, in_channels=3, C=8, N=1)
    assert isinstance(net, CellNetwork) and net.C == 8
    assert net(convnet.randn(2, 3, 8, 8)).shape == (2, 7)
    with pytest.raises(ValueError, match="C must be a positive int"):
        CellSpace().build(ARCH, C=0)


def _spaces():
    # CellSpace on the shared SearchSpace base, and the stand-in used when space.py is absent
    return [CellSpace(), _FallbackSpace("cell", choices={e: list(OPS) for e in EDGES})]


@pytest.mark.parametrize("space", _spaces(), ids=["base", "fallback"])
def test_space_choices_size_and_index_bijection(space):
    assert space.name == "cell"
    assert list(space.choices) == list(EDGES) == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0",
                                                  "edge_3_1", "edge_3_2"]
    assert all(v == list(OPS) for v in space.choices.values())
    assert space.size == 15625
    idx = [0, 1, 4, 5, 777, 15624]
    for i in idx:
        assert space.to_index(space.from_index(i)) == i
    assert space.from_index(0) == {e: "none" for e in EDGES}
    assert space.from_index(1)["edge_3_2"] == "skip_connect"  # last edge least significant
    all_archs = list(space.all())
    assert len(all_archs) == 15625 and len({space.to_index(a) for a in all_archs[:500]}) == 500
    with pytest.raises(ValueError, match="index"):
        space.from_index(15625)


@pytest.mark.parametrize("space", _spaces(), ids=["base", "fallback"])
def test_space_sample_mutate_neighbours_are_seeded_and_valid(space):
    a = space.sample(np.random.default_rng(3))
    assert a == space.sample(np.random.default_rng(3)) and space.validate(a) == a
    m = space.mutate(a, np.random.default_rng(0))
    assert sum(m[e] != a[e] for e in EDGES) == 1
    nb = space.neighbours(a)
    assert len(nb) == 24 and all(sum(n[e] != a[e] for e in EDGES) == 1 for n in nb)
    assert len({space.to_index(n) for n in nb}) == 24


@pytest.mark.parametrize("space", _spaces(), ids=["base", "fallback"])
def test_space_validate_errors_name_label_value_and_allowed(space):
    with pytest.raises(ValueError, match=r"edge_2_1='nor_conv_5x5' is not allowed.*skip_connect"):
        space.validate({**ARCH, "edge_2_1": "nor_conv_5x5"})
    with pytest.raises(ValueError, match=r"missing label\(s\) \['edge_3_2'\]"):
        space.validate({k: v for k, v in ARCH.items() if k != "edge_3_2"})
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['edge_4_0'\]"):
        space.validate({**ARCH, "edge_4_0": "none"})
    with pytest.raises(TypeError, match="dict"):
        space.validate(["none"] * 6)
    assert space.validate(dict(reversed(list(ARCH.items())))) == ARCH  # canonical label order


def test_build_validates_and_registry_builds_cell_space():
    with pytest.raises(ValueError, match="not allowed"):
        CellSpace().build({**ARCH, "edge_1_0": "conv"})
    from convnet.nas import spaces
    space = spaces.get("cell")
    assert isinstance(space, CellSpace) and space.size == 15625
    assert isinstance(space.build(ARCH), CellNetwork)


def test_nb201_string_round_trip():
    s = to_nb201_str(ARCH)
    assert s == "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert from_nb201_str(s) == ARCH
    with pytest.raises(ValueError, match="bad edge"):
        from_nb201_str(s.replace("none~1", "none~0"))
