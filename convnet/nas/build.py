"""``build(space, arch, **options)``: an ordinary model for one architecture of a space.

``space`` is a ``SearchSpace`` or a registered name (``convnet.nas.spaces.names()``). The arch
is validated first (ValueError naming the label, the value and the allowed values) and the
result is checked to hold no ``LayerChoice`` / ``InputChoice`` module.

Example::

    >>> from convnet import nas
    >>> arch = nas.spaces.get("small-cnn").sample(0)
    >>> model = nas.build("small-cnn", arch, input_shape=(1, 28, 28), num_classes=10)
    >>> nas.save_arch("best.json", "small-cnn", arch, {"num_classes": 10})
    >>> same = nas.build_saved("best.json")   # the same architecture and options
"""
from __future__ import annotations

import sys
import types

from .space import CHOICE_MODULES, SearchSpace, load_arch

__all__ = ["build", "build_saved", "build_record"]


def build(space, arch, **options):
    """Model for ``arch`` in ``space``; ``options`` (e.g. ``num_classes``, ``input_shape``)
    override the space's defaults."""
    if not isinstance(space, SearchSpace):
        from . import spaces

        space = spaces.get(space)
    model = space.build(arch, **options)
    left = [n or "<root>" for n, m in model.named_modules() if isinstance(m, CHOICE_MODULES)]
    if left:
        raise RuntimeError(f"build: space {space.name!r} left choice modules in the model: {left}")
    return model


def build_saved(path, **overrides):
    """Rebuild the model of a ``save_arch`` file with its stored build options."""
    record = load_arch(path)
    return build(record["space"], record["arch"], **{**record["options"], **overrides})


def build_record(record: dict, num_classes: int | None = None, in_channels: int | None = None,
                 image_size: int | None = None):
    """Build a ``load_arch`` record for a dataset: ``num_classes``, ``in_channels`` and the
    square ``image_size`` override the stored options where the space takes them (the
    macro space's ``input_shape``, the cell space's ``in_channels``)."""
    import inspect

    from . import spaces

    space = spaces.get(record["space"])
    opts = dict(record.get("options") or {})
    accepted = set(inspect.signature(space.build_model).parameters)
    accepted |= set(getattr(space, "default_options", {}))
    if num_classes is not None:
        opts["num_classes"] = int(num_classes)
    if "input_shape" in accepted and in_channels is not None and image_size is not None:
        opts["input_shape"] = (int(in_channels), int(image_size), int(image_size))
    elif "in_channels" in accepted and in_channels is not None:
        opts["in_channels"] = int(in_channels)
    opts = {k: (tuple(v) if k == "input_shape" else v) for k, v in opts.items()}
    return build(space, record["arch"], **opts)


class _CallableModule(types.ModuleType):
    # ``convnet.nas.build`` names both this module and the function: importing the submodule
    # sets the package attribute to the module, so the module itself calls ``build``.
    def __call__(self, space, arch, **options):
        return build(space, arch, **options)


sys.modules[__name__].__class__ = _CallableModule
