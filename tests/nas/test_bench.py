"""The shipped benchmark table, its queries, and strategies compared on it."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from convnet.nas import bench
from convnet.nas.strategies import RandomSearch, RegularizedEvolution

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    return bench.load()


def test_shipped_table_is_complete_and_small(table):
    assert bench.DEFAULT_TABLE.stat().st_size < 1_000_000
    assert len(table) == table.space.size == 3 ** 6 <= 1000
    assert table.meta["protocol"] == bench.PROTOCOL
    assert table.epochs == bench.PROTOCOL["epochs"]
    # every row trained: accuracies are probabilities, the cell with no path is at chance
    assert np.all((table.val >= 0) & (table.val <= 1)) and np.all((table.test >= 0) & (table.test <= 1))
    dead = {e: "none" for e in table.space.choices}
    assert table.query(dead)["val_accuracy"] < 0.15
    assert table.optimum()[1] > 0.8 and np.median(table.val) > 0.7


def test_query_rank_and_errors(table):
    arch, best = table.optimum()
    q = table.query(arch)
    assert q["val_accuracy"] == best == q["val_curve"][-1]
    assert table.query(arch, epoch=1)["val_accuracy"] == q["val_curve"][0]
    assert table.rank(arch) == 1 and table.percentile(arch) > 99
    assert table.query(arch)["params"] > 0 and table.query(arch)["macs"] > 0
    worst = table.space.from_index(int(np.argmin(table.val)))
    assert table.rank(worst) > 600
    with pytest.raises(ValueError, match="edge_1_0='avg_pool_3x3' is not allowed"):
        table.query({**arch, "edge_1_0": "avg_pool_3x3"})  # outside the table's ops
    with pytest.raises(ValueError, match="epoch must be"):
        table.query(arch, epoch=9)
    with pytest.raises(ValueError, match="metric"):
        table.optimum("train_accuracy")
    f = table.objective()
    f(arch), f(worst)
    assert f.queries == 2


def test_corrupt_and_missing_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_nas_table"):
        bench.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": [[1, 2]]')
    with pytest.raises(ValueError, match="corrupt"):
        bench.load(bad)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"rows": [[[0.5], 0.5, 1, 1, 1.0]]}))
    with pytest.raises(ValueError, match="1 rows for a space of 729"):
        bench.load(short)


def test_evolution_and_random_reach_the_optimum_and_evolution_wins(table):
    """The judged comparison: 10 seeds x 100 queries; within 0.5 points on average."""
    res = bench.compare({"random": lambda s, seed: RandomSearch(s, seed=seed),
                         "evolution": lambda s, seed: RegularizedEvolution(s, seed=seed)},
                        table, seeds=range(10), queries=100)
    assert res["random"]["regret_mean"] <= 0.5
    assert res["evolution"]["regret_mean"] <= 0.5
    assert res["evolution"]["mean"] > res["random"]["mean"]
    assert len(res["evolution"]["trajectory"]) == 100
    assert res["evolution"]["trajectory"] == sorted(res["evolution"]["trajectory"])


def test_table_script_rows_and_resume(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_nas_table as mk
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    tiny = {k: (rng.standard_normal((n, 1, 14, 14)).astype(np.float32), rng.integers(0, 10, n))
            for k, n in (("train", 64), ("val", 32), ("test", 32))}
    row = mk.evaluate_cell(0, tiny)  # index 0: every edge 'none'
    curve, test, params, macs, seconds = row
    assert len(curve) == bench.PROTOCOL["epochs"] and 0 <= test <= 1 and params > 0 and macs > 0
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-0.jsonl").write_text(json.dumps({"index": 3, "row": row}) + "\n{\"index\": 4, \"ro")
    assert list(mk.read_parts(parts)) == [3]  # the cut-short line is trained again
