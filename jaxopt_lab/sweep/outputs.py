"""What ``jaxopt-lab sweep`` writes: ``results.csv``, ``results.parquet``, PNG plots, versions."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np


def _versions() -> dict:
    import jax
    import jaxlib
    import optax

    import jaxopt_lab

    return {"jaxopt_lab": jaxopt_lab.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _plots(out_dir: str, table: dict, keys: list[str], metric: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(table[metric], float)
    files = []
    for k in keys:
        x = np.asarray(table[k], float)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(x, y, s=12, alpha=0.5, label="members")
        ux = np.unique(x)
        ax.plot(ux, [np.nanmean(y[x == u]) for u in ux], "o-", color="C1", label="mean")
        if ux.min() > 0 and ux.max() / ux.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(k)
        ax.set_ylabel(metric)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric}_vs_{k}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    if len(keys) == 2:
        a, b = (np.asarray(table[k], float) for k in keys)
        ua, ub = np.unique(a), np.unique(b)
        heat = np.array([[np.nanmean(y[(a == i) & (b == j)]) for j in ub] for i in ua])
        fig, ax = plt.subplots(figsize=(5, 4))
        im = ax.imshow(heat, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(ub)), [f"{v:.3g}" for v in ub], rotation=45)
        ax.set_yticks(range(len(ua)), [f"{v:.3g}" for v in ua])
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        fig.colorbar(im, ax=ax, label=f"mean {metric}")
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric}_heatmap.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def _write_parquet(path: str, table: dict) -> bool:
    """Write ``table`` (column name -> 1-D array) as Parquet; False when pyarrow is missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    tmp = path + ".tmp"
    pq.write_table(pa.table({k: np.asarray(v) for k, v in table.items()}), tmp)
    os.replace(tmp, path)
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, np.floating):
        return str(v)  # shortest repr that round-trips in the array's own precision
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, np.bool_ | bool):
        return str(bool(v))
    return str(v)


def _write_csv(path: str, table: dict, n: int) -> None:
    """Write the first ``n`` rows of ``table`` (column name -> 1-D array) as CSV."""
    cols = list(table)
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for i in range(n):
            f.write(",".join(_fmt(table[c][i]) for c in cols) + "\n")
