"""``jaxopt-lab sweep``: Parquet output and mid-run checkpoints (``sweep.checkpoint_every``)."""

import csv
import os

import numpy as np
import pytest

from jaxopt_lab import sweep_cli


def _cfg(out, **sweep):
    return {
        "problem": {"name": "mlp", "options": {"n_samples": 40, "n_features": 4, "hidden": 8}},
        "solver": {"name": "adam", "steps": 12, "options": {"b2": 0.99}},
        "grid": {"learning_rate": [0.01, 0.1, 0.3]},
        "sweep": {"output": str(out), "chunk_size": 2, **sweep},
    }


def test_parquet_table_equals_csv(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    cfg = sweep_cli.validate_config(_cfg(tmp_path, checkpoint=False))
    meta = sweep_cli.run_config(cfg, progress=False)
    assert meta["tables"] == ["results.csv", "results.parquet"]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    table = pq.read_table(tmp_path / "results.parquet").to_pydict()
    assert list(table) == list(rows[0])
    assert table["status"] == [r["status"] for r in rows] == ["MAX_ITER"] * 3
    assert table["iter_num"] == [12, 12, 12]
    for col in ("learning_rate", "val_loss", "objective"):
        np.testing.assert_array_equal(table[col], [float(r[col]) for r in rows])  # CSV round-trips exactly


@pytest.mark.slow
def test_checkpoint_every_matches_plain_sweep(tmp_path):
    plain = sweep_cli.validate_config(_cfg(tmp_path / "a", checkpoint=False))
    sweep_cli.run_config(plain, progress=False)
    seg = sweep_cli.validate_config(_cfg(tmp_path / "b", checkpoint_every=5))
    meta = sweep_cli.run_config(seg, progress=False)
    assert meta["checkpoint_every"] == 5
    a = list(csv.DictReader(open(tmp_path / "a" / "results.csv")))
    b = list(csv.DictReader(open(tmp_path / "b" / "results.csv")))
    assert [r["iter_num"] for r in b] == ["12"] * 3
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_allclose(float(rb["val_loss"]), float(ra["val_loss"]), rtol=1e-10)
    # Finished chunks are kept, mid-run states dropped once their chunk is done.
    (ckpt,) = os.listdir(tmp_path / "b" / "checkpoints")
    assert sorted(n for n in os.listdir(tmp_path / "b" / "checkpoints" / ckpt) if "_" in n) == [
        "chunk_000000", "chunk_000001"]


@pytest.mark.parametrize("over, match", [
    ({"checkpoint_every": 0}, r"`sweep.checkpoint_every`: must be an int >= 1"),
    ({"checkpoint_every": 5, "checkpoint": False},
     r"`sweep.checkpoint_every`: needs `sweep.checkpoint = true`"),
])
def test_checkpoint_every_validation(tmp_path, over, match):
    with pytest.raises(sweep_cli.ConfigError, match=match):
        sweep_cli.validate_config(_cfg(tmp_path, **over))
