"""convnet.nas.macro: the "small-cnn" macro space."""
import math

import numpy as np
import pytest

import convnet as cn
from convnet import nas, nn
from convnet.analysis import summary
from convnet.nas.macro import ACTIVATIONS, DEPTHS, HEADS, KERNELS, MAX_BLOCKS, WIDTHS
from convnet.nas.space import CHOICE_MODULES


@pytest.fixture(scope="module")
def space():
    return nas.spaces.get("small-cnn")


def _arch(depth=4, width=16, kernel=3, act="relu", pool="max", skip=(0,), head="gap"):
    a = {"depth": depth, "act": act}
    for i in range(MAX_BLOCKS):
        a[f"width_{i}"], a[f"kernel_{i}"] = width, kernel
        a[f"pool_{i}"] = "max" if i == 0 else pool
        if i:
            a[f"skip_{i}"] = list(skip)
    a["head"] = head
    return a


def test_choices_and_size(space):
    ch = space.choices
    assert ch["depth"] == list(DEPTHS) and ch["act"] == list(ACTIVATIONS)
    assert ch["width_2"] == list(WIDTHS) and ch["kernel_3"] == list(KERNELS)
    assert ch["pool_0"] == ["max", "avg"] and ch["pool_1"] == ["max", "avg", "none"]
    assert ch["skip_1"] == [[], [0]] and "skip_0" not in ch
    assert ch["head"] == list(HEADS) and space.labels[-1] == "head"
    assert space.size == math.prod(len(v) for v in ch.values()) == 3 * 3 * 16 * 48 ** 3 * 2


def test_sampled_archs_run_forward_and_backward(space):
    rng = np.random.default_rng(0)
    x = cn.randn(2, 1, 28, 28)
    archs = [space.sample(rng) for _ in range(10)] + [_arch(width=64, kernel=5, act="gelu")]
    for arch in archs:
        m = nas.build(space, arch, num_classes=7)
        assert not any(isinstance(mod, CHOICE_MODULES) for _, mod in m.named_modules())
        y = m(x)
        assert y.shape == (2, 7)
        (y * y).sum().backward()
        assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in m.parameters())


def test_model_follows_the_arch(space):
    arch = _arch(depth=3, width=32, kernel=5, act="silu", pool="avg", skip=())
    arch.update(width_1=8, skip_2=[0])
    m = nas.build(space, arch, input_shape=(3, 32, 32), num_classes=5)
    blocks = [b for b in m if type(b).__name__ == "_Block"]
    assert len(blocks) == 3
    assert [b.conv.out_channels for b in blocks] == [32, 8, 32]
    assert blocks[0].conv.in_channels == 3 and blocks[0].conv.kernel_size == (5, 5)
    assert all(isinstance(b.act, nn.SiLU) for b in blocks)
    assert isinstance(blocks[0].pool, nn.MaxPool2d) and isinstance(blocks[1].pool, nn.AvgPool2d)
    assert not blocks[1].has_skip and blocks[2].has_skip
    assert isinstance(blocks[2].proj[0], nn.Conv2d)  # 8 -> 32 channels needs a 1x1 projection
    assert m[-1].in_features == 32 and m[-1].out_features == 5
    same = _arch(depth=2, width=16, skip=(0,))
    assert isinstance(nas.build(space, same)[1].proj, nn.Identity)  # shapes allow identity


def test_flatten_head_keeps_the_last_map(space):
    # 28 -> 14 (block 0 max) -> 14 (block 1 none) -> 7 (block 2 avg): 16 channels of 7x7 flattened
    arch = _arch(depth=3, width=16, pool="none", head="flatten")
    arch["pool_2"] = "avg"
    m = nas.build(space, arch)
    assert isinstance(m[-2], nn.Flatten) and m[-1].in_features == 16 * 7 * 7
    assert m(cn.randn(2, 1, 28, 28)).shape == (2, 10)
    gap = nas.build(space, {**arch, "head": "gap"})
    assert m[-1].weight.shape[1] == 49 * gap[-1].weight.shape[1]
    assert isinstance(gap[-3], nn.AdaptiveAvgPool2d)


def test_pools_stop_before_the_map_vanishes(space):
    m = nas.build(space, _arch(depth=4, pool="max"), input_shape=(1, 4, 4))
    s = summary(m, (1, 4, 4))
    assert [b.has_pool for b in m if type(b).__name__ == "_Block"] == [True, True, False, False]
    assert m(cn.randn(2, 1, 4, 4)).shape == (2, 10) and s.total_params > 0


def test_always_one_reduction(space):
    arch = _arch(depth=4, pool="none")
    m = nas.build(space, arch)
    assert m[0].has_pool  # block 0 has no "none" option
    with pytest.raises(ValueError, match=r"pool_0='none' is not allowed; allowed values: \['max', 'avg'\]"):
        space.validate({**arch, "pool_0": "none"})


def test_index_bijection_over_many_archs(space):
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = space.sample(rng)
        i = space.to_index(a)
        assert 0 <= i < space.size and space.from_index(i) == a
    for i in [0, 1, space.size - 1, int(rng.integers(space.size))]:
        assert space.to_index(space.from_index(i)) == i


def test_mutate_changes_exactly_one_label(space):
    rng = np.random.default_rng(2)
    for _ in range(100):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert [k for k in a if a[k] != b[k]].__len__() == 1
        space.validate(b)


def test_params_equal_the_constraint_count(space):
    rng = np.random.default_rng(3)
    c = nas.Constraint(max_params=20_000, input_shape=(1, 28, 28))
    verdicts = set()
    for _ in range(6):
        a = space.sample(rng)
        m = nas.build(space, a)
        n = sum(int(np.prod(p.shape)) for p in m.parameters())
        s = summary(m, (1, 28, 28))
        assert c.cost(space, a) == (n, s.total_macs) == (s.total_params, s.total_macs)
        assert c.allows(space, a) == (n <= 20_000)
        verdicts.add(c.allows(space, a))
    smallest = _arch(depth=2, width=8, skip=())
    assert c.allows(space, smallest) and not c.allows(space, _arch(width=64, kernel=5))


def test_bad_build_options(space):
    with pytest.raises(ValueError, match="input_shape must be"):
        nas.build(space, space.sample(0), input_shape=(28, 28))
    with pytest.raises(ValueError, match="num_classes"):
        nas.build(space, space.sample(0), num_classes=0)


def test_fingerprint_is_the_model_not_the_dict(space):
    arch = _arch(depth=2, width=16, kernel=3)
    unused = {**arch, "width_3": 64, "kernel_2": 5, "skip_3": []}  # blocks 2, 3 are not built
    used = {**arch, "width_1": 32}
    assert space.fingerprint(arch) == space.fingerprint(unused)
    assert space.fingerprint(arch) != space.fingerprint(used)
    assert space.fingerprint(arch) != space.fingerprint({**arch, "head": "flatten"})
    assert space.fingerprint(arch) != space.fingerprint(arch, num_classes=5)
