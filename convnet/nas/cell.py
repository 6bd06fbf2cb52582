"""The NAS-Bench-201 cell space at small scale (Dong & Yang, ICLR 2020).

A cell is a DAG of 4 nodes; node 0 is the cell input and every later node sums one operation
applied to each earlier node::

    node_j = sum_{i < j} op_{j,i}(node_i),   j = 1, 2, 3;   cell output = node_3

The 6 edges are labelled ``edge_<to>_<from>`` and each picks one of the 5 operations of
:data:`OPS` (5**6 = 15,625 architectures):

==============  ==================================================================
none            zeros (the edge is absent)
skip_connect    identity
nor_conv_1x1    ReLU -> Conv2d(C, C, 1, bias=False) -> BatchNorm2d(C)
nor_conv_3x3    ReLU -> Conv2d(C, C, 3, padding=1, bias=False) -> BatchNorm2d(C)
avg_pool_3x3    AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
==============  ==================================================================

Every operation keeps the shape ``(B, C, H, W)``. The network (:class:`CellNetwork`) is
NB201's macro skeleton: a 3x3 stem conv + BN, three stages of ``N`` cells with ``C``, ``2C``
and ``4C`` channels separated by residual reduction blocks (:class:`ResidualReduction`), then
BN-ReLU, global average pooling and a linear classifier. The same skeleton holds fixed cells
(:class:`Cell`, built here) or mixed cells (``convnet.nas.darts.MixedCell``, for DARTS).

An architecture is a plain dict ``{"edge_1_0": "nor_conv_3x3", ...}``.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .. import nn
from ..creation import zeros_like

__all__ = [
    "OPS", "EDGES", "NUM_NODES", "make_op", "Zero", "ReLUConvBN", "Cell", "ResidualReduction",
    "CellNetwork", "CellSpace", "to_nb201_str", "from_nb201_str",
]

#: Candidate operations of every edge, in NB201's order (the column order of DARTS' alpha).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: Edge labels ``edge_<to>_<from>``, ordered by target node then source node (alpha's rows).
EDGES = tuple(f"edge_{j}_{i}" for j in range(1, NUM_NODES) for i in range(j))


def _edge_nodes(label: str) -> tuple[int, int]:
    """``"edge_3_1"`` -> ``(3, 1)`` (to, from)."""
    _, j, i = label.split("_")
    return int(j), int(i)


class Zero(nn.Module):
    """The ``none`` operation: an all-zero tensor of the input's shape (no gradient flows)."""

    def forward(self, x):
        return zeros_like(x)


class ReLUConvBN(nn.Module):
    """``BN(Conv(ReLU(x)))`` with a bias-free convolution, as NB201's ``nor_conv`` ops and
    its reduction blocks.

    Args:
        C_in, C_out: channels. kernel_size: odd. stride: 1 or 2 ("same" padding ``k // 2``).
        affine: BatchNorm's learnable scale and shift.

    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int = 1, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


def make_op(name: str, C: int, affine: bool = True) -> nn.Module:
    """The module of operation ``name`` (one of :data:`OPS`) on ``C`` channels."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, affine=affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"make_op: unknown operation {name!r}; allowed: {list(OPS)}")


class Cell(nn.Module):
    """A fixed NB201 cell: ``node_j = sum_{i<j} op_{j,i}(node_i)``, output ``node_3``.

    ``none`` edges hold no module and add nothing; a node all of whose inputs are ``none``
    is zero. Submodules are ``edges[<label>]`` for the other edges.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, arch: dict, C: int, affine: bool = True):
        super().__init__()
        self.arch = {e: arch[e] for e in EDGES}
        self.edges = nn.ModuleDict({e: make_op(op, C, affine) for e, op in self.arch.items()
                                    if op != "none"})

    def forward(self, x):
        nodes = [x]
        for j in range(1, NUM_NODES):
            total = None
            for i in range(j):
                label = f"edge_{j}_{i}"
                if label in self.edges:
                    y = self.edges[label](nodes[i])
                    total = y if total is None else total + y
            nodes.append(zeros_like(x) if total is None else total)
        return nodes[-1]

    def extra_repr(self) -> str:
        return to_nb201_str(self.arch)


class ResidualReduction(nn.Module):
    """NB201's reduction block (a ResNet basic block with stride 2)::

        out = ReLUConvBN_3x3(ReLUConvBN_3x3,stride2(x)) + Conv1x1(AvgPool2d(2)(x))

    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2))``; the shortcut's pool uses
    ``ceil_mode`` so that odd sizes (7 -> 4) keep both branches aligned (even sizes, NB201's
    case, are unchanged by it).
    """

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride=2)
        self.conv_b = ReLUConvBN(C_out, C_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(C_in, C_out, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class CellNetwork(nn.Module):
    """NB201's small-scale network around a cell factory.

    ``stem`` (Conv3x3 in_channels->C, BN) -> N cells (C) -> reduction -> N cells (2C) ->
    reduction -> N cells (4C) -> ``lastact`` (BN, ReLU) -> global average pool -> ``classifier``.

    Args:
        make_cell: ``make_cell(index, channels) -> nn.Module`` for the ``3 * N`` cells.
        C: stem channels. N: cells per stage. num_classes, in_channels: data sizes.

    ``forward(x, *cell_args)`` passes ``cell_args`` to every cell (the mixing weights of a
    supernet). Shape: ``(B, in_channels, H, W) -> (B, num_classes)``; ``H`` and ``W``
    divisible by 4.
    """

    def __init__(self, make_cell: Callable[[int, int], nn.Module], C: int = 16, N: int = 1,
                 num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        for name, v in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"CellNetwork: {name} must be a positive int, got {v!r}")
        self.C, self.N, self.num_classes, self.in_channels = int(C), int(N), int(num_classes), int(in_channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, index, c_prev = [], 0, C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResidualReduction(c_prev, c))
            for _ in range(N):
                layers.append(make_cell(index, c))
                index += 1
            c_prev = c
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x, *cell_args):
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x) if isinstance(layer, ResidualReduction) else layer(x, *cell_args)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))


# ----------------------------------------------------------------------------- NB201 strings
def to_nb201_str(arch: dict) -> str:
    """NB201's architecture string: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    return "+".join("|" + "|".join(f"{arch[f'edge_{j}_{i}']}~{i}" for i in range(j)) + "|"
                    for j in range(1, NUM_NODES))


def from_nb201_str(s: str) -> dict:
    """Inverse of :func:`to_nb201_str` (ValueError on a malformed string or unknown op)."""
    nodes = s.split("+") if isinstance(s, str) else []
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(f"from_nb201_str: expected {NUM_NODES - 1} '+'-separated nodes, got {s!r}")
    arch = {}
    for j, node in enumerate(nodes, start=1):
        parts = node.strip("|").split("|")
        if len(parts) != j:
            raise ValueError(f"from_nb201_str: node {j} needs {j} inputs, got {node!r} in {s!r}")
        for i, part in enumerate(parts):
            op, _, src = part.partition("~")
            if src != str(i) or op not in OPS:
                raise ValueError(f"from_nb201_str: bad edge {part!r} (expected '<op>~{i}' with op in "
                                 f"{list(OPS)}) in {s!r}")
            arch[f"edge_{j}_{i}"] = op
    return arch


# ----------------------------------------------------------------------------- the space
class _FallbackSpace:
    """The subset of ``convnet.nas.space.SearchSpace`` that CellSpace uses, with the same
    semantics and messages; used only when ``space.py`` is not importable."""

    def __init__(self, name: str, choices: dict, **default_options):
        self.name = name
        self.default_options = dict(default_options)
        self._choices = {k: list(v) for k, v in choices.items()}
        self._radix = [len(v) for v in self._choices.values()]

    choices = property(lambda self: {k: list(v) for k, v in self._choices.items()})
    labels = property(lambda self: list(self._choices))
    size = property(lambda self: int(np.prod(self._radix)))

    def __len__(self) -> int:
        return self.size

    def validate(self, arch) -> dict:
        if not isinstance(arch, dict):
            raise TypeError(f"space {self.name!r}: an architecture is a dict {{label: value}}, "
                            f"got {type(arch).__name__}")
        unknown = [k for k in arch if k not in self._choices]
        if unknown:
            raise ValueError(f"space {self.name!r}: unknown label(s) {unknown}; labels are {self.labels}")
        missing = [k for k in self._choices if k not in arch]
        if missing:
            raise ValueError(f"space {self.name!r}: missing label(s) {missing}")
        for k, opts in self._choices.items():
            if not isinstance(arch[k], str) or arch[k] not in opts:
                raise ValueError(f"space {self.name!r}: {k}={arch[k]!r} is not allowed; "
                                 f"allowed values: {opts}")
        return {k: arch[k] for k in self._choices}

    def to_index(self, arch) -> int:
        arch, index = self.validate(arch), 0
        for (k, v), n in zip(arch.items(), self._radix):
            index = index * n + self._choices[k].index(v)
        return index

    def from_index(self, index: int) -> dict:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.size:
            raise ValueError(f"space {self.name!r}: index {index!r} is not in range({self.size})")
        index, digits = int(index), []
        for n in reversed(self._radix):
            index, d = divmod(index, n)
            digits.append(d)
        return {k: self._choices[k][d] for k, d in zip(self._choices, reversed(digits))}

    def all(self) -> Iterator[dict]:
        for i in range(self.size):
            yield self.from_index(i)

    def sample(self, rng=None) -> dict:
        rng = np.random.default_rng(rng)
        return {k: v[int(rng.integers(len(v)))] for k, v in self._choices.items()}

    def neighbours(self, arch) -> list:
        arch = self.validate(arch)
        return [{**arch, k: o} for k, v in self._choices.items() for o in v if o != arch[k]]

    def mutate(self, arch, rng=None) -> dict:
        arch, rng = self.validate(arch), np.random.default_rng(rng)
        k = self.labels[int(rng.integers(len(self._radix)))]
        others = [o for o in self._choices[k] if o != arch[k]]
        return {**arch, k: others[int(rng.integers(len(others)))]}

    def build(self, arch, **options):
        return self.build_model(self.validate(arch), **{**self.default_options, **options})


try:  # the shared SearchSpace base (convnet/nas/space.py)
    from .space import SearchSpace as _Base
except ImportError:  # pragma: no cover - only while space.py is absent
    _Base = _FallbackSpace


class CellSpace(_Base):
    """The NB201 cell space ``"cell"``: 6 edges (:data:`EDGES`), each one of :data:`OPS`.

    Args:
        C: stem channels of the built network (16 in NB201; 8 is quicker). N: cells per stage.
        ops: the candidate operations of every edge (a subset of :data:`OPS`, kept in its
            order); the benchmark table uses ``("none", "skip_connect", "nor_conv_3x3")``.

    A ``SearchSpace``: ``choices`` is ``{edge: list(ops)}``, ``size`` ``len(ops)**6`` (15,625
    for all five), ``to_index`` reads the arch as a base-``len(ops)`` number (first edge most
    significant, op digits in :data:`OPS` order). ``build(arch, num_classes=10, in_channels=1, C=self.C, N=self.N)``
    gives an ordinary :class:`CellNetwork` of fixed :class:`Cell` s.

    Example::

        space = CellSpace(C=8)
        arch = space.sample(np.random.default_rng(0))
        model = space.build(arch, num_classes=10, in_channels=1)
    """

    def __init__(self, C: int = 16, N: int = 1, ops=OPS):
        ops = tuple(ops)
        bad = [o for o in ops if o not in OPS]
        if bad or not ops or len(set(ops)) != len(ops):
            raise ValueError(f"CellSpace: ops must be distinct names from {list(OPS)}, got {list(ops)}")
        if ops == ("none",):
            raise ValueError("CellSpace: ops=['none'] leaves an empty space (every cell outputs zeros)")
        ops = tuple(o for o in OPS if o in ops)  # NB201's order, whatever order was given
        super().__init__("cell", choices={e: list(ops) for e in EDGES}, C=C, N=N)
        self.C, self.N, self.ops = C, N, ops

    def __repr__(self) -> str:
        extra = "" if self.ops == OPS else f", ops={list(self.ops)}"
        return f"CellSpace(C={self.C}, N={self.N}{extra})"

    def build_model(self, arch: dict, num_classes: int = 10, in_channels: int = 1, C: int = 16,
                    N: int = 1) -> CellNetwork:
        """The fixed network of a validated ``arch`` (``build`` fills ``C``/``N`` from the space)."""
        return CellNetwork(lambda _i, c: Cell(arch, c), C=C, N=N, num_classes=num_classes,
                           in_channels=in_channels)
