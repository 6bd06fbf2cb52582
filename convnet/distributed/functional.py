"""``sync_batch_norm``: batch normalization with statistics over every rank's batch.

The autograd function wraps the kernels of :mod:`convnet.distributed.norm_kernels` with
the two collectives they need: forward gathers each rank's ``(count, mean, M2)``
(``K (1 + 2C)`` numbers), backward sums ``(sum(dy), sum(dy xc))`` over the ranks
(``2C`` numbers). Every rank must run the same layers in the same order, as for any
collective.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..functional.normalization import _check_batch_norm_args, _update_running
from ..tensor import Tensor
from . import comm
from . import norm_kernels as K

__all__ = ["sync_batch_norm"]


class _SyncBatchNorm(Function):
    """Outputs ``(y, mean, unbiased var)``; the statistics (of all ranks' batches) are not
    differentiated: the caller updates the running averages with them."""

    non_differentiable_outputs = (1, 2)

    def forward(self, x, w, b, eps, group):
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        m, mean_r, m2_r, xc = K.local_moments(x3)
        mine = np.concatenate([[m], mean_r, m2_r]).astype(np.float64)
        everyone = comm.all_gather(mine, group)  # (K, 1 + 2C)
        total, mean, var = K.combine_moments(everyone[:, 0], everyone[:, 1:1 + c],
                                             everyone[:, 1 + c:])
        if total <= 1:
            raise ValueError(f"sync_batch_norm: expected more than 1 value per channel over "
                             f"all ranks when training, got {total} (this rank's input size "
                             f"{tuple(x.shape)})")
        K.recentre(xc, mean_r - mean)  # x - mu_r -> x - mu
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
        y = K.affine(xc, invstd, w, b)
        if getattr(self, "needs_input_grad", None) is not None:
            self.xc, self.invstd, self.w, self.total, self.group = xc, invstd, w, total, group
        unbiased = var * (total / (total - 1))
        return y.reshape(x.shape), mean.astype(x.dtype), unbiased.astype(x.dtype)

    def backward(self, g, *_):
        nx, nw, nb = self.needs_input_grad[:3]
        g3 = g.reshape(self.xc.shape)
        sum_g, sum_gxc = K.grad_sums(g3, self.xc)  # this rank's sums
        gx = None
        if nx:
            c = sum_g.shape[0]
            both = comm.allreduce(np.concatenate([sum_g, sum_gxc]), "sum", group=self.group)
            gx = K.input_grad(g3, self.xc, self.invstd, self.w, both[:c], both[c:],
                              self.total).reshape(g.shape)
        return (gx, sum_gxc * self.invstd if nw else None, sum_g if nb else None, None, None)


def sync_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None,
                    momentum: float = 0.1, eps: float = 1e-5, group=None) -> Tensor:
    """Training-mode batch normalization of ``(N, C, *)`` with the statistics of all ranks.

    ``y = (x - mu) / sqrt(var + eps) * weight + bias``, where ``mu`` and the biased ``var``
    are per channel over the concatenation of every rank's batch (``N`` may differ between
    ranks); the running statistics, when given, are updated as
    ``running = (1 - momentum) running + momentum stat`` with the unbiased variance, so they
    are equal on every rank. ``group``: an mpi4py communicator (default: the world). With
    one rank this is ``F.batch_norm(..., training=True)``.
    """
    _check_batch_norm_args("sync_batch_norm", input, running_mean, running_var, weight, bias)
    y, mean, var = _SyncBatchNorm.apply(input, weight, bias, float(eps), group)
    _update_running(running_mean, mean._data, momentum)
    _update_running(running_var, var._data, momentum)
    return y
