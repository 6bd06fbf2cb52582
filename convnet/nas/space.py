"""Search spaces: choices inside ordinary model code, architectures as plain dicts.

A search space is a model factory with named choices in it. Inside the factory (called by a
``SearchSpace`` while it *traces* or *builds*) every choice resolves to one plain value:

* ``ValueChoice(candidates, label=None)`` -> one candidate (a width, a kernel size, a name);
* ``LayerChoice(candidates, label=None)`` -> one of the candidate modules (a list, option =
  index, or a dict ``name -> module``, option = name);
* ``InputChoice(n_candidates, n_chosen=1, label=None)`` -> a ``ChosenInputs`` module that sums
  the chosen ones of the inputs it is given (option = sorted list of input indices;
  ``n_chosen=None`` allows any subset, the empty one included: ``ChosenInputs`` then returns
  ``None``, and ``.chosen`` tells the factory which inputs will be used).

When tracing, each choice records its label and options and answers with its first option;
when building it answers with ``arch[label]``. So ``build`` returns an ordinary model with no
choice module left. The rule this needs: a factory declares every choice on every call, in the
same order (declare them up front even where a later value makes them unused), and the options
must not depend on the build options. Re-using a label shares the choice.

Example::

    >>> from convnet import nn, nas
    >>> def tiny(num_classes=10):
    ...     w = nas.ValueChoice([8, 16], label="width")
    ...     return nn.Sequential(
    ...         nn.Conv2d(1, w, nas.ValueChoice([3, 5], label="kernel"), padding="same"),
    ...         nas.LayerChoice({"relu": nn.ReLU(), "gelu": nn.GELU()}, label="act"),
    ...         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, num_classes))
    >>> space = nas.SearchSpace("tiny", tiny)
    >>> space.choices
    {'width': [8, 16], 'kernel': [3, 5], 'act': ['relu', 'gelu']}
    >>> model = space.build({"width": 16, "kernel": 3, "act": "gelu"})   # an nn.Sequential

Outside a factory, ``LayerChoice`` and ``InputChoice`` are modules that hold every candidate
and run the ``active`` one (default: the first option), and ``ValueChoice`` is a small record.

Architectures are plain JSON-able dicts ``{label: value}``; ``save_arch`` / ``load_arch`` store
them with the space name and the build options, ``Constraint`` filters by parameters / MACs.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import threading
from typing import Callable, Iterator

import numpy as np

from ..nn.modules.module import Module

__all__ = [
    "ValueChoice", "LayerChoice", "InputChoice", "ChosenInputs", "SearchSpace",
    "save_arch", "load_arch", "Constraint", "count_params", "count_macs",
]

ARCH_FORMAT = 1

# ----------------------------------------------------------------------------- context
_state = threading.local()


class _Context:
    """One factory call: ``mode`` is "trace" (record, answer first option) or "build"."""

    def __init__(self, mode: str, space: "SearchSpace | None" = None, arch: dict | None = None):
        self.mode, self.space, self.arch = mode, space, arch
        self.choices: dict[str, list] = {}
        self.counter = 0

    def auto_label(self, kind: str) -> str:
        label = f"{kind}_{self.counter}"
        self.counter += 1
        return label

    def resolve(self, kind: str, label: str | None, options: list):
        """Record (trace) or look up (build) ``label``; returns the option index."""
        if label is None:
            label = self.auto_label(kind)
        if not isinstance(label, str) or not label:
            raise ValueError(f"{kind}: label must be a non-empty string, got {label!r}")
        seen = self.choices.get(label)
        if seen is not None and seen != options:
            raise ValueError(f"{kind}: label {label!r} is declared twice with different options "
                             f"({seen} and {options}); a re-used label must repeat its options")
        self.choices[label] = options
        if self.mode == "trace":
            return label, 0
        traced = self.space.choices
        if label not in traced:
            raise ValueError(f"space {self.space.name!r}: choice {label!r} was not declared when "
                             f"the space was traced; declare every choice on every call")
        if traced[label] != options:
            raise ValueError(f"space {self.space.name!r}: choice {label!r} has options {options} "
                             f"when building but {traced[label]} when traced")
        return label, _index_of(options, self.arch[label])


def _current() -> _Context | None:
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


def _run(ctx: _Context, factory: Callable, options: dict):
    stack = _state.__dict__.setdefault("stack", [])
    stack.append(ctx)
    try:
        return factory(**options)
    finally:
        stack.pop()


def _key(value) -> str:
    # Values compare by their JSON text: 1 != True != 1.0, a tuple equals its list.
    def default(o):
        if hasattr(o, "item"):  # numpy scalars
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON-able")
    return json.dumps(value, sort_keys=True, default=default)


def _index_of(options: list, value) -> int:
    try:
        k = _key(value)
    except (TypeError, ValueError):
        return -1
    for i, o in enumerate(options):
        if _key(o) == k:
            return i
    return -1


def _json_options(kind: str, label, candidates) -> list:
    try:
        opts = json.loads(json.dumps(list(candidates)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{kind} {label!r}: candidates must be JSON-able values "
                         f"(numbers, strings, booleans, lists): {e}") from None
    return opts


def _check_nonempty(kind: str, label, candidates) -> None:
    if len(candidates) == 0:
        raise ValueError(f"{kind} {label!r}: the candidate list is empty; give at least one")
    keys = [_key(c) for c in candidates] if kind == "ValueChoice" else None
    if keys is not None and len(set(keys)) != len(keys):
        raise ValueError(f"{kind} {label!r}: candidates {list(candidates)} repeat a value")


# ----------------------------------------------------------------------------- choices
class ValueChoice:
    """A value chosen from ``candidates`` (kernel size, width, stride, activation name...).

    Inside a space's factory ``ValueChoice([16, 32], label="w")`` *is* the chosen value (an
    ``int`` here); elsewhere it is a record with ``candidates`` and ``label``.
    """

    def __new__(cls, candidates, label: str | None = None):
        candidates = list(candidates)
        _check_nonempty("ValueChoice", label, candidates)
        ctx = _current()
        if ctx is None:
            obj = super().__new__(cls)
            obj.candidates = _json_options("ValueChoice", label, candidates)
            obj.label = label
            return obj
        opts = _json_options("ValueChoice", label, candidates)
        _, i = ctx.resolve("value", label, opts)
        return candidates[i]

    def __repr__(self) -> str:
        return f"ValueChoice({self.candidates!r}, label={self.label!r})"


class LayerChoice(Module):
    """One of several candidate modules runs. ``candidates``: a list (option = index) or a
    dict ``name -> module`` (option = name). Inside a factory the call returns the chosen
    module itself; elsewhere it is a module holding all candidates that runs ``active``."""

    def __new__(cls, candidates, label: str | None = None):
        names, mods = _layer_candidates(candidates, label)
        ctx = _current()
        if ctx is None:
            return super().__new__(cls)
        _, i = ctx.resolve("layer", label, names)
        return mods[i]

    def __init__(self, candidates, label: str | None = None):
        super().__init__()
        names, mods = _layer_candidates(candidates, label)
        self.label = label
        self.options = names
        for n, m in zip(names, mods):
            self.add_module(str(n), m)
        self.active = names[0]

    def forward(self, *args, **kwargs):
        return self._modules[str(self.active)](*args, **kwargs)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active!r}"


def _layer_candidates(candidates, label):
    if isinstance(candidates, dict):
        names, mods = list(candidates.keys()), list(candidates.values())
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"LayerChoice {label!r}: candidate names must be non-empty strings")
    else:
        mods = list(candidates)
        names = list(range(len(mods)))
    _check_nonempty("LayerChoice", label, mods)
    for n, m in zip(names, mods):
        if not isinstance(m, Module):
            raise TypeError(f"LayerChoice {label!r}: candidate {n!r} is a {type(m).__name__}, "
                            f"not an nn.Module")
    return names, mods


def _input_options(n_candidates: int, n_chosen, label) -> list:
    if not isinstance(n_candidates, int) or n_candidates < 1:
        raise ValueError(f"InputChoice {label!r}: n_candidates must be a positive int, "
                         f"got {n_candidates!r}")
    if n_chosen is None:
        sizes = range(0, n_candidates + 1)
    elif isinstance(n_chosen, int) and 1 <= n_chosen <= n_candidates:
        sizes = [n_chosen]
    else:
        raise ValueError(f"InputChoice {label!r}: n_chosen must be None or an int in "
                         f"1..{n_candidates}, got {n_chosen!r}")
    return [list(c) for k in sizes for c in itertools.combinations(range(n_candidates), k)]


class ChosenInputs(Module):
    """Sum of the inputs at ``chosen`` (what a built ``InputChoice`` is); ``None`` if none."""

    def __init__(self, chosen):
        super().__init__()
        self.chosen = [int(i) for i in chosen]

    def forward(self, inputs):
        out = None
        for i in self.chosen:
            out = inputs[i] if out is None else out + inputs[i]
        return out

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}"


class InputChoice(Module):
    """Which of ``n_candidates`` input tensors are used (summed). ``n_chosen``: how many
    (``None``: any subset, the empty one included). Options are sorted index lists, e.g.
    ``[[0], [1]]`` for ``InputChoice(2)``. Call it on the list of candidate inputs."""

    def __new__(cls, n_candidates: int, n_chosen: int | None = 1, label: str | None = None):
        opts = _input_options(n_candidates, n_chosen, label)
        ctx = _current()
        if ctx is None:
            return super().__new__(cls)
        _, i = ctx.resolve("input", label, opts)
        return ChosenInputs(opts[i])

    def __init__(self, n_candidates: int, n_chosen: int | None = 1, label: str | None = None):
        super().__init__()
        self.label, self.n_candidates, self.n_chosen = label, n_candidates, n_chosen
        self.options = _input_options(n_candidates, n_chosen, label)
        self.active = self.options[0]

    def forward(self, inputs):
        if len(inputs) != self.n_candidates:
            raise ValueError(f"InputChoice {self.label!r}: expected {self.n_candidates} inputs, "
                             f"got {len(inputs)}")
        return ChosenInputs(self.active)(inputs)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active!r}"


CHOICE_MODULES = (LayerChoice, InputChoice)


# ----------------------------------------------------------------------------- space
class SearchSpace:
    """A named set of choices ``{label: [options]}`` and a way to build a model from one pick.

    Made either from a factory (``SearchSpace(name, factory, **default_options)``: the choices
    are traced from one call) or, in a subclass, from ``choices=`` plus an override of
    ``build_model(arch, **options)``. Architectures are dicts ``{label: option}``.

    Attributes / methods: ``name``, ``choices`` (ordered dict copy), ``labels``, ``size``
    (product of the option counts), ``sample(rng)``, ``validate(arch)``, ``neighbours(arch)``,
    ``mutate(arch, rng)``, ``all()``, ``to_index(arch)`` / ``from_index(i)`` (mixed radix, the
    first label most significant: the order of ``all()``), ``build(arch, **options)``.
    """

    def __init__(self, name: str, factory: Callable | None = None, choices: dict | None = None,
                 **default_options):
        if not isinstance(name, str) or not name:
            raise ValueError(f"SearchSpace: name must be a non-empty string, got {name!r}")
        self.name = name
        self.factory = factory
        self.default_options = dict(default_options)
        if factory is not None:
            if choices is not None:
                raise ValueError(f"SearchSpace {name!r}: give a factory or choices, not both")
            ctx = _Context("trace")
            _run(ctx, factory, self.default_options)
            choices = ctx.choices
        if not choices:
            raise ValueError(f"SearchSpace {name!r}: the space is empty (no choices declared)")
        self._choices: dict[str, list] = {}
        for label, opts in choices.items():
            opts = list(opts)
            if not isinstance(label, str) or not label:
                raise ValueError(f"SearchSpace {name!r}: label {label!r} must be a non-empty string")
            if not opts:
                raise ValueError(f"SearchSpace {name!r}: choice {label!r} has no options")
            self._choices[label] = _json_options("choice", label, opts)
        self._radix = [len(o) for o in self._choices.values()]

    # -- description
    @property
    def choices(self) -> dict[str, list]:
        return {k: [json.loads(json.dumps(o)) for o in v] for k, v in self._choices.items()}

    @property
    def labels(self) -> list[str]:
        return list(self._choices)

    @property
    def size(self) -> int:
        return math.prod(self._radix)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self._choices)} choices, size={self.size})"

    # -- architectures
    def _value(self, label: str, i: int):
        return json.loads(json.dumps(self._choices[label][i]))  # a copy

    def validate(self, arch) -> dict:
        """The arch in canonical form (label order, lists for tuples); ValueError naming the
        label, the value and the allowed values when it does not fit."""
        if not isinstance(arch, dict):
            raise TypeError(f"space {self.name!r}: an architecture is a dict {{label: value}}, "
                            f"got {type(arch).__name__}")
        unknown = [k for k in arch if k not in self._choices]
        if unknown:
            raise ValueError(f"space {self.name!r}: unknown label(s) {unknown}; "
                             f"labels are {self.labels}")
        missing = [k for k in self._choices if k not in arch]
        if missing:
            raise ValueError(f"space {self.name!r}: missing label(s) {missing}")
        return {k: self._value(k, self._digit(k, arch[k])) for k in self._choices}

    def _digit(self, label: str, value) -> int:
        i = _index_of(self._choices[label], value)
        if i < 0:
            raise ValueError(f"space {self.name!r}: {label}={value!r} is not allowed; "
                             f"allowed values: {self._choices[label]}")
        return i

    def to_index(self, arch) -> int:
        arch = self.validate(arch)
        index = 0
        for (label, value), n in zip(arch.items(), self._radix):
            index = index * n + self._digit(label, value)
        return index

    def from_index(self, index: int) -> dict:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                or not 0 <= index < self.size:
            raise ValueError(f"space {self.name!r}: index {index!r} is not in range({self.size})")
        index = int(index)
        digits = []
        for n in reversed(self._radix):
            index, d = divmod(index, n)
            digits.append(d)
        return {k: self._value(k, d) for k, d in zip(self._choices, reversed(digits))}

    def all(self, limit: int = 1_000_000) -> Iterator[dict]:
        """Every architecture in index order (refused above ``limit``)."""
        if self.size > limit:
            raise ValueError(f"space {self.name!r}: size {self.size} is above limit={limit}; "
                             f"use sample() or from_index()")
        for digits in itertools.product(*(range(n) for n in self._radix)):
            yield {k: self._value(k, d) for k, d in zip(self._choices, digits)}

    def sample(self, rng=None) -> dict:
        """A uniform random architecture; ``rng`` a numpy Generator, a seed or None."""
        rng = np.random.default_rng(rng)
        return {k: self._value(k, int(rng.integers(n))) for k, n in zip(self._choices, self._radix)}

    def neighbours(self, arch) -> list[dict]:
        """Every architecture that differs from ``arch`` in exactly one choice."""
        arch = self.validate(arch)
        out = []
        for label, n in zip(self._choices, self._radix):
            here = self._digit(label, arch[label])
            for d in range(n):
                if d != here:
                    out.append({**arch, label: self._value(label, d)})
        return out

    def mutate(self, arch, rng=None) -> dict:
        """``arch`` with one choice (uniform over those with >1 option) changed to a different
        option (uniform)."""
        arch = self.validate(arch)
        rng = np.random.default_rng(rng)
        free = [k for k, n in zip(self._choices, self._radix) if n > 1]
        if not free:
            raise ValueError(f"space {self.name!r}: cannot mutate, every choice has one option")
        label = free[int(rng.integers(len(free)))]
        here = self._digit(label, arch[label])
        d = int(rng.integers(len(self._choices[label]) - 1))
        arch[label] = self._value(label, d if d < here else d + 1)
        return arch

    # -- models
    def build(self, arch, **options) -> Module:
        """An ordinary model for ``arch`` (validated); options override ``default_options``."""
        arch = self.validate(arch)
        return self.build_model(arch, **{**self.default_options, **options})

    def fingerprint(self, arch, **options) -> str:
        """A key equal for two architectures exactly when they build the same model (layers,
        shapes and wiring; not the random weights): the printed structure of ``build``.
        Architectures that differ only in choices the model never uses (small-cnn's blocks
        beyond ``depth``) share it, so a search can score the model once."""
        return model_fingerprint(self.build(arch, **options))

    def build_model(self, arch: dict, **options) -> Module:
        """Subclasses without a factory override this (``arch`` is already validated)."""
        if self.factory is None:
            raise NotImplementedError(f"{type(self).__name__}: no factory; override build_model")
        return _run(_Context("build", self, arch), self.factory, options)


def model_fingerprint(model: Module) -> str:
    """The printed structure of ``model`` plus its parameters' names and shapes: equal for two
    models that compute the same function family (see ``SearchSpace.fingerprint``)."""
    shapes = ";".join(f"{n}:{tuple(p.shape)}" for n, p in model.named_parameters())
    return f"{model!r}|{shapes}"


# ----------------------------------------------------------------------------- files
def save_arch(path, space, arch, options: dict | None = None) -> None:
    """Write ``{"format": 1, "space": name, "arch": {...}, "options": {...}}`` atomically.
    ``space``: a ``SearchSpace`` (the arch is validated) or a registered name; ``options``:
    the build options used (JSON-able), so ``build_saved(path)`` rebuilds the same model."""
    from ..io.atomic import atomic_write_text

    if isinstance(space, SearchSpace):
        arch, name = space.validate(arch), space.name
    elif isinstance(space, str) and space:
        name = space
    else:
        raise TypeError(f"save_arch: space must be a SearchSpace or a name, got {space!r}")
    record = {"format": ARCH_FORMAT, "space": name, "arch": arch, "options": dict(options or {})}
    try:
        text = json.dumps(record, indent=2)
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_arch: arch and options must be JSON-able: {e}") from None
    atomic_write_text(os.fspath(path), text + "\n")


def load_arch(path) -> dict:
    """Read a ``save_arch`` file: ``{"format", "space", "arch", "options"}``. ValueError for a
    corrupt or foreign file; the arch is validated when the space is registered."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        record = json.loads(text)
    except ValueError as e:
        raise ValueError(f"load_arch: {path} is not valid JSON ({e})") from None
    if not isinstance(record, dict) or "arch" not in record or "space" not in record:
        raise ValueError(f"load_arch: {path} is not an architecture file "
                         f"(expected keys 'format', 'space', 'arch')")
    if record.get("format") != ARCH_FORMAT:
        raise ValueError(f"load_arch: {path} has format {record.get('format')!r}; "
                         f"this version reads format {ARCH_FORMAT}")
    if not isinstance(record["space"], str) or not isinstance(record["arch"], dict):
        raise ValueError(f"load_arch: {path}: 'space' must be a string and 'arch' a dict")
    options = record.get("options", {})
    if not isinstance(options, dict):
        raise ValueError(f"load_arch: {path}: 'options' must be a dict")
    from . import spaces

    if record["space"] in spaces.names():
        try:
            record["arch"] = spaces.get(record["space"]).validate(record["arch"])
        except ValueError as e:
            raise ValueError(f"load_arch: {path}: {e}") from None
    return {"format": ARCH_FORMAT, "space": record["space"], "arch": record["arch"],
            "options": options}


# ----------------------------------------------------------------------------- costs
def _build_for_cost(space, arch, input_shape, options):
    from .build import build

    space = _as_space(space)
    opts = dict(options)
    if "input_shape" in space.default_options and "input_shape" not in opts:
        opts["input_shape"] = tuple(input_shape)
    return build(space, arch, **opts)


def _as_space(space) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    from . import spaces

    return spaces.get(space)


def _summary(space, arch, input_shape, options):
    from ..analysis.summary import summary

    return summary(_build_for_cost(space, arch, input_shape, options), tuple(input_shape))


def count_params(space, arch, input_shape=(1, 28, 28), **options) -> int:
    """Parameters of ``build(space, arch, **options)`` (``convnet.analysis.summary``)."""
    return _summary(space, arch, input_shape, options).total_params


def count_macs(space, arch, input_shape=(1, 28, 28), **options) -> int:
    """Multiply-accumulates of one ``input_shape`` sample through the built model."""
    return _summary(space, arch, input_shape, options).total_macs


class Constraint:
    """A budget: ``allows(space, arch)`` is True when the built model has at most
    ``max_params`` parameters and ``max_macs`` MACs per ``input_shape`` sample; ``why`` says
    what is over. ``options`` are the build options. Counts are cached per architecture."""

    def __init__(self, max_params: int | None = None, max_macs: int | None = None,
                 input_shape=(1, 28, 28), **options):
        for n, v in (("max_params", max_params), ("max_macs", max_macs)):
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
                raise ValueError(f"Constraint: {n} must be a non-negative int or None, got {v!r}")
        self.max_params, self.max_macs = max_params, max_macs
        self.input_shape, self.options = tuple(input_shape), options
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"Constraint(max_params={self.max_params}, max_macs={self.max_macs})"

    def cost(self, space, arch) -> tuple[int, int]:
        """``(params, macs)`` of the built model."""
        space = _as_space(space)
        key = (space.name, _key(space.validate(arch)))
        if key not in self._cache:
            s = _summary(space, arch, self.input_shape, self.options)
            self._cache[key] = (s.total_params, s.total_macs)
        return self._cache[key]

    def why(self, space, arch) -> str:
        """'' when allowed, else e.g. 'params 120,000 > max_params=100,000'."""
        if self.max_params is None and self.max_macs is None:
            return ""
        params, macs = self.cost(space, arch)
        out = []
        if self.max_params is not None and params > self.max_params:
            out.append(f"params {params:,} > max_params={self.max_params:,}")
        if self.max_macs is not None and macs > self.max_macs:
            out.append(f"MACs {macs:,} > max_macs={self.max_macs:,}")
        return "; ".join(out)

    def allows(self, space, arch) -> bool:
        return self.why(space, arch) == ""
