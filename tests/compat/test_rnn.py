"""RNN/LSTM/GRU against torch: same weights -> same outputs, final states and gradients."""
import numpy as np
import pytest
import torch

import convnet as cn
from convnet import nn


def _copy_weights(ours, theirs):
    names = [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_parameters()] == names
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(getattr(ours, n).numpy()))


CASES = [
    ("LSTM", dict(num_layers=1), False, True),
    ("LSTM", dict(num_layers=2, batch_first=True), False, True),
    ("LSTM", dict(num_layers=2, bidirectional=True), True, True),
    ("GRU", dict(num_layers=2, batch_first=True, bidirectional=True), False, True),
    ("RNN", dict(nonlinearity="relu", bias=False), True, True),
    ("RNN", dict(), False, False),  # unbatched input
]


@pytest.mark.parametrize("kind,kw,with_state,batched", CASES)
def test_recurrent_layers_match_torch(rng, kind, kw, with_state, batched):
    n, steps, hin, hid = 3, 5, 4, 6
    cn.manual_seed(0)
    ours = getattr(nn, kind)(hin, hid, dtype=cn.float64, **kw)
    theirs = getattr(torch.nn, kind)(hin, hid, dtype=torch.float64, **kw)
    _copy_weights(ours, theirs)
    bf = kw.get("batch_first", False)
    shape = ((n, steps, hin) if bf else (steps, n, hin)) if batched else (steps, hin)
    x = rng.standard_normal(shape)
    dirs = 2 if kw.get("bidirectional") else 1
    sshape = (kw.get("num_layers", 1) * dirs, n, hid) if batched else (kw.get("num_layers", 1) * dirs, hid)
    states = [rng.standard_normal(sshape) for _ in range(2 if kind == "LSTM" else 1)]
    xc, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hc = ht = None
    if with_state:
        hc = tuple(cn.tensor(s) for s in states)
        ht = tuple(torch.tensor(s) for s in states)
        if kind != "LSTM":
            hc, ht = hc[0], ht[0]
    out_c, fin_c = ours(xc, hc)
    out_t, fin_t = theirs(xt, ht)
    np.testing.assert_allclose(out_c.detach().numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    fin_c = fin_c if isinstance(fin_c, tuple) else (fin_c,)
    fin_t = fin_t if isinstance(fin_t, tuple) else (fin_t,)
    for a, b in zip(fin_c, fin_t):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out_t.shape)
    (out_c * cn.tensor(g)).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.numpy(), p.grad.numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_lstm_init_range_and_errors():
    m = nn.LSTM(3, 8)
    bound = 1 / np.sqrt(8)
    for p in m.parameters():
        assert np.abs(p.numpy()).max() <= bound
    assert m.weight_ih_l0.shape == (32, 3) and m.weight_hh_l0.shape == (32, 8)
    with pytest.raises(RuntimeError, match="input_size"):
        m(cn.zeros(2, 1, 5))
