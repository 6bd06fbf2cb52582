"""``DistributedOptimizer``: any convnet optimizer, with the gradients averaged over ranks.

ChainerMN's and Horovod's design: the training loop stays a single-process loop; only the
optimizer changes. ``step()`` is

    broadcast the parameters from rank 0 (the first step only),
    g = mean over ranks of .grad  (:func:`allreduce_gradients`),
    the wrapped optimizer's step.

The wrapper *is* an :class:`convnet.optim.Optimizer` whose ``param_groups``, ``state`` and
``defaults`` are the wrapped optimizer's own objects, so learning-rate schedulers accept
either one and both see the same learning rates.
"""
from __future__ import annotations

from ..autograd.grad_mode import enable_grad
from ..optim.optimizer import Optimizer
from .gradients import allreduce_gradients, broadcast_parameters

__all__ = ["DistributedOptimizer"]


class DistributedOptimizer(Optimizer):
    """Wrap ``optimizer`` so that every ``step()`` applies the mean gradient of all ranks.

    Build it on every rank, after the model and the optimizer. The parameters are
    broadcast from rank 0 when the wrapper is built (so the first gradients are computed
    on equal replicas) and once more at the first ``step()`` (so a change made in between
    on rank 0 alone, such as loading a checkpoint there, reaches every rank before the
    first update). From then on the equal updates keep the replicas equal. Call
    ``zero_grad()``, ``loss.backward()`` and ``step()`` as with any optimizer. The optimizer
    sees parameters only: buffers (BatchNorm running statistics) start equal when every
    rank builds the model alike; after loading them on some ranks only, call
    :func:`broadcast_parameters` on the model.

    Args:
        optimizer: a :class:`convnet.optim.Optimizer` (SGD, Adam, ...).
        bucket_size_mb: the largest gradient message, in MiB (see
            :func:`allreduce_gradients`; default 25, as torch's DDP).

    ``param_groups``, ``state`` and ``defaults`` are the wrapped optimizer's; ``zero_grad``,
    ``state_dict``, ``load_state_dict`` and ``add_param_group`` act on it, and any other
    attribute is looked up on it. With one rank (or before ``init()``) ``step()`` is the
    wrapped optimizer's step.

    Example::

        dist.init()
        opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        sched = optim.lr_scheduler.StepLR(opt, step_size=30)  # or StepLR(opt.optimizer, ...)
    """

    def __init__(self, optimizer: Optimizer, bucket_size_mb: float = 25):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedOptimizer: expected a convnet.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already distributed "
                            "(wrapping twice would average the gradients twice)")
        if bucket_size_mb < 0:
            raise ValueError(f"DistributedOptimizer: bucket_size_mb must be >= 0, got "
                             f"{bucket_size_mb}")
        # no Optimizer.__init__: the groups and the state live in the wrapped optimizer
        self.__dict__["optimizer"] = optimizer
        self.bucket_size_mb = bucket_size_mb
        self._first_step = True
        broadcast_parameters(self._params())

    # the wrapped optimizer's own objects, never copies (schedulers write group["lr"])
    param_groups = property(lambda self: self.optimizer.param_groups,
                            lambda self, v: setattr(self.optimizer, "param_groups", v))
    state = property(lambda self: self.optimizer.state,
                     lambda self, v: setattr(self.optimizer, "state", v))
    defaults = property(lambda self: self.optimizer.defaults,
                        lambda self, v: setattr(self.optimizer, "defaults", v))

    def __getattr__(self, name: str):
        # only reached for names the wrapper lacks (e.g. an optimizer's own helpers)
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def _params(self) -> list:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def step(self, closure=None):
        """Average the gradients over the ranks, then step the wrapped optimizer. Returns
        ``closure()``'s loss when a closure is given (it runs once, before averaging)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if self._first_step:
            broadcast_parameters(self._params())
            self._first_step = False
        allreduce_gradients(self._params(), self.bucket_size_mb)
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def add_param_group(self, group: dict) -> None:
        self.optimizer.add_param_group(group)

    def state_dict(self) -> dict:
        """The wrapped optimizer's state dict (loadable into an unwrapped optimizer)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"
