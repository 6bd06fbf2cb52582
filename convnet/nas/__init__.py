"""Neural architecture search (issue 18): search spaces, strategies, performance estimation.

``convnet.nas`` follows the three parts of NAS: the search space (``space``, ``cell``),
the search strategy (``strategies``, ``darts``) and performance estimation (``estimate``),
plus a benchmark table of a small cell space (``bench``) for comparing strategies in seconds.
"""

# Everything loads on first use, so ``import convnet.nas`` stays cheap.
_EXPORTS = {
    "ValueChoice": "space", "LayerChoice": "space", "InputChoice": "space",
    "ChosenInputs": "space", "SearchSpace": "space", "save_arch": "space",
    "load_arch": "space", "Constraint": "space", "count_params": "space", "count_macs": "space",
    "build": "build", "build_saved": "build",
    "SmallCNNSpace": "macro",
    "CellSpace": "cell",
    "RandomSearch": "strategies", "RegularizedEvolution": "strategies",
    "Reinforce": "strategies", "Strategy": "strategies",
    "DARTS": "darts", "Supernet": "darts", "MixedOp": "darts",
    "Evaluation": "estimate", "PartialTraining": "estimate", "FullTraining": "estimate",
    "WeightSharing": "estimate",
}
_SUBMODULES = {"space", "spaces", "macro", "build", "cell", "strategies", "darts", "estimate",
               "bench", "data"}

__all__ = sorted(_EXPORTS) + ["spaces"]


def __getattr__(name: str):
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'convnet.nas' has no attribute {name!r}")
