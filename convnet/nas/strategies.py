"""Search strategies behind one ask/tell interface (issue 18).

A strategy proposes architectures (plain dicts ``{label: value}``) of a search space and
learns from their scores (higher is better)::

    strategy = RegularizedEvolution(space, seed=0)
    for _ in range(100):
        arch = strategy.ask()
        strategy.tell(arch, evaluate(arch))
    arch, score = strategy.best()

Only four things of the space are used: ``choices`` (ordered ``{label: [option, ...]}`` of
JSON-able options), ``sample(rng)``, ``mutate(arch, rng)`` and ``validate(arch)``, plus its
``name``. All randomness comes from one ``numpy.random.Generator`` seeded by ``seed``, and
``state_dict()`` (JSON-able) holds everything that decides the next asks, so a run stopped
after k tells and resumed with ``load_state_dict`` asks exactly what the uninterrupted run asks.

* ``RandomSearch``: uniform samples, without repeats while unseen architectures remain.
* ``RegularizedEvolution``: aging evolution, Real et al. 2019 (Algorithm 1).
* ``Reinforce``: a policy over the choices (independent categoricals, or an LSTM/GRU controller
  that reads the choices in order) trained by REINFORCE (Williams 1992) with a moving-average
  baseline and an optional entropy bonus, as in Zoph & Le 2017 / ENAS.

A ``constraint`` (any object with ``allows(space, arch) -> bool`` and ``why(space, arch) -> str``,
e.g. ``convnet.nas.Constraint``) filters candidates before they are asked.
"""
from __future__ import annotations

import copy
import json
import math
import numbers
from collections import deque

import numpy as np

__all__ = ["Strategy", "RandomSearch", "RegularizedEvolution", "Reinforce", "query_loop"]

# consecutive candidates a constraint may refuse before ask() gives up
MAX_MISSES = 1000
# RandomSearch enumerates unseen architectures by index only in spaces up to this size
_ENUMERATE_LIMIT = 1_000_000
_STATE_FORMAT = 1


def _key(arch: dict) -> str:
    """A canonical string for an architecture (label order does not matter)."""
    return json.dumps(arch, sort_keys=True)


def _encode(obj):
    """Make a state JSON-able: arrays become ``{"__ndarray__": [...], "dtype", "shape"}``,
    tuples lists, keys strings. Floats survive ``json`` exactly (it writes ``repr``)."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.ravel().tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, deque)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj):
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


class Strategy:
    """Base of all strategies: the ask/tell bookkeeping, constraint filtering and state.

    Args:
        space: a search space (``choices``, ``sample``, ``mutate``, ``validate``, ``name``).
        seed: seeds the strategy's ``numpy.random.Generator``.
        constraint: optional filter with ``allows(space, arch)`` / ``why(space, arch)``;
            ``ask()`` skips candidates it refuses (counted in ``n_rejected``) and raises
            ``ValueError`` after ``MAX_MISSES`` refusals in a row.

    Attributes:
        history: every told ``(arch, score)``, in order (asked or warm-start).
        n_rejected: candidates the constraint refused so far.
    """

    name = "strategy"

    def __init__(self, space, seed: int = 0, constraint=None):
        choices = getattr(space, "choices", None)
        if not isinstance(choices, dict) or not choices:
            raise ValueError(f"{type(self).__name__}: the search space {getattr(space, 'name', space)!r} "
                             "has no choices (an empty space)")
        for label, options in choices.items():
            if len(options) == 0:
                raise ValueError(f"{type(self).__name__}: choice {label!r} of space "
                                 f"{getattr(space, 'name', space)!r} has no options")
        if constraint is not None and not (hasattr(constraint, "allows") and hasattr(constraint, "why")):
            raise TypeError(f"{type(self).__name__}: constraint must have allows(space, arch) and "
                            f"why(space, arch), got {type(constraint).__name__}")
        self.space = space
        self.seed = seed
        self.constraint = constraint
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[dict, float]] = []
        self.n_rejected = 0
        self._pending: list[str] = []  # keys of asked architectures not told yet

    # ------------------------------------------------------------------ interface
    def ask(self) -> dict:
        """The next architecture to evaluate (a fresh dict the caller may keep)."""
        misses = 0
        while True:
            arch = self._propose()
            if self.constraint is None or self.constraint.allows(self.space, arch):
                break
            self.n_rejected += 1
            misses += 1
            self._refused(arch)
            if misses >= MAX_MISSES:
                raise ValueError(f"no architecture of {self.space.name} fits: "
                                 f"{self.constraint.why(self.space, arch)} ({self.name}.ask: "
                                 f"{MAX_MISSES} candidates in a row were refused)")
        self._pending.append(_key(arch))
        self._asked(arch)
        return copy.deepcopy(arch)

    def tell(self, arch: dict, score) -> None:
        """Record ``score`` (a finite real number, higher is better) for ``arch``.

        ``arch`` need not have been asked (a warm start) but must be valid in the space."""
        op = f"{type(self).__name__}.tell"
        if not isinstance(arch, dict):
            raise TypeError(f"{op}: arch must be a dict {{label: value}}, got {type(arch).__name__}")
        checked = self.space.validate(arch)
        arch = copy.deepcopy(arch if checked is None else checked)
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise TypeError(f"{op}: score must be a real number, got {type(score).__name__} ({score!r})")
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"{op}: score is NaN for arch {arch} (a failed evaluation? "
                             "give it a low finite score instead)")
        if math.isinf(score):
            raise ValueError(f"{op}: score must be finite, got {score} for arch {arch}")
        key = _key(arch)
        own = key in self._pending
        if own:
            self._pending.remove(key)
        self.history.append((arch, score))
        self._observe(arch, score, own)

    def best(self) -> tuple[dict, float]:
        """``(arch, score)`` with the highest score told so far (the earliest among ties)."""
        if not self.history:
            raise RuntimeError(f"{type(self).__name__}.best: no architecture has been told yet")
        i = max(range(len(self.history)), key=lambda j: (self.history[j][1], -j))
        arch, score = self.history[i]
        return copy.deepcopy(arch), score

    def state_dict(self) -> dict:
        """A JSON-able dict of everything that decides the next asks."""
        state = {"strategy": self.name, "format": _STATE_FORMAT, "space": self.space.name,
                 "seed": self.seed, "rng": self.rng.bit_generator.state,
                 "history": [[a, s] for a, s in self.history], "pending": list(self._pending),
                 "n_rejected": self.n_rejected}
        state.update(self._extra_state())
        return _encode(copy.deepcopy(state))

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output (also after a JSON round trip)."""
        op = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{op}: expected a dict, got {type(state).__name__}")
        state = _decode(copy.deepcopy(state))
        if state.get("strategy") != self.name:
            raise ValueError(f"{op}: the state is of strategy {state.get('strategy')!r}, not {self.name!r}")
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"{op}: unknown state format {state.get('format')!r} (expected {_STATE_FORMAT})")
        if state.get("space") != self.space.name:
            raise ValueError(f"{op}: the state is of space {state.get('space')!r}, "
                             f"this strategy searches {self.space.name!r}")
        self.seed = state["seed"]
        self.rng.bit_generator.state = state["rng"]
        self.history = [(a, float(s)) for a, s in state["history"]]
        self._pending = list(state["pending"])
        self.n_rejected = int(state["n_rejected"])
        self._load_extra(state)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(space={self.space.name!r}, seed={self.seed}, "
                f"told={len(self.history)})")

    # ------------------------------------------------------------------ hooks
    def _propose(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _refused(self, arch: dict) -> None:
        """A candidate the constraint refused."""

    def _asked(self, arch: dict) -> None:
        """A candidate handed out by ask()."""

    def _observe(self, arch: dict, score: float, own: bool) -> None:
        """A told result; ``own`` says whether this strategy asked for it."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra(self, state: dict) -> None:
        pass

    # helpers
    def _sizes(self) -> list[int]:
        return [len(o) for o in self.space.choices.values()]

    def _indices(self, arch: dict) -> list[int]:
        """The option index of each choice, in label order."""
        return [list(opts).index(arch[label]) for label, opts in self.space.choices.items()]


class RandomSearch(Strategy):
    """Uniform random search: ``space.sample(rng)`` at every ask.

    With ``dedupe=True`` (default) no architecture is asked twice (nor one told or refused
    before) while unseen ones remain: a repeat sample is redrawn, and after 50 repeats in a row
    the next architecture is drawn uniformly among the unseen ones by index (spaces up to
    10^6 architectures). Once every architecture was seen, samples may repeat.
    """

    name = "random"

    def __init__(self, space, seed: int = 0, constraint=None, dedupe: bool = True):
        super().__init__(space, seed, constraint)
        self.dedupe = bool(dedupe)
        self._seen: set[str] = set()
        self._size = int(np.prod(self._sizes(), dtype=object))

    def _propose(self) -> dict:
        arch = self.space.sample(self.rng)
        if not self.dedupe or len(self._seen) >= self._size:
            return arch
        for _ in range(50):
            if _key(arch) not in self._seen:
                return arch
            arch = self.space.sample(self.rng)
        if _key(arch) not in self._seen or self._size > _ENUMERATE_LIMIT:
            return arch
        return self._unseen_by_index()

    def _unseen_by_index(self) -> dict:
        # the r-th index (mixed radix over the choices) not yet seen, r uniform
        labels = list(self.space.choices)
        sizes = self._sizes()
        while len(self._seen) < self._size:
            seen = []
            for key in self._seen:
                arch = json.loads(key)
                try:
                    digits = self._indices(arch)
                except (KeyError, ValueError):
                    continue
                i = 0
                for d, n in zip(digits, sizes):
                    i = i * n + d
                seen.append(i)
            seen.sort()
            index = int(self.rng.integers(self._size - len(seen)))
            for s in seen:  # shift past every seen index at or below it
                if s <= index:
                    index += 1
            digits = []
            for n in reversed(sizes):
                index, d = divmod(index, n)
                digits.append(d)
            arch = {lab: copy.deepcopy(self.space.choices[lab][d]) for lab, d in zip(labels, reversed(digits))}
            try:
                self.space.validate(arch)
            except ValueError:  # a combination the space does not allow: skip it for good
                self._seen.add(_key(arch))
                continue
            return arch
        return self.space.sample(self.rng)

    def _refused(self, arch):
        if self.dedupe:
            self._seen.add(_key(arch))

    def _asked(self, arch):
        self._seen.add(_key(arch))

    def _observe(self, arch, score, own):
        self._seen.add(_key(arch))

    def _extra_state(self):
        return {"dedupe": self.dedupe, "seen": sorted(self._seen)}

    def _load_extra(self, state):
        self.dedupe = bool(state["dedupe"])
        self._seen = set(state["seen"])


class RegularizedEvolution(Strategy):
    """Aging (regularized) evolution, Real et al. 2019, Algorithm 1.

    The first ``population_size`` asks are random architectures. Afterwards each ask draws
    ``sample_size`` members of the population uniformly with replacement, takes the best of them
    as the parent and returns ``space.mutate(parent)``. Each tell appends the child to the
    population (on the right) and, when the population exceeds ``population_size``, removes
    the OLDEST member (on the left) — not the worst. ``history`` keeps every result. Told
    architectures that were not asked (warm starts) join the population the same way.

    Args:
        population_size (P): members alive at once (default 20).
        sample_size (S): tournament size, ``1 <= S <= P`` (default 5).
    """

    name = "evolution"

    def __init__(self, space, population_size: int = 20, sample_size: int = 5, seed: int = 0,
                 constraint=None):
        for arg, v in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RegularizedEvolution: {arg} must be a positive integer, got {v!r}")
        if sample_size > population_size:
            raise ValueError(f"RegularizedEvolution: sample_size ({sample_size}) must not exceed "
                             f"population_size ({population_size})")
        super().__init__(space, seed, constraint)
        self.population_size, self.sample_size = population_size, sample_size
        self.population: deque[tuple[dict, float]] = deque()

    def _propose(self) -> dict:
        # random until P results are in or on their way (an empty population cannot breed)
        if not self.population or len(self.population) + len(self._pending) < self.population_size:
            return self.space.sample(self.rng)
        picks = self.rng.integers(0, len(self.population), size=self.sample_size)
        parent = max(picks.tolist(), key=lambda i: self.population[i][1])  # first best on ties
        return self.space.mutate(copy.deepcopy(self.population[parent][0]), self.rng)

    def _observe(self, arch, score, own):
        self.population.append((arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _extra_state(self):
        return {"population_size": self.population_size, "sample_size": self.sample_size,
                "population": [[a, s] for a, s in self.population]}

    def _load_extra(self, state):
        if (state["population_size"], state["sample_size"]) != (self.population_size, self.sample_size):
            raise ValueError("RegularizedEvolution.load_state_dict: the state has population_size="
                             f"{state['population_size']}, sample_size={state['sample_size']}; this "
                             f"strategy {self.population_size}, {self.sample_size}")
        self.population = deque((a, float(s)) for a, s in state["population"])


# ---------------------------------------------------------------------- REINFORCE controllers
def _controller_classes():
    # built lazily so that importing the strategies does not import the nn stack
    from .. import functional as F
    from ..nn import GRU, LSTM, Module, Parameter
    from ..tensor import Tensor

    def draw(logits: np.ndarray, rng) -> int:
        # inverse CDF with one uniform: deterministic given the generator state
        p = np.exp(logits - logits.max())
        c = np.cumsum(p)
        return min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), len(p) - 1)

    def step_terms(logits, idx):
        logp = F.log_softmax(logits, dim=0)
        return logp[idx], -(logp.exp() * logp).sum()

    class Categorical(Module):
        """Independent logits per choice: ``pi(arch) = prod_t softmax(theta_t)[a_t]``
        (all logits start at 0: the uniform policy)."""

        def __init__(self, sizes, rng):
            super().__init__()
            self.sizes = list(sizes)
            for t, n in enumerate(self.sizes):
                setattr(self, f"logits_{t}", Parameter(np.zeros(n, dtype=np.float64)))

        def run(self, indices=None, rng=None):
            """Sample (``rng``) or score (``indices``) one architecture:
            ``(indices, sum_t log pi_t, sum_t entropy_t)``."""
            out, logp, ent = [], 0.0, 0.0
            for t in range(len(self.sizes)):
                z = getattr(self, f"logits_{t}")
                idx = draw(z.numpy(), rng) if indices is None else indices[t]
                lp, h = step_terms(z, idx)
                out.append(idx)
                logp, ent = logp + lp, ent + h
            return out, logp, ent

    class Recurrent(Module):
        """ENAS-style controller: an LSTM (or GRU) cell reads a learned start vector, then the
        embedding of each choice made; at step t a per-choice linear head maps the hidden
        state (1, H) to the logits of choice t (n_t,). Weights start ``U(-0.1, 0.1)``."""

        def __init__(self, sizes, rng, hidden_size=32, cell="lstm"):
            super().__init__()
            if cell not in ("lstm", "gru"):
                raise ValueError(f"Reinforce: cell must be 'lstm' or 'gru', got {cell!r}")
            if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
                raise ValueError(f"Reinforce: hidden_size must be a positive integer, got {hidden_size!r}")
            self.sizes, self.cell = list(sizes), cell
            h = hidden_size
            self.rnn = (LSTM if cell == "lstm" else GRU)(h, h, dtype=np.float64)
            self.start = Parameter(np.zeros((1, 1, h)))
            for t, n in enumerate(self.sizes):
                setattr(self, f"embed_{t}", Parameter(np.zeros((n, h))))
                setattr(self, f"head_w_{t}", Parameter(np.zeros((n, h))))
                setattr(self, f"head_b_{t}", Parameter(np.zeros(n)))
            for p in self.parameters():  # seeded by the strategy's generator, not the global one
                p.data = Tensor(rng.uniform(-0.1, 0.1, size=p.shape).astype(np.float64))

        def run(self, indices=None, rng=None):
            out, logp, ent = [], 0.0, 0.0
            x, state = self.start, None
            for t in range(len(self.sizes)):
                y, state = self.rnn(x, state)  # y (1, 1, H)
                z = (y.reshape(1, -1) @ getattr(self, f"head_w_{t}").T).reshape(-1) + getattr(self, f"head_b_{t}")
                idx = draw(z.numpy(), rng) if indices is None else indices[t]
                lp, h = step_terms(z, idx)
                out.append(idx)
                logp, ent = logp + lp, ent + h
                x = getattr(self, f"embed_{t}")[idx].reshape(1, 1, -1)
            return out, logp, ent

    return Categorical, Recurrent


class Reinforce(Strategy):
    """REINFORCE over a policy ``pi_theta(arch)`` (Williams 1992; Zoph & Le 2017).

    ``ask()`` samples an architecture from the policy. ``tell(arch, R)`` for an architecture
    it asked takes one Adam step on ``loss = -(R - b) log pi(arch) - entropy * H(pi)``, where
    ``b`` is the moving-average baseline before this reward (the first reward sets ``b = R``),
    then ``b <- baseline_decay * b + (1 - baseline_decay) * R``. ``H`` is the sum over choices of
    the entropy of each step's distribution. Architectures it did not ask (warm starts) go
    into ``history`` and the baseline but give no gradient (REINFORCE is on-policy).

    Args:
        lr: Adam learning rate (default 0.1 for the categorical controller, 0.003 for the
            rnn one: at 0.1 the LSTM collapses onto one architecture within ten asks; on the
            benchmark table 0.003 brings it within 0.2 points of the optimum in 100 queries).
        baseline_decay: in [0, 1) (default 0.9).
        controller: ``"categorical"`` (independent logits per choice) or ``"rnn"`` (a
            recurrent controller over the choices in label order, so later choices depend on
            earlier ones).
        entropy: entropy bonus coefficient (default 0).
        hidden_size, cell: the rnn controller's width and cell (``"lstm"`` or ``"gru"``).
    """

    name = "reinforce"

    def __init__(self, space, lr: float | None = None, baseline_decay: float = 0.9,
                 controller: str = "categorical", entropy: float = 0.0, seed: int = 0,
                 constraint=None, hidden_size: int = 32, cell: str = "lstm"):
        if controller not in ("categorical", "rnn"):
            raise ValueError(f"Reinforce: controller must be 'categorical' or 'rnn', got {controller!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"Reinforce: baseline_decay must be in [0, 1), got {baseline_decay}")
        if lr is None:
            lr = 0.1 if controller == "categorical" else 0.003
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"Reinforce: lr must be a positive number, got {lr}")
        if not (entropy >= 0 and math.isfinite(entropy)):
            raise ValueError(f"Reinforce: entropy must be >= 0, got {entropy}")
        super().__init__(space, seed, constraint)
        from ..optim import Adam

        Categorical, Recurrent = _controller_classes()
        self.controller_kind = controller
        self.lr, self.baseline_decay, self.entropy = float(lr), float(baseline_decay), float(entropy)
        if controller == "categorical":
            self.controller = Categorical(self._sizes(), self.rng)
        else:
            self.controller = Recurrent(self._sizes(), self.rng, hidden_size, cell)
        self.optimizer = Adam(self.controller.parameters(), lr=self.lr)
        self.baseline: float | None = None

    def _propose(self) -> dict:
        from ..autograd.grad_mode import no_grad

        with no_grad():
            indices, _, _ = self.controller.run(rng=self.rng)
        return {lab: copy.deepcopy(opts[i]) for (lab, opts), i in zip(self.space.choices.items(), indices)}

    def log_prob(self, arch: dict) -> float:
        """``log pi(arch)`` under the current policy."""
        from ..autograd.grad_mode import no_grad

        with no_grad():
            _, logp, _ = self.controller.run(indices=self._indices(arch))
        return float(logp.item())

    def _observe(self, arch, score, own):
        b = score if self.baseline is None else self.baseline
        self.baseline = self.baseline_decay * b + (1.0 - self.baseline_decay) * score
        if not own:
            return
        _, logp, ent = self.controller.run(indices=self._indices(arch))
        loss = logp * (-(score - b)) - ent * self.entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _extra_state(self):
        return {"controller": self.controller_kind, "baseline": self.baseline,
                "weights": {k: p.numpy().copy() for k, p in self.controller.named_parameters()},
                "optimizer": self.optimizer.state_dict()}

    def _load_extra(self, state):
        from ..tensor import Tensor

        op = "Reinforce.load_state_dict"
        if state["controller"] != self.controller_kind:
            raise ValueError(f"{op}: the state has a {state['controller']!r} controller, "
                             f"this strategy a {self.controller_kind!r} one")
        own = dict(self.controller.named_parameters())
        weights = state["weights"]
        if set(weights) != set(own) or any(tuple(weights[k].shape) != tuple(p.shape) for k, p in own.items()):
            raise ValueError(f"{op}: the controller weights in the state do not match this "
                             "controller (other hidden_size, cell or space?)")
        for k, p in own.items():
            p.data = Tensor(np.array(weights[k], dtype=p.numpy().dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])


def query_loop(strategy: Strategy, objective, n: int) -> tuple[dict, float]:
    """Ask/tell ``n`` times with ``score = objective(arch)``; returns ``strategy.best()``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"query_loop: n must be a non-negative integer, got {n!r}")
    for _ in range(n):
        arch = strategy.ask()
        strategy.tell(arch, objective(arch))
    return strategy.best()
