"""Performance estimation: how good an architecture is, and what knowing it costs.

Three estimators, each called as ``estimator(space, arch) -> Evaluation``:

* :class:`FullTraining`: train the built model on the whole training split for many epochs,
  score = validation accuracy. Exact but slow (minutes per architecture here).
* :class:`PartialTraining`: the same with few epochs and/or a subset of the training images
  (a low-fidelity estimate whose ranking, not its value, is what search needs). With
  ``extrapolate_to=E`` the per-epoch validation curve is fitted by a power law
  ``acc(t) = a - b * t**(-c)`` (Domhan et al. 2015 use such curve families) and the score is
  the predicted accuracy at epoch ``E``.
* :class:`WeightSharing`: one shared set of weights for the whole space (a one-shot
  supernet), trained once by sampling a random architecture per batch (single-path one-shot,
  Guo et al. 2020; ENAS's parameter sharing). An architecture is then scored by *inheriting*
  those weights, with no training of its own: milliseconds instead of minutes, at the price
  of a noisier ranking.

The shared weights are keyed by parameter name, shape and the parameter shapes of the
enclosing block, so the same operation at the same position shares one tensor across every
architecture that uses it, as ENAS's controller children do.

Splits are pairs ``(images float32 (N, C, H, W), labels int64 (N,))`` (``convnet.nas.data``).
A ``Constraint`` is applied before training: an architecture that does not fit is not
trained and its evaluation says why (``score = -inf``, ``skipped``).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import optim
from ..autograd.grad_mode import no_grad
from ..functional.loss import cross_entropy
from ..random import manual_seed
from ..tensor import Tensor

__all__ = ["Evaluation", "FullTraining", "PartialTraining", "WeightSharing", "train_model",
           "accuracy", "fit_learning_curve", "extrapolate", "count_parameters"]


@dataclass
class Evaluation:
    """One estimate. ``score`` (higher is better) is what strategies are told; ``accuracy``
    the last measured validation accuracy; ``curve`` the validation accuracy after each epoch;
    ``seconds`` the wall time spent; ``method`` the estimator's name."""

    arch: dict
    score: float
    accuracy: float
    params: int
    seconds: float
    method: str
    epochs: float = 0.0
    curve: list = field(default_factory=list)
    predicted: float | None = None
    skipped: str | None = None
    stopped: bool = False  # training cut short by the deadline: not a fair score

    def to_dict(self) -> dict:
        d = asdict(self)
        if not math.isfinite(d["score"]):
            d["score"] = None
        return d


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _check_split(name: str, split) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = split
    except (TypeError, ValueError):
        raise TypeError(f"nas estimator: {name} must be a pair (images, labels), got "
                        f"{type(split).__name__}") from None
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"nas estimator: {name} must be images (N, C, H, W) and labels (N,) "
                         f"with N > 0, got shapes {x.shape} and {y.shape}")
    return x, y


def accuracy(model, split, batch_size: int = 500, batch_stats: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``split``. ``batch_stats`` normalizes with each batch's
    own BatchNorm statistics (used for inherited weights, whose running statistics belong to
    no single architecture)."""
    x, y = split
    model.train(batch_stats)
    correct = 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(Tensor._make(x[i:i + batch_size])).numpy()
            correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    model.train(True)
    return correct / len(x)


def train_model(model, train, val=None, *, epochs: float = 1, batch_size: int = 64,
                lr: float = 2e-3, weight_decay: float = 0.0, seed: int = 0,
                deadline: float | None = None) -> dict:
    """Adam with a cosine schedule over ``epochs`` (fractions allowed) on ``train``.

    Returns ``{"curve": [val accuracy after each (partial) epoch], "epochs": done,
    "seconds", "stopped": bool}``; training stops early when ``time.monotonic()`` passes
    ``deadline``.
    """
    x, y = train
    rng = np.random.default_rng(seed)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    total = max(1, int(round(epochs * steps_per_epoch)))
    opt = optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    model.train(True)
    start, step, curve, stopped, order = time.perf_counter(), 0, [], False, None
    while step < total:
        k = step % steps_per_epoch
        if k == 0:
            order = rng.permutation(len(x))
        idx = order[k * batch_size:(k + 1) * batch_size]
        loss = cross_entropy(model(Tensor._make(x[idx])), Tensor._make(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if val is not None and (step % steps_per_epoch == 0 or step == total):
            curve.append(accuracy(model, val))
        if deadline is not None and time.monotonic() > deadline and step < total:
            stopped = True
            if val is not None and step % steps_per_epoch:
                curve.append(accuracy(model, val))  # where it stood when time ran out
            break
    return {"curve": curve, "epochs": step / steps_per_epoch, "stopped": stopped,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- curves
def fit_learning_curve(curve) -> tuple[float, float, float]:
    """Least-squares power law ``acc(t) = a - b * t**(-c)`` through ``curve[t-1]`` (t = 1..).

    ``c`` is searched on a grid, ``a`` and ``b`` solved linearly for each; needs >= 3 points.
    """
    acc = np.asarray(curve, dtype=np.float64)
    if acc.size < 3:
        raise ValueError(f"fit_learning_curve: need >= 3 epochs of a curve, got {acc.size}")
    t = np.arange(1, acc.size + 1, dtype=np.float64)
    best = None
    for grid in (np.geomspace(0.05, 4.0, 60), None):  # coarse, then fine around the best c
        if grid is None:
            grid = np.geomspace(best[3] / 1.1, best[3] * 1.1, 60)
        for c in grid:
            basis = np.stack([np.ones_like(t), -t ** (-c)], axis=1)
            (a, b), *_ = np.linalg.lstsq(basis, acc, rcond=None)
            err = float(((basis @ np.array([a, b]) - acc) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, float(a), float(b), float(c))
    return best[1], best[2], best[3]


def extrapolate(curve, epoch: float) -> float:
    """The accuracy a curve is heading for at ``epoch`` (clipped to [0, 1]); the last value
    when the curve has fewer than 3 points or is not rising."""
    curve = list(curve)
    if len(curve) < 3:
        return float(curve[-1]) if curve else 0.0
    a, b, c = fit_learning_curve(curve)
    if b <= 0:  # flat or falling: no gain to predict
        return float(curve[-1])
    return float(min(1.0, max(0.0, a - b * float(epoch) ** (-c))))


# ----------------------------------------------------------------------------- training
class PartialTraining:
    """Score = validation accuracy after a short training (few ``epochs`` on ``train_limit``
    images of ``train``); see the module docstring.

    Args:
        train, val: splits. epochs: training length (fractions allowed). train_limit: use a
        fixed random subset of this many training images (None: all). val_limit: likewise
        for validation. extrapolate_to: score by the power-law prediction at this epoch.
        constraint: skip architectures that do not fit. build_options: passed to ``build``.
        batch_size, lr, weight_decay, seed: the training recipe (Adam, cosine schedule).
    """

    name = "partial"

    def __init__(self, train, val, *, epochs: float = 2, train_limit: int | None = 10_000,
                 val_limit: int | None = None, batch_size: int = 64, lr: float = 2e-3,
                 weight_decay: float = 0.0, seed: int = 0, extrapolate_to: float | None = None,
                 constraint=None, build_options: dict | None = None):
        from .data import subset

        if not epochs > 0:
            raise ValueError(f"{type(self).__name__}: epochs must be > 0, got {epochs!r}")
        self.train = subset(_check_split("train", train), train_limit, seed)
        self.val = subset(_check_split("val", val), val_limit, seed + 1)
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay, self.seed, self.extrapolate_to = weight_decay, seed, extrapolate_to
        self.constraint = constraint
        self.build_options = dict(build_options or {})
        self.build_options.setdefault("num_classes", int(self.train[1].max()) + 1)

    def build(self, space, arch):
        from .build import build

        opts = dict(self.build_options)
        if "input_shape" in getattr(space, "default_options", {}) and "input_shape" not in opts:
            opts["input_shape"] = tuple(self.train[0].shape[1:])
        if "in_channels" in _accepted(space) and "in_channels" not in opts:
            opts["in_channels"] = int(self.train[0].shape[1])
        return build(space, arch, **opts)

    def _skip(self, space, arch, t0) -> Evaluation | None:
        if self.constraint is None or self.constraint.allows(space, arch):
            return None
        return Evaluation(arch=dict(arch), score=-math.inf, accuracy=0.0, params=0,
                          seconds=time.perf_counter() - t0, method=self.name,
                          skipped=self.constraint.why(space, arch))

    def __call__(self, space, arch, deadline: float | None = None) -> Evaluation:
        t0 = time.perf_counter()
        skipped = self._skip(space, arch, t0)
        if skipped is not None:
            return skipped
        manual_seed(self.seed)
        model = self.build(space, arch)
        run = train_model(model, self.train, self.val, epochs=self.epochs,
                          batch_size=self.batch_size, lr=self.lr,
                          weight_decay=self.weight_decay, seed=self.seed, deadline=deadline)
        acc = run["curve"][-1]
        predicted = (extrapolate(run["curve"], self.extrapolate_to)
                     if self.extrapolate_to else None)
        return Evaluation(arch=dict(arch), score=predicted if predicted is not None else acc,
                          accuracy=acc, params=count_parameters(model),
                          seconds=time.perf_counter() - t0, method=self.name,
                          epochs=run["epochs"], curve=run["curve"], predicted=predicted,
                          stopped=run["stopped"])


class FullTraining(PartialTraining):
    """Partial training's recipe on every training image for ``epochs`` (default 10)."""

    name = "full"

    def __init__(self, train, val, *, epochs: float = 10, **kwargs):
        kwargs.setdefault("train_limit", None)
        super().__init__(train, val, epochs=epochs, **kwargs)


def _accepted(space) -> set:
    import inspect

    try:
        return set(inspect.signature(space.build_model).parameters)
    except (TypeError, ValueError):
        return set()


# ----------------------------------------------------------------------------- sharing
class WeightSharing(PartialTraining):
    """One-shot weight sharing: :meth:`train_supernet` trains one shared set of weights by
    sampling a uniformly random architecture for every batch; calling the estimator scores an
    architecture with the inherited weights (BatchNorm with batch statistics), no training.

    Args (besides :class:`PartialTraining`'s): steps: supernet training batches (trained
    lazily before the first score when not done explicitly); lr, momentum: SGD on the shared
    weights, cosine-decayed over ``steps``; val_limit: images scored per architecture
    (default 2,000).
    """

    name = "shared"

    def __init__(self, train, val, *, steps: int = 2000, lr: float = 0.05, momentum: float = 0.9,
                 val_limit: int | None = 2000, **kwargs):
        kwargs.setdefault("train_limit", None)
        super().__init__(train, val, lr=lr, val_limit=val_limit, **kwargs)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"WeightSharing: steps must be a positive integer, got {steps!r}")
        self.steps, self.momentum = steps, momentum
        self.shared: dict[str, np.ndarray] = {}
        self._velocity: dict[str, np.ndarray] = {}
        self.steps_done = 0
        self.supernet_seconds = 0.0

    @staticmethod
    def _keys(model) -> dict[str, str]:
        """``param name -> sharing key`` (name, shape and the enclosing block's shapes)."""
        modules = dict(model.named_modules())
        keys = {}
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            parts = name.split(".")
            block = modules.get(".".join(parts[:-2]), model) if len(parts) > 2 else model
            sig = tuple((n, tuple(q.shape)) for n, q in block.named_parameters()) if block is not model else ()
            keys[name] = f"{name}|{tuple(p.shape)}|{sig}"
        return keys

    def _inherit(self, model) -> dict[str, str]:
        keys = self._keys(model)
        state = model.state_dict()
        for name, key in keys.items():
            if key in self.shared:
                state[name] = self.shared[key]
            elif name in state:
                self.shared[key] = np.array(state[name].numpy(), copy=True)
        model.load_state_dict({k: v for k, v in state.items()}, strict=False)
        return keys

    def train_supernet(self, steps: int | None = None, space=None, deadline: float | None = None,
                       callback=None) -> None:
        """Train the shared weights for ``steps`` more batches (default: up to ``self.steps``)."""
        if space is None:
            space = getattr(self, "_space", None)
        if space is None:
            raise ValueError("WeightSharing.train_supernet: pass the search space")
        self._space = space
        steps = self.steps - self.steps_done if steps is None else int(steps)
        x, y = self.train
        rng = np.random.default_rng(self.seed + self.steps_done)
        t0 = time.perf_counter()
        target, misses = self.steps_done + max(0, steps), 0
        while self.steps_done < target:
            arch = space.sample(rng)
            if self.constraint is not None and not self.constraint.allows(space, arch):
                misses += 1  # refused candidates are not steps; give up as the strategies do
                if misses > 1000:
                    raise ValueError(f"WeightSharing: no architecture of {space.name} fits: "
                                     f"{self.constraint.why(space, arch)}")
                continue
            misses = 0
            manual_seed(self.seed + self.steps_done)
            model = self.build(space, arch)
            keys = self._inherit(model)
            idx = rng.integers(0, len(x), self.batch_size)
            model.train(True)
            loss = cross_entropy(model(Tensor._make(x[idx])), Tensor._make(y[idx]))
            for p in model.parameters():
                p.grad = None
            loss.backward()
            lr = 0.5 * self.lr * (1 + math.cos(math.pi * min(1.0, self.steps_done / self.steps)))
            params = dict(model.named_parameters())
            for name, key in keys.items():
                if name in params:
                    g = params[name].grad
                    if g is None:
                        continue
                    v = self._velocity.get(key)
                    v = g.numpy() if v is None else self.momentum * v + g.numpy()
                    self._velocity[key] = v
                    self.shared[key] = self.shared[key] - lr * v
                else:  # a buffer (BatchNorm running statistics): keep the updated copy
                    buf = dict(model.named_buffers())[name]
                    self.shared[key] = np.array(buf.numpy(), copy=True)
            self.steps_done += 1
            if callback is not None:
                callback(self.steps_done, float(loss.item()))
            if deadline is not None and time.monotonic() > deadline:
                break
        self.supernet_seconds += time.perf_counter() - t0

    def __call__(self, space, arch, deadline: float | None = None) -> Evaluation:
        t0 = time.perf_counter()
        skipped = self._skip(space, arch, t0)
        if skipped is not None:
            return skipped
        if self.steps_done < self.steps:
            self.train_supernet(space=space, deadline=deadline)
        manual_seed(self.seed)
        model = self.build(space, arch)
        self._inherit(model)
        acc = accuracy(model, self.val, batch_stats=True)
        return Evaluation(arch=dict(arch), score=acc, accuracy=acc,
                          params=count_parameters(model), seconds=time.perf_counter() - t0,
                          method=self.name, epochs=0.0)
