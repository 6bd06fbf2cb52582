"""Random expression graphs built identically in convnet and torch (property-based)."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet as cn

UNARY = {
    "exp": lambda x: x.tanh().exp(),
    "log": lambda x: (x.abs() + 1).log(),
    "sqrt": lambda x: (x.abs() + 0.5).sqrt(),
    "sigmoid": lambda x: x.sigmoid(),
    "tanh": lambda x: x.tanh(),
    "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(),
    "clamp": lambda x: x.clamp(-0.5, 0.5),
    "square": lambda x: x**2,
    "neg": lambda x: -x,
    "scale": lambda x: x * 0.5 + 1.0,
    "rowsum": lambda x: x.sum(1, keepdim=True),
    "colmean": lambda x: x.mean(0, keepdim=True),
    "colmax": lambda x: x.max(0, keepdim=True)[0],
    "rowstd": lambda x: x.std(1, keepdim=True) + 0.1 if x.shape[1] > 1 else x,  # no NaN from 1 sample
    "tt": lambda x: x.transpose(0, 1).transpose(0, 1),
    "reshape": lambda x: x.reshape(x.shape[0], -1) if x.ndim == 2 else x,
    "slice": lambda x: x[:, :1] if x.shape[1] > 1 else x,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
}


def _compatible(a, b):
    try:
        np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        return True
    except ValueError:
        return False


@settings(max_examples=80, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_random_expression_graph(data, seed):
    rng = np.random.default_rng(seed)
    leaves = [rng.standard_normal((3, 4)) for _ in range(3)]
    cn_nodes = [cn.tensor(a, requires_grad=True) for a in leaves]
    th_nodes = [torch.tensor(a, requires_grad=True) for a in leaves]
    cn_leaves, th_leaves = list(cn_nodes), list(th_nodes)
    n_ops = data.draw(st.integers(2, 12))
    for _ in range(n_ops):
        if data.draw(st.booleans()):
            name = data.draw(st.sampled_from(sorted(UNARY)))
            i = data.draw(st.integers(0, len(cn_nodes) - 1))
            cn_nodes.append(UNARY[name](cn_nodes[i]))
            th_nodes.append(UNARY[name](th_nodes[i]))
        else:
            name = data.draw(st.sampled_from(sorted(BINARY)))
            i = data.draw(st.integers(0, len(cn_nodes) - 1))
            j = data.draw(st.integers(0, len(cn_nodes) - 1))
            if not _compatible(cn_nodes[i], cn_nodes[j]):
                continue
            cn_nodes.append(BINARY[name](cn_nodes[i], cn_nodes[j]))
            th_nodes.append(BINARY[name](th_nodes[i], th_nodes[j]))
    # Combine every node into one scalar so every path contributes a gradient.
    w = [rng.standard_normal(tuple(t.shape)) for t in th_nodes]
    cn_loss = sum((c * cn.tensor(wi)).sum() for c, wi in zip(cn_nodes, w))
    th_loss = sum((t * torch.tensor(wi)).sum() for t, wi in zip(th_nodes, w))
    np.testing.assert_allclose(cn_loss.item(), th_loss.item(), rtol=1e-9, atol=1e-9)
    cn_loss.backward()
    th_loss.backward()
    for c, t in zip(cn_leaves, th_leaves):
        np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-9)
