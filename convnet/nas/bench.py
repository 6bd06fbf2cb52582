"""A benchmark table: every architecture of a small cell space, trained once, queried in O(1).

As NAS-Bench-201 does for researchers, the table turns a strategy comparison that would take
days of training into seconds of look-ups: a strategy asks for an architecture, the table
answers with the accuracy that architecture reached under a fixed training protocol.

The shipped table (``convnet/nas/tables/cell-fm14.json``, made by
``scripts/make_nas_table.py``) covers :data:`TABLE_OPS` on the 6 edges of the NB201 cell:
3**6 = 729 cells. Its protocol (:data:`PROTOCOL`): the cell network with C=8, N=1 on
Fashion-MNIST downsampled to 14x14 (2x2 means), trained for 4 epochs on a fixed 4,000-image
subset of the training set (Adam 2e-3, cosine, batch 64, seed 0), scored on 2,000 other
training images (validation) after each epoch, and tested once on 2,000 test images.

Example::

    >>> from convnet import nas
    >>> table = nas.bench.load()
    >>> table.query(table.space.sample(0))["val_accuracy"]
    >>> arch, acc = table.optimum()
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["TABLE_OPS", "PROTOCOL", "DEFAULT_TABLE", "Table", "load", "table_space", "compare"]

TABLE_OPS = ("none", "skip_connect", "nor_conv_3x3")
PROTOCOL = {
    "dataset": "fashion-mnist", "downsample_by": 2, "image_shape": [1, 14, 14],
    "train_images": 4000, "val_images": 2000, "test_images": 2000, "epochs": 4,
    "batch_size": 64, "optimizer": "adam", "lr": 2e-3, "schedule": "cosine", "seed": 0,
    "C": 8, "N": 1, "ops": list(TABLE_OPS),
}
DEFAULT_TABLE = Path(__file__).with_name("tables") / "cell-fm14.json"
# row layout inside the JSON file (one list per architecture, indexed by space.to_index)
COLUMNS = ("val_curve", "test_accuracy", "params", "macs", "seconds")


def table_space():
    """The :class:`~convnet.nas.cell.CellSpace` the table covers (C=8, N=1, :data:`TABLE_OPS`)."""
    from .cell import CellSpace

    return CellSpace(C=PROTOCOL["C"], N=PROTOCOL["N"], ops=TABLE_OPS)


class Table:
    """Look-ups into a benchmark table.

    ``query(arch, epoch=None)`` -> ``{"val_accuracy", "test_accuracy", "val_curve", "params",
    "macs", "seconds"}`` (``epoch`` 1..E answers with the validation accuracy after that
    epoch: a cheaper, partial-training fidelity). ``optimum(metric="val_accuracy")`` -> (arch,
    value); ``rank(arch)`` 1 = best; ``percentile(arch)``; ``objective(epoch=None)`` a
    function ``arch -> val accuracy`` counting its calls in ``.queries``.
    """

    def __init__(self, record: dict, path: Path | None = None):
        self.path = path
        self.meta = record.get("meta", {})
        self.space = table_space()
        rows = record["rows"]
        if len(rows) != self.space.size:
            raise ValueError(f"benchmark table {path}: {len(rows)} rows for a space of "
                             f"{self.space.size} architectures")
        self._rows = rows
        self.val = np.array([r[0][-1] for r in rows], dtype=np.float64)
        self.test = np.array([r[1] for r in rows], dtype=np.float64)
        self.epochs = len(rows[0][0])

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"Table({len(self)} architectures, {self.epochs} epochs, {self.path})"

    def query(self, arch, epoch: int | None = None) -> dict:
        index = self.space.to_index(arch)  # validates: a clear error for foreign archs
        curve, test, params, macs, seconds = self._rows[index]
        if epoch is not None and not (isinstance(epoch, int) and 1 <= epoch <= len(curve)):
            raise ValueError(f"Table.query: epoch must be an int in 1..{len(curve)}, got {epoch!r}")
        return {"val_accuracy": curve[-1] if epoch is None else curve[epoch - 1],
                "test_accuracy": test, "val_curve": list(curve), "params": params,
                "macs": macs, "seconds": seconds}

    def _metric(self, metric: str) -> np.ndarray:
        if metric not in ("val_accuracy", "test_accuracy"):
            raise ValueError(f"Table: metric must be 'val_accuracy' or 'test_accuracy', got {metric!r}")
        return self.val if metric == "val_accuracy" else self.test

    def optimum(self, metric: str = "val_accuracy") -> tuple[dict, float]:
        values = self._metric(metric)
        i = int(np.argmax(values))
        return self.space.from_index(i), float(values[i])

    def rank(self, arch, metric: str = "val_accuracy") -> int:
        values = self._metric(metric)
        return int((values > values[self.space.to_index(arch)]).sum()) + 1

    def percentile(self, arch, metric: str = "val_accuracy") -> float:
        """Share of the table's architectures that are worse than ``arch`` (100 = the best)."""
        values = self._metric(metric)
        return 100.0 * float((values < values[self.space.to_index(arch)]).mean())

    def objective(self, epoch: int | None = None):
        """``f(arch) -> validation accuracy`` for strategies; ``f.queries`` counts calls."""
        def f(arch):
            f.queries += 1
            return float(self.query(arch, epoch)["val_accuracy"])
        f.queries = 0
        return f


def load(path=None) -> Table:
    """The table at ``path`` (default: the shipped one), with clear errors for a missing or
    corrupt file."""
    path = Path(DEFAULT_TABLE if path is None else path)
    try:
        record = json.loads(path.read_text())
        rows = record["rows"]
        if not isinstance(rows, list) or any(len(r) != len(COLUMNS) for r in rows):
            raise ValueError("rows malformed")
    except FileNotFoundError:
        raise FileNotFoundError(f"benchmark table {path} does not exist (make it with "
                                "scripts/make_nas_table.py)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"benchmark table {path} is corrupt or not a table ({exc})") from None
    return Table(record, path)


def compare(strategies: dict, table: Table | None = None, seeds=range(10), queries: int = 100) -> dict:
    """Run each strategy ``queries`` times per seed against ``table``.

    ``strategies``: ``{name: make(space, seed) -> Strategy}``. Returns ``{name: {"best":
    [best val accuracy per seed], "mean", "regret_mean" (optimum - best, in points),
    "within_0.5": seeds within 0.5 points of the optimum, "trajectory": mean best-so-far after
    each query}}``. A query is one ``ask``/``tell``; asking an architecture again counts again.
    """
    table = load() if table is None else table
    _, opt = table.optimum()
    out = {}
    for name, make in strategies.items():
        bests, trajectories = [], []
        for seed in seeds:
            strategy = make(table.space, seed)
            f, best, traj = table.objective(), -math.inf, []
            for _ in range(queries):
                arch = strategy.ask()
                score = f(arch)
                strategy.tell(arch, score)
                best = max(best, score)
                traj.append(best)
            bests.append(best)
            trajectories.append(traj)
        bests_a = np.array(bests)
        out[name] = {"best": bests, "mean": float(bests_a.mean()),
                     "regret_mean": float(100 * (opt - bests_a).mean()),
                     "within_0.5": int((100 * (opt - bests_a) <= 0.5 + 1e-9).sum()),
                     "trajectory": np.mean(trajectories, axis=0).tolist()}
    return out
