"""Scaled dot-product attention, MultiheadAttention and TransformerEncoderLayer against torch."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.functional as F
from convnet.nn.modules.transformer import MultiheadAttention, TransformerEncoderLayer
from tests.helpers.oracle import check

CASES = [  # (batch dims, L, S, E, Ev, options)
    ((2, 3), 5, 6, 4, 7, {}),
    ((1,), 1, 1, 3, 2, {}),
    ((), 4, 4, 8, 8, {"is_causal": True}),
    ((3,), 6, 6, 5, 5, {"is_causal": True, "scale": 0.3}),
    ((2, 1), 3, 9, 2, 4, {"scale": 2.0}),
]


@pytest.mark.parametrize("batch, lq, s, e, ev, opts", CASES)
def test_sdpa_matches_torch(batch, lq, s, e, ev, opts):
    rng = np.random.default_rng(lq * 10 + s)
    arrays = [rng.standard_normal(batch + (lq, e)), rng.standard_normal(batch + (s, e)),
              rng.standard_normal(batch + (s, ev))]
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **opts),
          lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, **opts),
          arrays)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks_match_torch(kind):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, n, 4)) for n in (5, 6, 6))
    if kind == "bool":
        mask = rng.random((5, 6)) > 0.4
        mask[:, 0] = True  # every query attends somewhere
    else:
        mask = rng.standard_normal((2, 1, 5, 6))
    check(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask),
          lambda a, b, c: torch.nn.functional.scaled_dot_product_attention(
              a, b, c, attn_mask=torch.tensor(mask)), [q, k, v])


def test_sdpa_broadcasts_key_value_over_batch():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, 4, 5)), rng.standard_normal((1, 6, 5)),
              rng.standard_normal((1, 6, 2))]
    check(F.scaled_dot_product_attention, torch.nn.functional.scaled_dot_product_attention,
          arrays)


def test_sdpa_keeps_float32():
    q = cn.randn(2, 3, 4, requires_grad=True)
    out = F.scaled_dot_product_attention(q, q, q)
    out.sum().backward()
    assert out.dtype == np.float32 and q.grad.dtype == np.float32


def test_sdpa_dropout_is_random_but_unbiased_shape():
    cn.manual_seed(0)
    q = cn.randn(2, 5, 4)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    assert a.shape == (2, 5, 4) and not np.allclose(a.numpy(), b.numpy())


@pytest.mark.parametrize("args, msg", [
    (((2, 3, 4), (2, 5, 3), (2, 5, 4)), "query embedding 4 != key embedding 3"),
    (((2, 3, 4), (2, 5, 4), (2, 6, 4)), "key length 5 != value length 6"),
    (((4,), (5, 4), (5, 4)), "query needs at least 2 dims"),
])
def test_sdpa_errors_name_shapes(args, msg):
    q, k, v = (cn.randn(*s) for s in args)
    with pytest.raises(ValueError, match=msg):
        F.scaled_dot_product_attention(q, k, v)


def _pair_mha(e, h, batch_first, rng):
    ours = MultiheadAttention(e, h, batch_first=batch_first).double()
    ref = torch.nn.MultiheadAttention(e, h, batch_first=batch_first).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.tensor(rng.standard_normal(p.shape) * 0.3))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("self_attn", [True, False])
def test_multihead_attention_matches_torch(batch_first, need_weights, self_attn):
    rng = np.random.default_rng(int(batch_first) + 2 * need_weights + 4 * self_attn)
    ours, ref = _pair_mha(6, 3, batch_first, rng)
    lq, s, n = 4, 5, 2
    shape_q = (n, lq, 6) if batch_first else (lq, n, 6)
    shape_k = (n, s, 6) if batch_first else (s, n, 6)
    pad = np.zeros((n, lq if self_attn else s), bool)
    pad[:, -1] = True

    def run(mod, q, k, lib):
        k = q if self_attn else k
        mask = lib.tensor(pad) if lib is torch else pad
        out, w = mod(q, k, k, need_weights=need_weights, key_padding_mask=mask)
        return (out, w) if need_weights else out

    check(lambda q, k: run(ours, q, k, cn), lambda q, k: run(ref, q, k, torch),
          [rng.standard_normal(shape_q), rng.standard_normal(shape_k)])


def test_multihead_attention_parameter_names_and_count():
    m = MultiheadAttention(8, 2)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert sum(p.numpy().size for p in m.parameters()) == 4 * 8 * 8 + 4 * 8


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="embed_dim \\(10\\) must be a positive multiple"):
        MultiheadAttention(10, 3)
    m = MultiheadAttention(8, 2, batch_first=True)
    with pytest.raises(ValueError, match="query has embedding 4 but embed_dim is 8"):
        m(cn.randn(2, 3, 4), cn.randn(2, 3, 4), cn.randn(2, 3, 4))
    with pytest.raises(ValueError, match="key_padding_mask must be \\(2, 3\\)"):
        x = cn.randn(2, 3, 8)
        m(x, x, x, key_padding_mask=np.zeros((2, 4), bool))


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer_matches_torch(norm_first):
    rng = np.random.default_rng(3)
    ours = TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0, batch_first=True,
                                   norm_first=norm_first).double()
    ref = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0,
                                           batch_first=True, norm_first=norm_first).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.tensor(rng.standard_normal(p.shape) * 0.3))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    check(ours, ref, [rng.standard_normal((2, 5, 8))])


@pytest.mark.parametrize("opts", [{}, {"is_causal": True}, {"scale": 0.7}])
def test_sdpa_gradcheck(opts):
    from convnet.autograd import gradcheck

    rng = np.random.default_rng(4)
    q, k, v = (cn.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 4, 3), (2, 4, 3), (2, 4, 5)))
    assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, **opts), [q, k, v])
