"""A torch NB201 network written independently for the oracle tests of convnet.nas.cell/darts.

Module names mirror convnet's so that state dicts copy key for key.
"""
import numpy as np
import torch
import torch.nn as tnn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")


class TZero(tnn.Module):
    def forward(self, x):
        return x.mul(0.0)


class TReLUConvBN(tnn.Module):
    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.op = tnn.Sequential(tnn.ReLU(), tnn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                                 tnn.BatchNorm2d(cout))

    def forward(self, x):
        return self.op(x)


def t_op(name, c):
    return {"none": lambda: TZero(), "skip_connect": lambda: tnn.Identity(),
            "nor_conv_1x1": lambda: TReLUConvBN(c, c, 1), "nor_conv_3x3": lambda: TReLUConvBN(c, c, 3),
            "avg_pool_3x3": lambda: tnn.AvgPool2d(3, 1, 1, count_include_pad=False)}[name]()


class TMixedOp(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.ops = tnn.ModuleList([t_op(n, c) for n in OPS])

    def forward(self, x, w):
        return sum(w[o] * op(x) for o, op in enumerate(self.ops))


class TMixedCell(tnn.Module):
    def __init__(self, c):
        super().__init__()
        self.edges = tnn.ModuleDict({e: TMixedOp(c) for e in EDGES})

    def forward(self, x, w):
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[f"edge_{j}_{i}"](nodes[i], w[EDGES.index(f"edge_{j}_{i}")])
                             for i in range(j)))
        return nodes[3]


class TCell(tnn.Module):
    def __init__(self, arch, c):
        super().__init__()
        self.edges = tnn.ModuleDict({e: t_op(op, c) for e, op in arch.items() if op != "none"})

    def forward(self, x, *_):
        nodes = [x]
        for j in range(1, 4):
            terms = [self.edges[f"edge_{j}_{i}"](nodes[i]) for i in range(j) if f"edge_{j}_{i}" in self.edges]
            nodes.append(sum(terms) if terms else torch.zeros_like(x))
        return nodes[3]


class TReduction(tnn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_a = TReLUConvBN(cin, cout, 3, 2)
        self.conv_b = TReLUConvBN(cout, cout, 3)
        self.shortcut = tnn.Sequential(tnn.AvgPool2d(2, 2), tnn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class TNet(tnn.Module):
    """arch=None: the supernet (with ``alpha``); otherwise the fixed network of ``arch``."""

    def __init__(self, C, N, num_classes, in_channels, arch=None):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(in_channels, C, 3, 1, 1, bias=False), tnn.BatchNorm2d(C))
        layers, prev = [], C
        for s, c in enumerate((C, 2 * C, 4 * C)):
            if s:
                layers.append(TReduction(prev, c))
            layers += [TMixedCell(c) if arch is None else TCell(arch, c) for _ in range(N)]
            prev = c
        self.cells = tnn.ModuleList(layers)
        self.lastact = tnn.Sequential(tnn.BatchNorm2d(prev), tnn.ReLU())
        self.global_pooling = tnn.AdaptiveAvgPool2d(1)
        self.classifier = tnn.Linear(prev, num_classes)
        if arch is None:
            self.alpha = tnn.Parameter(torch.zeros(len(EDGES), len(OPS)))

    def forward(self, x):
        w = torch.softmax(self.alpha, dim=1) if hasattr(self, "alpha") else None
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x) if isinstance(layer, TReduction) else layer(x, w)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))


def copy_from(tnet, cnet):
    """Load convnet module ``cnet``'s state into ``tnet`` (float64); every key must match."""
    state = {k: torch.tensor(np.array(v.numpy())) for k, v in cnet.state_dict().items()}
    tnet.double().load_state_dict(state, strict=True)
    return tnet
