"""Static M-FAC: precomputation once, then O(dm) inverse-Hessian-vector products and O(m) entries.

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mfac_static.py [--repeats 5]``.
Writes ``benchmarks/results/mfac_static.md``: for ``m`` Gaussian gradients of dimension
``d`` (float32), the median time of the precomputation (:func:`jaxopt_lab.mfac_static`),
of one product ``F^{-1} x`` with the precomputed inverse, of one product by
:func:`jaxopt_lab.mfac_ihvp` (Woodbury with an ``m x m`` Cholesky factorization per call,
``O(dm + m^3)``), of one entry ``[F^{-1}]_kl`` (``O(m)``) and, where ``d`` is small, of a
dense solve with the explicit ``d x d`` Fisher; and the largest relative difference of the
products.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks._timing import machine, run_section, time_call  # noqa: E402

SIZES = ((2_000, 16), (100_000, 16), (100_000, 64), (1_000_000, 32))
DAMPING = 1e-3


def measure(d: int, m: int, repeats: int) -> tuple:
    """Timings of one size: ``(d, m, precompute, static IHVP, mfac_ihvp, entry, dense, rel. diff)``."""
    rng = np.random.default_rng(0)
    G = jnp.asarray(rng.standard_normal((m, d)), jnp.float32)
    x = jnp.asarray(rng.standard_normal(d), jnp.float32)
    pre = time_call(lambda: jax.jit(jl.mfac_static)(G, DAMPING), repeats)
    mf = pre["result"]
    apply = jax.jit(lambda mf, x: mf(x))
    t_apply = time_call(lambda: apply(mf, x), repeats)
    woodbury = jax.jit(jl.mfac_ihvp)
    t_wood = time_call(lambda: woodbury(G, x, DAMPING), repeats)
    entry = jax.jit(lambda mf, k, l: mf.element(k, l))
    t_entry = time_call(lambda: entry(mf, 3, d - 1), repeats)
    rel = float(jnp.linalg.norm(t_apply["result"] - t_wood["result"]) / jnp.linalg.norm(t_wood["result"]))
    dense_ms = "-"
    if d <= 5_000:
        F = DAMPING * jnp.eye(d, dtype=jnp.float32) + G.T @ G / m
        solve = jax.jit(jnp.linalg.solve)
        dense_ms = f"{1e3 * time_call(lambda: solve(F, x), repeats)['median_s']:.1f}"
    return (d, m, pre["median_s"], t_apply["median_s"], t_wood["median_s"], t_entry["median_s"], dense_ms,
            rel)


def main(repeats: int) -> str:
    t_start = time.perf_counter()
    rows = []
    for d, m in SIZES:
        rows.append(measure(d, m, repeats))
    lines = [
        "## Static M-FAC: per-call costs (issue 20 item 4)",
        "",
        f"`python benchmarks/bench_mfac_static.py --repeats {repeats}` ({machine()}; "
        f"{time.perf_counter() - t_start:.0f} s). m Gaussian gradients of dimension d, float32, damping "
        f"{DAMPING:g}; jitted calls, median of {repeats}, compile time apart. Precompute: Gram matrix, "
        "coefficient recursion and `V = B G` (O(d m^2 + m^3), once). Static IHVP: `F^{-1} x` from the "
        "precomputed `V` (O(dm)). `mfac_ihvp`: Woodbury with an m x m Cholesky per call (O(dm + m^3)). "
        "Entry: one `[F^{-1}]_kl` (O(m)). Dense: `jnp.linalg.solve` with the explicit d x d Fisher.",
        "",
        "| d | m | precompute ms | static IHVP ms | mfac_ihvp ms | entry us | dense solve ms | "
        "rel. diff static vs Woodbury |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d, m, tp, ta, tw, te, dense, rel in rows:
        lines.append(f"| {d} | {m} | {1e3 * tp:.1f} | {1e3 * ta:.2f} | {1e3 * tw:.2f} | {1e6 * te:.0f} | "
                     f"{dense} | {rel:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_section(main, "mfac_static", __doc__)
