"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019) on the cell space.

Continuous relaxation: every edge of the cell becomes a :class:`MixedOp`, the
softmax-weighted sum of all candidate operations::

    mixed(x) = sum_o softmax(alpha_edge)_o * op_o(x)            alpha: (6 edges, 5 ops)

The architecture parameters ``alpha`` and the network weights ``w`` are trained in
alternation (the bilevel problem ``min_alpha L_val(w*(alpha), alpha)``,
``w*(alpha) = argmin_w L_train(w, alpha)``). One :meth:`DARTS.step` is

1. an ``alpha`` step (Adam) on a validation batch with the hypergradient
   - first order:  ``g = dL_val(w, alpha)/dalpha``
   - second order (their eq. 7-8): with ``w' = w - xi * dL_train(w, alpha)/dw``,
     ``g = dL_val(w', alpha)/dalpha - xi * (dL_train(w+, alpha)/dalpha - dL_train(w-, alpha)/dalpha) / (2 eps)``,
     ``w+- = w +- eps * dL_val(w', alpha)/dw'``, ``eps = 0.01 / ||dL_val(w', alpha)/dw'||``
     (the Hessian-vector product by central differences: convnet's gradients are first order;
     ``hvp_eps`` sets the 0.01);
2. a ``w`` step (SGD with momentum) on a training batch.

:meth:`DARTS.derive` keeps, on every edge, the strongest operation other than ``none``.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Callable, Iterable

import numpy as np

from .. import nn, random as _random
from ..functional import cross_entropy, softmax
from ..nn.utils import clip_grad_norm_
from ..optim import SGD, Adam
from ..tensor import Tensor
from .cell import EDGES, NUM_NODES, OPS, CellNetwork, CellSpace, make_op

__all__ = ["MixedOp", "MixedCell", "Supernet", "DARTS"]


class MixedOp(nn.Module):
    """``sum_o weights[o] * op_o(x)`` over the operations ``op_names`` (default all of
    :data:`~convnet.nas.cell.OPS`).

    ``ops[o]`` is the module of operation ``OPS[o]``. ``forward(x, weights)``: ``x``
    ``(B, C, H, W)``, ``weights`` ``(len(op_names),)`` (a softmax row of alpha, or any mixing
    vector) -> ``(B, C, H, W)``. The ``none`` term is zero and is not computed (its weight
    still enters the softmax's normalisation, so its alpha receives a gradient).
    """

    def __init__(self, C: int, affine: bool = True, op_names=OPS):
        super().__init__()
        self.op_names = tuple(op_names)
        self.ops = nn.ModuleList([make_op(name, C, affine) for name in self.op_names])

    def forward(self, x, weights):
        n = len(self.op_names)
        if tuple(weights.shape) != (n,):
            raise ValueError(f"MixedOp: weights must have shape ({n},), got {tuple(weights.shape)}")
        out = None
        for o, (name, op) in enumerate(zip(self.op_names, self.ops)):
            if name == "none":
                continue
            y = op(x) * weights[o]
            out = y if out is None else out + y
        return out


class MixedCell(nn.Module):
    """A cell whose 6 edges are :class:`MixedOp` s (``edges[<label>]``).

    ``forward(x, weights)``: ``weights`` ``(6, len(op_names))``, row ``k`` mixes edge ``EDGES[k]``.
    """

    def __init__(self, C: int, affine: bool = True, op_names=OPS):
        super().__init__()
        self.edges = nn.ModuleDict({e: MixedOp(C, affine, op_names) for e in EDGES})

    def forward(self, x, weights):
        nodes = [x]
        for j in range(1, NUM_NODES):
            total = None
            for i in range(j):
                label = f"edge_{j}_{i}"
                y = self.edges[label](nodes[i], weights[EDGES.index(label)])
                total = y if total is None else total + y
            nodes.append(total)
        return nodes[-1]


_EDGE_KEY = re.compile(r"^(cells\.\d+\.edges\.(edge_\d+_\d+))\.(.*)$")


class Supernet(CellNetwork):
    """The one-shot network of the cell space: :class:`MixedCell` s in NB201's skeleton, and
    the architecture parameters ``alpha`` ``(6, len(space.ops))`` (rows :data:`EDGES`, columns
    the space's operations in :data:`OPS` order; ``(6, 5)`` for the full space).

    ``alpha`` is a registered Parameter (so ``double()``, ``state_dict()`` reach it), but
    :meth:`weights` leaves it out: optimise ``weights()`` and ``arch_parameters()`` apart.
    Every cell shares the same ``alpha`` (NB201/DARTS: one cell type).

    Args:
        space: a :class:`CellSpace` (its ``C``, ``N`` are the defaults). C, N, num_classes,
            in_channels: as :class:`CellNetwork`.

    ``forward(x, weights=None)``: the mixing weights default to ``softmax(alpha, dim=1)``;
    pass a ``(6, len(ops))`` tensor (e.g. one-hot rows) to use others.
    """

    def __init__(self, space: CellSpace | None = None, C: int | None = None, N: int | None = None,
                 num_classes: int = 10, in_channels: int = 1):
        space = CellSpace() if space is None else space
        op_names = tuple(getattr(space, "ops", OPS))
        super().__init__(lambda _i, c: MixedCell(c, op_names=op_names), C=space.C if C is None else C,
                         N=space.N if N is None else N, num_classes=num_classes, in_channels=in_channels)
        self.space = space
        self.op_names = op_names
        # DARTS' initialisation: small random alphas, so the first mixture is nearly uniform
        init = 1e-3 * _random.generator().standard_normal((len(EDGES), len(self.op_names)))
        self.alpha = nn.Parameter(Tensor(init.astype(np.float32)))

    def weights(self) -> list:
        """The network weights (every parameter except ``alpha``)."""
        return [p for p in self.parameters() if p is not self.alpha]

    def arch_parameters(self) -> list:
        """``[alpha]``."""
        return [self.alpha]

    def mixing_weights(self) -> Tensor:
        """``softmax(alpha, dim=1)``, ``(6, len(ops))``."""
        return softmax(self.alpha, dim=1)

    def forward(self, x, weights=None):
        if weights is None:
            weights = self.mixing_weights()
        elif tuple(weights.shape) != (len(EDGES), len(self.op_names)):
            raise ValueError(f"Supernet: weights must have shape ({len(EDGES)}, {len(self.op_names)}), "
                             f"got {tuple(weights.shape)}")
        return super().forward(x, weights)

    def derive(self) -> dict:
        """The discrete architecture: on each edge the argmax of alpha over the ops other than
        ``none`` (DARTS' rule; ties go to the earlier op)."""
        a, ops = self.alpha.numpy(), self.op_names
        allowed = [o for o, name in enumerate(ops) if name != "none"]
        return {e: ops[allowed[int(np.argmax(a[k, allowed]))]] for k, e in enumerate(EDGES)}

    def derive_by_perturbation(self, batches) -> tuple[dict, dict]:
        """Choose each edge's op by how much the supernet needs it (Wang et al., ICLR 2021,
        "Rethinking architecture selection in differentiable NAS"), not by alpha's size.

        For every edge and every op other than ``none``, that op's mixing weight is set to
        zero (the rest of the mixture unchanged) and the supernet's accuracy on ``batches``
        (``(inputs, targets)`` pairs, BatchNorm in eval mode) is measured; the edge keeps the
        op whose removal costs the most. Alpha's magnitude favours parameter-free ops such as
        ``skip_connect`` even when the network relies on its convolutions; this rule does not.

        Returns ``(arch, drops)`` with ``drops[edge][op]`` = accuracy lost without that op.
        """
        from ..autograd.grad_mode import no_grad

        batches = [(np.asarray(x, dtype=self.alpha.dtype), np.asarray(y)) for x, y in batches]
        if not batches:
            raise ValueError("Supernet.derive_by_perturbation: batches is empty")
        base = self.mixing_weights().numpy()

        def acc(weights: np.ndarray) -> float:
            correct = total = 0
            with no_grad():
                for x, y in batches:
                    logits = self.forward(Tensor._make(x), Tensor._make(weights)).numpy()
                    correct += int((logits.argmax(1) == y).sum())
                    total += len(y)
            return correct / total

        was_training = self.training
        self.train(False)
        try:
            full = acc(base)
            arch, drops = {}, {}
            for k, edge in enumerate(EDGES):
                drops[edge] = {}
                for o, name in enumerate(self.op_names):
                    if name == "none":
                        continue
                    w = base.copy()
                    w[k, o] = 0.0
                    drops[edge][name] = full - acc(w)
                arch[edge] = max(drops[edge], key=lambda n: drops[edge][n])
        finally:
            self.train(was_training)
        return arch, drops

    def build(self, arch: dict) -> CellNetwork:
        """The fixed network of ``arch`` (``space.build``) with the weights inherited from this
        supernet: each edge takes the weights of its chosen op, everything else is copied."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, num_classes=self.num_classes, in_channels=self.in_channels,
                               C=self.C, N=self.N)
        own = self.state_dict()
        state = {}
        for key in net.state_dict():
            m = _EDGE_KEY.match(key)
            src = f"{m.group(1)}.ops.{self.op_names.index(arch[m.group(2)])}.{m.group(3)}" if m else key
            state[key] = own[src]
        net.load_state_dict(state)
        dtype = self.alpha.dtype
        return net._cast(dtype) if dtype != np.float32 else net


def _as_batch(batch, dtype) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"DARTS: a batch must be an (inputs, targets) pair, got {type(batch).__name__}")
    x, y = batch
    x = x._data if isinstance(x, Tensor) else np.asarray(x)
    y = y._data if isinstance(y, Tensor) else np.asarray(y)
    return Tensor._make(x.astype(dtype, copy=False)), Tensor._make(y.astype(np.int64, copy=False))


class DARTS:
    """DARTS search on the cell space.

    Args:
        space: a :class:`CellSpace` (default ``CellSpace()``; its ``C``, ``N`` size the supernet).
        C, N, num_classes, in_channels: override the supernet's sizes.
        order: 1 (first-order approximation) or 2 (unrolled, finite-difference Hessian).
        w_lr, w_momentum, w_weight_decay, grad_clip: SGD on the weights (DARTS: 0.025, 0.9,
            3e-4, gradient norm clipped to 5).
        alpha_lr, alpha_betas, alpha_weight_decay: Adam on alpha (3e-4, (0.5, 0.999), 1e-3).
        xi: the virtual step of the unrolled model (default ``w_lr``, as DARTS).
        hvp_eps: the finite-difference step of the Hessian-vector product is
            ``hvp_eps / ||dL_val/dw'||`` (0.01 in DARTS). A step this size can cross ReLU kinks,
            where the gradient jumps; a smaller one (1e-4 in float64) is closer to the exact
            unrolled gradient.
        seed: seeds convnet's global generator (weights, alpha, DataLoader shuffling).
        warmup_epochs: epochs that train the weights only, before alpha moves (as PC-DARTS
            and later DARTS variants do: with untrained weights the parameter-free
            ``skip_connect`` wins the early mixture and DARTS collapses onto it).
        dtype: the supernet's floating dtype (float32 default).
        loss: ``loss(logits, targets)`` (cross entropy by default).

    The architecture step leaves the BatchNorm running statistics as they were (only the
    weight step updates them). Example::

        darts = DARTS(CellSpace(C=8), order=1, seed=0)
        arch = darts.search(train_loader, val_loader, epochs=10)
    """

    def __init__(self, space: CellSpace | None = None, *, C: int | None = None, N: int | None = None,
                 num_classes: int = 10, in_channels: int = 1, order: int = 1, w_lr: float = 0.025,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-4, grad_clip: float | None = 5.0,
                 alpha_lr: float = 3e-4, alpha_betas=(0.5, 0.999), alpha_weight_decay: float = 1e-3,
                 xi: float | None = None, hvp_eps: float = 0.01, seed: int = 0, dtype=np.float32,
                 loss: Callable | None = None, warmup_epochs: int = 0):
        if order not in (1, 2):
            raise ValueError(f"DARTS: order must be 1 or 2, got {order!r}")
        self.space = CellSpace() if space is None else space
        self.order = order
        self.xi = w_lr if xi is None else float(xi)
        if not hvp_eps > 0:
            raise ValueError(f"DARTS: hvp_eps must be > 0, got {hvp_eps!r}")
        self.hvp_eps = float(hvp_eps)
        self.grad_clip = grad_clip
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"DARTS: warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs
        self.seed = seed
        self.loss = cross_entropy if loss is None else loss
        _random.manual_seed(seed)
        self.supernet = Supernet(self.space, C=C, N=N, num_classes=num_classes, in_channels=in_channels)
        self.supernet._cast(np.dtype(dtype))
        self.dtype = np.dtype(dtype)
        self.w_optimizer = SGD(self.supernet.weights(), lr=w_lr, momentum=w_momentum,
                               weight_decay=w_weight_decay)
        self.alpha_optimizer = Adam(self.supernet.arch_parameters(), lr=alpha_lr,
                                    betas=tuple(alpha_betas), weight_decay=alpha_weight_decay)
        self.epoch = 0
        self.steps = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ gradients
    def _grads(self, batch) -> tuple[float, list, np.ndarray]:
        """Loss, the weight gradients and the alpha gradient at the current parameters."""
        net = self.supernet
        for p in net.parameters():
            p.grad = None
        x, y = batch
        loss = self.loss(net(x), y)
        loss.backward()
        gw = [np.zeros_like(p._data) if p.grad is None else p.grad._data.copy() for p in net.weights()]
        return float(loss.item()), gw, net.alpha.grad._data.copy()

    def hypergradient(self, train_batch, val_batch) -> tuple[np.ndarray, float]:
        """The architecture gradient of ``order`` (see the module docstring) and the
        validation loss it was taken at; parameters and BN statistics are left unchanged."""
        net = self.supernet
        net.train()
        train_batch = _as_batch(train_batch, self.dtype)
        val_batch = _as_batch(val_batch, self.dtype)
        buffers = [(b, b._data.copy()) for b in net.buffers()]
        weights = net.weights()
        w0 = [p._data for p in weights]
        try:
            if self.order == 1:
                val_loss, _, g = self._grads(val_batch)
                return g, val_loss
            _, gw, _ = self._grads(train_batch)
            for p, w, d in zip(weights, w0, gw):  # w' = w - xi dL_train/dw
                p._data = w - self.xi * d
            val_loss, dw, g_val = self._grads(val_batch)
            norm = float(np.sqrt(sum(float(np.sum(d.astype(np.float64) ** 2)) for d in dw)))
            if norm == 0.0:  # L_val does not depend on w: the Hessian term vanishes
                return g_val, val_loss
            eps = self.hvp_eps / norm
            for p, w, d in zip(weights, w0, dw):
                p._data = w + eps * d
            _, _, g_plus = self._grads(train_batch)
            for p, w, d in zip(weights, w0, dw):
                p._data = w - eps * d
            _, _, g_minus = self._grads(train_batch)
            return g_val - self.xi * (g_plus - g_minus) / (2 * eps), val_loss
        finally:
            for p, w in zip(weights, w0):
                p._data = w
                p.grad = None
            net.alpha.grad = None
            for b, saved in buffers:
                b._data = saved

    def step(self, train_batch, val_batch) -> dict:
        """One alpha step on ``val_batch`` then one weight step on ``train_batch``; returns
        ``{"train_loss", "val_loss"}`` (the losses before the respective updates)."""
        net = self.supernet
        val_loss = math.nan
        if self.epoch >= self.warmup_epochs:  # warm-up epochs train the weights only
            g, val_loss = self.hypergradient(train_batch, val_batch)
            net.alpha.grad = Tensor._make(g.astype(net.alpha.dtype, copy=False))
            self.alpha_optimizer.step()
        net.alpha.grad = None
        x, y = _as_batch(train_batch, self.dtype)
        net.train()
        self.w_optimizer.zero_grad()
        loss = self.loss(net(x), y)
        loss.backward()
        net.alpha.grad = None  # alpha is moved by the validation loss only
        if self.grad_clip is not None:
            clip_grad_norm_(net.weights(), self.grad_clip)
        self.w_optimizer.step()
        self.w_optimizer.zero_grad()
        self.steps += 1
        return {"train_loss": float(loss.item()), "val_loss": val_loss}

    # ------------------------------------------------------------------ search loop
    def search(self, train_data: Iterable, val_data: Iterable, epochs: int = 1,
               callback: Callable[[dict], None] | None = None) -> dict:
        """Run until ``self.epoch == epochs`` (a resumed search continues where it stopped).

        Each epoch walks ``train_data`` (an iterable of ``(inputs, targets)`` batches, e.g. a
        DataLoader) once, pairing every training batch with the next batch of ``val_data``
        (restarted when exhausted). ``callback(info)`` is called after every step with
        ``{"event": "step", "epoch", "step", "train_loss", "val_loss"}`` and after every epoch
        with ``{"event": "epoch", "epoch", "train_loss", "val_loss", "arch", "alpha"}`` (means
        over the epoch). Returns :meth:`derive`.
        """
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"DARTS.search: epochs must be an int >= 0, got {epochs!r}")
        while self.epoch < epochs:
            val_iter = iter(val_data)
            losses = []
            for i, train_batch in enumerate(train_data):
                try:
                    val_batch = next(val_iter)
                except StopIteration:
                    val_iter = iter(val_data)
                    try:
                        val_batch = next(val_iter)
                    except StopIteration:
                        raise ValueError("DARTS.search: val_data yields no batches") from None
                out = self.step(train_batch, val_batch)
                losses.append((out["train_loss"], out["val_loss"]))
                if callback is not None:
                    callback({"event": "step", "epoch": self.epoch, "step": i, **out})
            if not losses:
                raise ValueError("DARTS.search: train_data yields no batches")
            mean = np.mean(losses, axis=0)
            record = {"epoch": self.epoch, "train_loss": float(mean[0]), "val_loss": float(mean[1]),
                      "arch": self.derive()}
            self.history.append(record)
            self.epoch += 1
            if callback is not None:
                callback({"event": "epoch", **record, "alpha": self.supernet.alpha.numpy().copy()})
        return self.derive()

    def derive(self) -> dict:
        """The current discrete architecture (:meth:`Supernet.derive`)."""
        return self.supernet.derive()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        """Everything a resumed search needs: supernet (weights and alpha, as arrays), both
        optimizers, counters, history and convnet's global generator state."""
        return {
            "supernet": {k: v.numpy().copy() for k, v in self.supernet.state_dict().items()},
            "w_optimizer": self.w_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "epoch": self.epoch, "steps": self.steps, "order": self.order,
            "history": copy.deepcopy(self.history), "rng": _random.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("order") != self.order:
            raise ValueError(f"DARTS.load_state_dict: the state is of order {state.get('order')!r}, "
                             f"this search is of order {self.order}")
        self.supernet.load_state_dict(state["supernet"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.epoch, self.steps = int(state["epoch"]), int(state["steps"])
        self.history = copy.deepcopy(state["history"])
        _random.set_state(state["rng"])
