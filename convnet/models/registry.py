"""The model registry: build any zoo model by name, and describe it without building it.

Every family file registers its factories with :func:`register`; a factory takes
``num_classes`` and ``in_channels`` (keywords) plus its own options and returns an
``nn.Module``. :func:`create` is the one entry point the CLI and the tests use; it passes
``num_classes`` and ``in_channels`` explicitly (defaults 10 and 1, MNIST-sized), while the
factories named after torchvision's (``resnet18``, ``vgg16``, ``alexnet``, ...) called
directly take torchvision's defaults: 1000 classes, 3 channels, ``weights=None``.

What is registered alongside a factory answers questions that must not cost a build (a VGG
has 130M parameters):

- ``family``, and ``builds``: the class whose ``__init__`` options the factory forwards, so
  :func:`model_options` lists the options a model accepts and :func:`create` rejects a
  misspelt one by name, listing the valid ones;
- ``input_rule``: options -> :class:`InputRule`, the image sides the layers accept, so
  :func:`check_input_size` and :func:`fit_input` refuse an image size before any training,
  or adapt the model (``small_input=True``) when that is the fix;
- :func:`count_parameters` builds with shapes only (no weight draws): the whole zoo in
  about 0.3 s, where real builds take about a minute and several GB.
"""
from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["register", "create", "list_models", "load_weights", "pretrained_file", "model_info", "model_options",
           "count_parameters", "InputRule", "InputSizeError", "input_rule", "check_input_size",
           "fit_input", "min_input_size"]


@dataclass(frozen=True)
class InputRule:
    """The image sides ``s`` (height and width) a model accepts: ``s >= minimum``,
    ``s % multiple == 0``, and ``s == exact`` when ``exact`` is set.

    ``minimum`` is where a layer would be left with an empty map (a pool or conv window
    larger than its padded input); ``exact`` is for layers sized for one input (LeNet's first
    fc, ViT's position embeddings); ``multiple`` for inputs cut into patches. ``why`` names
    the layers behind the rule, for messages.
    """

    minimum: int = 1
    multiple: int = 1
    exact: int | None = None
    why: str = ""

    def problem(self, h: int, w: int) -> str | None:
        """What is wrong with an ``h x w`` input (a phrase after the model name), or None."""
        why = f" ({self.why})" if self.why else ""
        if self.exact is not None and (h, w) != (self.exact, self.exact):
            return f"is built for {self.exact}x{self.exact} images{why}, got {h}x{w}"
        if min(h, w) < self.minimum:
            return f"needs images of at least {self.minimum}x{self.minimum}{why}, got {h}x{w}"
        if h % self.multiple or w % self.multiple:
            return f"needs image sides divisible by {self.multiple}{why}, got {h}x{w}"
        return None


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`register` keeps about a model (see the module docstring)."""

    name: str
    factory: Callable
    family: str = ""
    builds: type | None = None
    fixed: tuple[str, ...] = ()
    input_rule: Callable[[dict], InputRule] | None = None
    input_fixes: Callable[[int, dict], list[dict]] | None = None


class InputSizeError(ValueError):
    """A model that cannot take ``size`` (H, W) images. ``fix``: options that would make it
    fit (``None`` when only larger images help); ``minimum``: the smallest side it takes with
    the options given (:func:`min_input_size`, so ``small_input`` counted when not given)."""

    def __init__(self, model: str, size: tuple[int, int], problem: str, fix: dict | None,
                 minimum: int | None):
        self.model, self.size, self.problem, self.fix, self.minimum = (
            model, size, problem, fix, minimum)
        super().__init__(self.message())

    def message(self, cli: bool = False, resize_option: str | None = None) -> str:
        """One line; ``cli=True`` writes the fix as ``--model-option KEY=VALUE`` (JSON values,
        as the CLI parses them) and ``resize_option`` names the option that resizes images."""
        text = f"{self.model} {self.problem}"
        if self.fix:
            if cli:
                how = " ".join(f"--model-option {k}={json.dumps(v, separators=(',', ':'))}"
                               for k, v in self.fix.items())
            else:
                how = ", ".join(f"{k}={v!r}" for k, v in self.fix.items())
            return f"{text}; {how} fixes it"
        if self.minimum is None or min(self.size) >= self.minimum:
            return text  # an exact size the model was built for
        if resize_option:
            return f"{text}; use {resize_option} {self.minimum} or another model"
        return f"{text}; it needs larger images"


_REGISTRY: dict[str, Callable] = {}
_INFO: dict[str, ModelInfo] = {}
_SIZES = ("num_classes", "in_channels")  # set by create itself, not options
# torchvision's factory keywords about pretrained weights: accepted by the torchvision-named
# factories (which refuse anything but "no weights"), never listed as options
_WEIGHT_ARGS = ("weights", "progress", "pretrained")


def weights_dir() -> Path:
    """Where ``weights=`` looks for local pretrained weights: ``$CONVNET_CACHE/weights``, by
    default ``~/.cache/convnet/weights`` (torchvision's hub cache, without the download)."""
    root = os.environ.get("CONVNET_CACHE") or Path.home() / ".cache" / "convnet"
    return Path(root) / "weights"


def pretrained_file(name: str, weights, options: dict) -> Path | None:
    """The local file that ``weights=`` (or the older ``pretrained=True``) asks for, or None.

    torchvision-named factories take ``weights=None`` as torchvision does. convnet downloads
    nothing: any other value loads ``weights_dir() / f"{name}.safetensors"`` (a torchvision
    state dict saved with safetensors) when it is there, and otherwise raises ``ValueError``
    saying where to put it. ``pretrained`` is removed from ``options``.
    """
    pretrained = options.pop("pretrained", False)
    if weights is None and not pretrained:
        return None
    path = weights_dir() / f"{name}.safetensors"
    if path.is_file():
        return path
    given = f"weights={weights!r}" if weights is not None else f"pretrained={pretrained!r}"
    raise ValueError(
        f"{name}: {given}: convnet does not download pretrained weights, and {path} does not "
        f"exist. Save a torchvision state dict there (safetensors.torch.save_file("
        f"tv_model.state_dict(), '{path}')) and weights= loads it; or build with weights=None "
        f"and call convnet.models.load_weights(model, file) on any local file")


def local_weights(path: Path | None, model):
    """``model`` with the weights of ``path`` loaded (strict) when a file was asked for."""
    if path is not None:
        load_weights(model, path)
    return model


def register(name: str | Callable | None = None, fn: Callable | None = None, *,
             family: str = "", builds: type | None = None, fixed: tuple[str, ...] = (),
             input_rule: Callable[[dict], InputRule] | None = None,
             input_fixes: Callable[[int, dict], list[dict]] | None = None):
    """Register a model factory under ``name`` (defaults to the function's name).

    Usable as ``@register``, ``@register("name", family=...)`` or ``register("name", fn)``.
    Registering an existing name twice raises ``ValueError``.

    Args (keywords, all optional; see the module docstring for what they enable):
        family: e.g. ``"ResNet"``, shown by ``convnet models``.
        builds: the class the factory's ``**options`` are forwarded to.
        fixed: that class's arguments the factory sets itself (not options).
        input_rule: ``options -> InputRule``; options come with their defaults filled in.
        input_fixes: ``(side, options) -> [options, ...]``: changes to try, in order, when a
            side does not fit (``input_size=side`` and ``small_input=True`` are tried first
            for every model that takes them).
    """
    def add(f: Callable, key: str | None) -> Callable:
        key = key or f.__name__
        if not isinstance(key, str) or not key:
            raise TypeError(f"register: model name must be a non-empty string, got {key!r}")
        if key in _REGISTRY and _REGISTRY[key] is not f:
            raise ValueError(f"register: a model named {key!r} is already registered")
        _REGISTRY[key] = f
        _INFO[key] = ModelInfo(key, f, family, builds, tuple(fixed), input_rule, input_fixes)
        return f

    if callable(name):  # bare @register
        return add(name, None)
    if fn is not None:
        return add(fn, name)
    return lambda f: add(f, name)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def _closest(word: str, choices) -> str | None:
    """The choice most like ``word`` (difflib ratio >= 0.6; ties go to the earliest)."""
    scored = [(difflib.SequenceMatcher(None, word, c).ratio(), -i, c)
              for i, c in enumerate(choices)]
    best = max(scored, default=None)
    return best[2] if best and best[0] >= 0.6 else None


def _key(name) -> str:
    """The registry key for ``name`` (case-insensitive), or a ValueError suggesting the
    closest name."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.lower()
    if key in _REGISTRY:
        return key
    names = list_models()
    starting = [n for n in names if n.startswith(key)]  # a family name: "vit", "resnet"
    close = (", ".join(starting[:-1]) + " or " + starting[-1] if 1 < len(starting) <= 4
             else _closest(key, names))
    if close:
        raise ValueError(f"unknown model {name!r}; did you mean {close}? "
                         "(`convnet models` lists all)")
    raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names)}")


def model_info(name: str) -> ModelInfo:
    """The registered :class:`ModelInfo` of ``name`` (family, class, input rule)."""
    key = _key(name)
    return _INFO.get(key) or ModelInfo(key, _REGISTRY[key])


def model_options(name: str) -> dict | None:
    """The options :func:`create` accepts for ``name`` (besides ``num_classes`` and
    ``in_channels``), with their defaults, read from the signatures of the factory and of the
    class it builds. ``None`` when the factory takes ``**options`` without registering that
    class (then nothing is checked before the call)."""
    info = model_info(name)
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(info.factory).parameters.values()
    out: dict = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        if info.builds is None:
            return None
        out = {p.name: p.default for p in inspect.signature(info.builds).parameters.values()
               if p.kind in plain and p.name not in info.fixed}
    out.update({p.name: p.default for p in params if p.kind in plain})  # the factory's win
    return {k: (None if v is inspect.Parameter.empty else v) for k, v in out.items()
            if k not in _SIZES and k not in _WEIGHT_ARGS}


def _option_error(name: str, bad: str, accepted) -> str:
    close = _closest(bad, list(accepted))
    hint = f" (did you mean {close!r}?)" if close else ""
    listed = ", ".join(accepted) if accepted else "none"
    return f"{name} has no option {bad!r}{hint}; it accepts: {listed}"


def _check_options(key: str, options: dict) -> dict | None:
    accepted = model_options(key)
    takes_weights = "weights" in inspect.signature(model_info(key).factory).parameters
    if accepted is not None:
        for k in options:
            if k not in accepted and not (takes_weights and k in _WEIGHT_ARGS):
                raise TypeError(_option_error(key, k, sorted(accepted)))
    return accepted


def _positive_int(name: str, arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: {arg} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: {arg} must be >= 1, got {value}")
    return int(value)


def create(name: str, num_classes: int = 10, in_channels: int = 1, **options):
    """Build the registered model ``name``.

    Args:
        name: one of :func:`list_models` (e.g. ``"lenet5"``, ``"resnet20"``), any case.
        num_classes: size of the classifier output (or of the per-pixel output for
            ``unet``). Default 10 (MNIST / Fashion-MNIST / CIFAR-10).
        in_channels: image channels, 1 for grey, 3 for RGB. Default 1.
        **options: family options, for example ``small_input=True`` (stems adapted to
            28x28 / 32x32 images), ``width_mult``, ``groups``, ``dropout``;
            :func:`model_options` lists them. An unknown one raises ``TypeError`` naming
            the ones accepted.

    Returns:
        An ``nn.Module`` in training mode, float32 parameters.

    Example:
        >>> model = create("resnet20", num_classes=10, in_channels=1)
    """
    key = _key(name)
    num_classes = _positive_int(key, "num_classes", num_classes)
    in_channels = _positive_int(key, "in_channels", in_channels)
    accepted = _check_options(key, options)
    try:
        return _REGISTRY[key](num_classes=num_classes, in_channels=in_channels, **options)
    except TypeError as err:
        # factories registered without their class: name the option, not the Python call
        bad = [k for k in options if f"keyword argument '{k}'" in str(err)]
        if accepted is None and bad and "unexpected keyword" in str(err):
            raise TypeError(_option_error(key, bad[0], [])
                            .replace("; it accepts: none", "")) from None
        raise


@contextlib.contextmanager
def _shapes_only():
    """Build modules without drawing their initial weights: ``nn.init``'s fills do nothing,
    so parameters stay the untouched pages ``np.empty`` returned (no memory committed) and
    the global generator does not advance. The composite inits (kaiming, xavier) end in
    these five, which they look up at call time. Not thread-safe: it swaps module
    attributes, so no other thread may initialise a model meanwhile."""
    from ..nn import init

    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "eye_")
    saved = {n: getattr(init, n) for n in names}

    def skip(tensor, *args, **kwargs):
        return tensor

    try:
        for n in names:
            setattr(init, n, skip)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def count_parameters(name: str, num_classes: int = 10, in_channels: int = 1,
                     **options) -> int:
    """Parameters of ``create(name, num_classes, in_channels, **options)``, counted from a
    build that allocates no weights (see :func:`_shapes_only`): vgg16 in milliseconds.
    Shared parameters count once, as in ``model.parameters()``."""
    with _shapes_only():
        model = create(name, num_classes=num_classes, in_channels=in_channels, **options)
    return int(sum(p._data.size for p in model.parameters()))


def _side_pair(size) -> tuple[int, int]:
    h, w = (size, size) if np.isscalar(size) else tuple(size)[-2:]
    return int(h), int(w)


def input_rule(name: str, **options) -> InputRule | None:
    """The :class:`InputRule` of ``name`` built with ``options`` (``None`` when the model
    registered none)."""
    info = model_info(name)
    if info.input_rule is None:
        return None
    return info.input_rule({**(model_options(info.name) or {}), **options})


def _fits(key: str, opts: dict, h: int, w: int) -> bool:
    rule = input_rule(key, **opts)
    return rule is None or rule.problem(h, w) is None


def _fit(key: str, h: int, w: int, options: dict):
    """``(options to build with, options added, None)`` when ``h x w`` fits, or
    ``(options, None, problem)`` when it does not (see :func:`fit_input`)."""
    accepted = _check_options(key, options) or {}
    opts = dict(options)
    if "input_size" in accepted and "input_size" not in options and h == w:
        opts["input_size"] = h
    rule = input_rule(key, **opts)
    problem = rule.problem(h, w) if rule is not None else None
    if problem is None:
        return opts, {}, None
    if "small_input" in accepted and "small_input" not in options:
        small = input_rule(key, **opts, small_input=True).problem(h, w)
        if small is None:
            return {**opts, "small_input": True}, {"small_input": True}, None
        problem = f"{small} even with small_input=True"  # the limit that is left
    return opts, None, problem


def fit_input(name: str, size, **options) -> tuple[dict, dict]:
    """Options with which ``name`` takes ``size`` images (an int side or ``(..., H, W)``).

    Sets ``input_size`` to the side when the model takes it and it was not given (LeNet's
    fc and ViT's position embeddings are sized from it), and adds ``small_input=True`` when
    the stem would shrink the image away and that option, not given, fixes it.

    Returns ``(options to build with, options added to adapt the model)``; raises
    :class:`InputSizeError` (a ValueError) naming the minimum and the option that fixes it
    when no automatic change fits, and ``TypeError`` for an option the model lacks.
    Nothing is built.

    Example:
        >>> fit_input("alexnet", 28)
        ({'small_input': True}, {'small_input': True})
    """
    key = _key(name)
    h, w = _side_pair(size)
    opts, added, problem = _fit(key, h, w, options)
    if problem is None:
        return opts, added
    accepted = model_options(key) or {}
    raise InputSizeError(key, (h, w), problem, _suggest(key, accepted, opts, h, w),
                         min_input_size(key, **options))


def _suggest(key: str, accepted: dict, opts: dict, h: int, w: int) -> dict | None:
    """The first option change that makes ``h x w`` fit, or None."""
    tries = []
    if "input_size" in accepted and h == w:
        tries.append({"input_size": h})
    if "small_input" in accepted and opts.get("small_input") is not True:
        tries.append({"small_input": True})
    fixes = _INFO[key].input_fixes if key in _INFO else None
    if fixes is not None:
        tries += fixes(min(h, w), {**accepted, **opts})
    for change in tries:
        fix = {k: v for k, v in change.items() if opts.get(k, accepted.get(k)) != v}
        if fix and _fits(key, {**opts, **change}, h, w):
            return fix
    return None


def check_input_size(name: str, size, **options) -> None:
    """Raise :class:`InputSizeError` (a ValueError) if ``create(name, **options)`` cannot
    take ``size`` images (an int side or ``(..., H, W)``), naming the minimum side and the
    option that fixes it. Nothing is built."""
    key = _key(name)
    h, w = _side_pair(size)
    accepted = _check_options(key, options) or {}
    rule = input_rule(key, **options)
    problem = rule.problem(h, w) if rule is not None else None
    if problem is not None:
        raise InputSizeError(key, (h, w), problem, _suggest(key, accepted, options, h, w),
                             min_input_size(key, **options))


def min_input_size(name: str, **options) -> int | None:
    """The smallest square side :func:`fit_input` accepts for ``name`` with ``options``
    (so counting ``input_size`` and ``small_input`` set for it), or None when the model
    registered no input rule. Nothing is built."""
    key = _key(name)
    if input_rule(key, **options) is None:
        return None
    for side in range(1, 4097):
        if _fit(key, side, side, options)[2] is None:
            return side
    return None


def _read(path: str) -> dict[str, np.ndarray]:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if ext == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    raise ValueError(f"load_weights: unsupported file type {ext!r} for {path!r} "
                     "(expected .safetensors or .npz)")


def load_weights(model, path: str | os.PathLike, strict: bool = True):
    """Load a state dict saved as ``.safetensors`` (or ``.npz``) into ``model``.

    Keys follow torchvision's names, so a torchvision state dict written with
    ``safetensors.torch.save_file`` loads directly. PyTorch's BatchNorm counter
    ``num_batches_tracked`` is accepted and ignored when the model has no such
    buffer. Values are cast to the model's dtype. Returns ``(missing, unexpected)``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_weights: no such file {path!r}")
    state = _read(path)
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if not (k.endswith("num_batches_tracked") and k not in own)}
    return model.load_state_dict(state, strict=strict)
