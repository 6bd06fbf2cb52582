"""Output-size formula against torch, analytic receptive fields against the formula
1 + L(K-1) and against the empirical (gradient / perturbation) field."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from convnet.analysis import empirical_receptive_field, output_size, receptive_field

from .conftest import needs


# ------------------------------------------------------------------------- output_size
def _grid(seed, n):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = int(rng.integers(1, 6))
        d = int(rng.integers(1, 4))
        s = int(rng.integers(1, 5))
        p = int(rng.integers(0, k // 2 + 1))
        size = int(rng.integers(d * (k - 1) + 1, 30))
        yield size, k, s, p, d


@pytest.mark.parametrize("case", list(_grid(0, 40)))
def test_output_size_matches_torch_conv(case):
    size, k, s, p, d = case
    x = torch.zeros(1, 1, size, size + 3)
    w = torch.zeros(1, 1, k, k)
    ref = torch.nn.functional.conv2d(x, w, stride=s, padding=p, dilation=d).shape[2:]
    assert output_size((size, size + 3), k, s, p, d) == tuple(ref)
    assert output_size(size, k, s, p, d) == ref[0]


@pytest.mark.parametrize("case", list(_grid(1, 40)))
def test_output_size_matches_torch_max_pool_ceil_mode(case):
    size, k, s, p, d = case
    p = min(p, k // 2)
    x = torch.zeros(1, 1, size, size)
    for ceil in (False, True):
        ref = torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode=ceil).shape[2]
        assert output_size(size, k, s, p, d, ceil_mode=ceil) == ref, (case, ceil)


@pytest.mark.parametrize("case", list(_grid(2, 30)))
def test_output_size_matches_torch_transposed(case):
    size, k, s, p, d = case
    op = int(np.random.default_rng(size).integers(0, max(s, d)))
    x = torch.zeros(1, 1, size, size)
    w = torch.zeros(1, 1, k, k)
    try:
        ref = torch.nn.functional.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op,
                                                   dilation=d).shape[2]
    except RuntimeError:
        pytest.skip("torch rejects this output_padding")
    assert output_size(size, k, s, p, d, transposed=True, output_padding=op) == ref


def test_output_size_notes_example_and_same():
    assert output_size(7, 3, stride=1) == 5  # 7x7 image, 3x3 filter (notes 000)
    assert output_size(7, 3, stride=2) == 3
    assert output_size(32, 5, padding="same") == 32
    assert output_size((9, 10), 3, padding="valid") == (7, 8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_size=3, kernel_size=5), "larger than the padded input"),
    (dict(input_size=8, kernel_size=3, stride=0), "stride must be >= 1"),
    (dict(input_size=8, kernel_size=3, padding="full"), "padding must be"),
    (dict(input_size=8, kernel_size=3, stride=2, padding="same"), "needs stride 1"),
    (dict(input_size=(8, 8), kernel_size=(3, 3, 3)), "kernel_size has 3 values"),
])
def test_output_size_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        output_size(**kwargs)


# --------------------------------------------------------------------- receptive fields
@pytest.mark.parametrize("L, K", [(1, 3), (2, 3), (3, 3), (4, 5), (5, 3), (2, 7)])
def test_stride1_stack_formula(L, K):
    cn.manual_seed(L * 10 + K)
    layers = []
    for i in range(L):
        layers += [nn.Conv2d(1 if i == 0 else 2, 2, K), nn.ReLU()]
    m = nn.Sequential(*layers)
    size = 1 + L * (K - 1)
    side = size + 6
    assert receptive_field(m, (1, side, side)) == size
    assert empirical_receptive_field(m, (1, side, side)) == size


def _stacks():
    def c(ci, co, k, **kw):
        return nn.Conv2d(ci, co, k, **kw)
    return {
        "plain": lambda: nn.Sequential(c(1, 3, 3), nn.ReLU(), c(3, 3, 3), nn.ReLU(), c(3, 2, 3)),
        "padded": lambda: nn.Sequential(c(1, 3, 3, padding=1), nn.ReLU(), c(3, 2, 5, padding=2)),
        "strided": lambda: nn.Sequential(c(1, 3, 3, stride=2), nn.ReLU(), c(3, 3, 3, stride=2),
                                         nn.ReLU(), c(3, 2, 3)),
        "stride>kernel": lambda: nn.Sequential(c(1, 3, 2, stride=3), c(3, 2, 3)),
        "dilated": lambda: nn.Sequential(c(1, 3, 3, dilation=2), nn.ReLU(),
                                         c(3, 2, 3, dilation=3)),
        "rect": lambda: nn.Sequential(c(1, 3, (3, 5)), nn.ReLU(), c(3, 2, (5, 1), stride=(2, 1))),
        "grouped": lambda: nn.Sequential(c(1, 4, 3), nn.ReLU(), c(4, 4, 3, groups=2),
                                         nn.ReLU(), c(4, 4, 1, groups=4)),
    }


@pytest.mark.parametrize("name", list(_stacks()))
def test_conv_stacks_analytic_equals_empirical(name):
    cn.manual_seed(3)
    m = _stacks()[name]()
    shape = (1, 41, 43)
    assert receptive_field(m, shape) == empirical_receptive_field(m, shape)


def test_known_values_of_strided_and_dilated_stacks():
    m = _stacks()["strided"]()
    assert receptive_field(m, (1, 41, 41)) == 3 + 2 * 2 + 2 * 4  # r=3, j=2; r=7, j=4; r=15
    m = _stacks()["dilated"]()
    assert receptive_field(m, (1, 41, 41)) == 5 + 6  # k_eff 5 then k_eff 7
    m = _stacks()["rect"]()
    assert receptive_field(m, (1, 41, 41)) == (7, 5)


@needs("MaxPool2d", "AvgPool2d")
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooled_stacks(pool):
    cn.manual_seed(4)
    P = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
    m = nn.Sequential(nn.Conv2d(1, 3, 5, padding=2), nn.ReLU(), P(2), nn.Conv2d(3, 4, 3),
                      nn.ReLU(), P(3, stride=2), nn.Conv2d(4, 2, 3, dilation=2))
    # conv5 -> 5; pool2: +1 (j=2); conv3: +2*2; pool3 s2: +2*2 (j=4); conv k_eff 5: +4*4
    expect = 5 + 1 * 1 + 2 * 2 + 2 * 2 + 4 * 4
    shape, unit = (1, 40, 40), (1, 1)  # unit (1, 1) of the 4x4 output sees pixels 6..35
    assert receptive_field(m, shape) == expect
    grad_field = empirical_receptive_field(m, shape, unit=unit)
    if pool == "avg":
        assert grad_field == expect
    else:  # the gradient of a max reaches one tap per window: a subset of the field ...
        assert grad_field <= expect
        # ... but raising any pixel of the field changes the unit
        assert empirical_receptive_field(m, shape, unit=unit, method="perturbation",
                                         chunk=800) == expect


class _Residual(nn.Module):
    def __init__(self, c, k, dilation=1):
        super().__init__()
        pad = dilation * (k - 1) // 2
        self.conv1 = nn.Conv2d(c, c, k, padding=pad, dilation=dilation)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, k, padding=(k - 1) // 2)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


class _Down(nn.Module):
    """Strided block with a strided 1x1 projection shortcut."""

    def __init__(self, ci, co):
        super().__init__()
        self.conv = nn.Conv2d(ci, co, 3, stride=2, padding=1)
        self.short = nn.Conv2d(ci, co, 1, stride=2)

    def forward(self, x):
        return self.conv(x) + self.short(x)


def test_residual_stack():
    cn.manual_seed(5)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), _Residual(3, 3), _Down(3, 4),
                      _Residual(4, 3, dilation=2), nn.Conv2d(4, 2, 3))
    # 3; +2+2 = 7; down s2: 9 (j=2); residual: k_eff 5 -> +8, k 3 -> +4: 21; conv3: 25
    assert receptive_field(m, (1, 61, 61)) == 25
    assert empirical_receptive_field(m, (1, 61, 61)) == 25


def test_identity_branch_alone_keeps_field_of_its_larger_sibling():
    m = nn.Sequential(_Residual(1, 5))
    assert receptive_field(m, (1, 30, 30)) == 9


@needs("BatchNorm2d", "AvgPool2d", "AdaptiveAvgPool2d")
def test_resnet20_last_conv_field_matches_empirical():
    from convnet.models import create

    m = create("resnet20", in_channels=1)
    names = [n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    last = names[-1]
    from convnet.analysis import trace_geometry

    calls, _ = trace_geometry(m, cn.tensor(np.zeros((1, 1, 32, 32), np.float32)))
    rf = next(c.field.size[0] for c in calls if c.name == last)
    assert rf == 81  # 3 + 6 convs * 2 (15); s2: 17, 5 * 4 -> 37; s2: 41, 5 * 8 -> 81
    assert empirical_receptive_field(m, (1, 96, 96), layer=last) == 81


def test_empirical_leaves_model_untouched_and_errors():
    cn.manual_seed(6)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    before = [p.numpy().copy() for p in m.parameters()]
    assert empirical_receptive_field(m, (1, 10, 10), layer="0") == 3
    for b, p in zip(before, m.parameters()):
        np.testing.assert_array_equal(b, p.numpy())
    with pytest.raises(ValueError, match="not spatial"):
        empirical_receptive_field(m, (1, 10, 10))
    with pytest.raises(ValueError, match="method must be"):
        empirical_receptive_field(m, (1, 10, 10), method="magic")
    # a classifier's field is that of its last spatial layer
    assert receptive_field(m, (1, 10, 10)) == 3
    with pytest.raises(ValueError, match="no layer with a spatial output"):
        receptive_field(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2))


def test_conv1d_and_3d_fields():
    if not hasattr(nn, "Conv1d") or not hasattr(nn, "Conv3d"):
        pytest.skip("needs Conv1d / Conv3d")
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Conv1d(2, 2, 3, dilation=2))
    assert receptive_field(m, (1, 30)) == 7 == empirical_receptive_field(m, (1, 30))
    m = nn.Sequential(nn.Conv3d(1, 2, (1, 3, 3)), nn.Conv3d(2, 2, 3, stride=(1, 2, 2)))
    shape = (1, 9, 15, 15)
    assert receptive_field(m, shape) == (3, 5, 5) == empirical_receptive_field(m, shape)


def test_transposed_conv_field_is_reported():
    m = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ConvTranspose2d(2, 1, 4, stride=2))
    rf = receptive_field(m, (1, 20, 20))
    emp = empirical_receptive_field(m, (1, 20, 20))
    assert rf >= emp  # the transposed-conv arithmetic is an upper bound (documented)
    assert rf - emp <= 2



def test_modules_returning_their_input_are_transparent():
    # Identity / Dropout in eval hand back the very same tensor: no cycle, no change
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Identity(), nn.Dropout(0.5), nn.Conv2d(2, 2, 3))
    m.eval()
    assert receptive_field(m, (1, 12, 12)) == 5


# ------------------------------------------------------------- randomized stacks (hypothesis)
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from convnet.analysis import trace_geometry  # noqa: E402

_layer = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2),
                   st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_layer, min_size=1, max_size=4))
def test_random_stacks_analytic_equals_empirical(spec):
    layers, c = [], 1
    for k, s, d, p, pool in spec:
        p = min(p, (d * (k - 1)) // 2 + 1)
        if pool and k > 1 and hasattr(nn, "AvgPool2d"):
            layers.append(nn.AvgPool2d(k, stride=s, padding=min(p, k // 2)))
        else:
            layers.append(nn.Conv2d(c, 2, k, stride=s, padding=p, dilation=d))
            c = 2
    m = nn.Sequential(*layers)
    side = 48
    try:
        calls, info = trace_geometry(m, cn.tensor(np.zeros((1, 1, side, side), np.float32)))
    except ValueError:  # the stack shrinks the image to nothing
        assume(False)
    out = calls[-1].output
    unit = out.shape[2] // 2
    centre = info.start[0] + unit * info.jump[0]
    half = (info.size[0] - 1) / 2
    assume(centre - half >= 0 and centre + half <= side - 1)  # the field lies inside the image
    assert empirical_receptive_field(m, (1, side, side)) == info.size[0]
