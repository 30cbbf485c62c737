"""Pilot tuning for ``bench_char_lm.py``: one seed, 240 steps, grids over AdamW's learning
rate and Sophia-G's learning rate, b1, gamma, b2, update interval k and curvature bias
correction (``jl.sophia(..., bias_correction=True)``).

Each grid is one ``jit(vmap)`` program over its members (numbers traced, so a grid
compiles once; k and bias correction are static, so they get their own grids). Prints
one line per member and writes ``benchmarks/results/char_lm_tuning.md``: final and
best validation loss of every member. About 30 minutes on 2 CPU cores.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/tune_char_lm.py
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import itertools  # noqa: E402
import time  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks import _char_lm as C  # noqa: E402
from benchmarks._timing import machine, write_section  # noqa: E402

STEPS, EVERY = 240, 20
# (optimizer, batch windows, k, bias correction, lrs, gammas, b1s, b2s)
GRIDS = [
    ("sophia", 16, 10, False, (1e-3, 3e-3, 1e-2), (0.04, 0.3, 2.0), (0.965,), (0.99, 0.9)),
    ("adamw", 64, 10, False, (1.5e-3, 3e-3, 6e-3), (0.0,), (0.9,), (0.95,)),
    ("sophia", 64, 10, False, (3e-4, 1e-3, 3e-3), (0.04, 0.3), (0.9, 0.965), (0.99,)),
    ("sophia", 64, 10, False, (3e-3, 1e-2, 3e-2), (3.0, 10.0, 30.0), (0.9,), (0.99,)),
    ("sophia", 64, 10, True, (1e-3, 3e-3, 1e-2), (1.0, 3.0, 10.0), (0.9,), (0.99,)),
    ("sophia", 64, 1, False, (1e-3, 2e-3), (0.04, 0.3), (0.9,), (0.99,)),
]


def rule(kind: str, k: int, bias_correction: bool):
    """``(factory(schedule, key, gamma, b1, b2), extra-args kind)`` for ``C.make_train``."""
    if kind == "adamw":
        return (lambda sched, key, gamma, b1, b2: optax.adamw(sched, b1=b1, b2=b2, weight_decay=0.1)), None
    return (lambda sched, key, gamma, b1, b2: jl.sophia(
        sched, b1=b1, b2=b2, gamma=gamma, weight_decay=0.2, update_interval=k, estimator="gnb",
        bias_correction=bias_correction)), "gnb"


def main():
    train, val = C.load_tokens()
    lines = ["## Character-level LM: pilot tuning (one seed, 240 steps)", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/tune_char_lm.py`  ",
             f"Machine: {machine()}. Model and schedule as in the section above (batch given per row: "
             "windows of 64 characters). AdamW: wd 0.1; Sophia-G: GNB estimator, wd 0.2, clip 1. "
             "Validation loss (nats) after 240 steps, and the best over the evaluations every 20 steps.",
             "", "| optimizer | batch | k | h bias corr. | lr | gamma | b1 | b2 | final | best |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for kind, batch, k, bc, *axes in GRIDS:
        grid = list(itertools.product(*axes))
        lrs, gammas, b1s, b2s = (jnp.asarray([g[i] for g in grid], jnp.float32) for i in range(4))
        fn = C.make_train(rule(kind, k, bc), train, val, C.Config(batch=batch), STEPS, EVERY,
                          max(1, STEPS // 20))
        t0 = time.perf_counter()
        curves = np.asarray(fn(lrs, jnp.zeros(len(grid), jnp.int32), gammas, b1s, b2s)[0])
        print(f"{kind} batch {batch} k {k} bias correction {bc}: {time.perf_counter() - t0:.0f} s",
              flush=True)
        for (lr, gamma, b1, b2), c in zip(grid, curves, strict=True):
            g = "-" if kind == "adamw" else f"{gamma:g}"
            row = (f"| {kind} | {batch} | {'-' if kind == 'adamw' else k} | {'-' if kind == 'adamw' else bc} "
                   f"| {lr:g} | {g} | {b1:g} | {b2:g} | {c[-1]:.3f} | {c.min():.3f} |")
            print(row, flush=True)
            lines.append(row)
    print("wrote", write_section("char_lm_tuning", "\n".join(lines + [""])))


if __name__ == "__main__":
    main()
