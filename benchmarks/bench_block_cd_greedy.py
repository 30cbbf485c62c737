"""Greedy block rules of Nutini et al. in BlockCoordinateDescent (issue 20 item 7).

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_block_cd_greedy.py [--repeats 5]``.
Writes ``benchmarks/results/block_cd_greedy.md``: sweeps (iterations of
:class:`jaxopt_lab.BlockCoordinateDescent`, ``n_blocks`` block updates each) and time to
``tol`` on an 80 x 40 lasso whose column scales run from 1 to 100 (the setting where the
Lipschitz-weighted rules differ from Gauss-Southwell), for the cyclic rule, Gauss-Southwell,
GSL, GSQ and GSL with the active-set Newton phase; and the distance of each solution to
scikit-learn's ``Lasso`` (same objective, ``alpha`` rescaled by the number of rows).
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

jax.config.update("jax_enable_x64", True)

LAM = 1.0
TOL = 1e-8
RULES = (("cyclic", {}), ("greedy (Gauss-Southwell)", dict(selection="greedy")),
         ("gsl", dict(selection="gsl")), ("gsq", dict(selection="gsq")),
         ("gsl + active set", dict(selection="gsl", active_set=True)))


def _problem(seed: int = 0, m: int = 80, n: int = 40):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n)) * np.logspace(0, 2, n)[rng.permutation(n)]
    x_true = np.zeros(n)
    x_true[:5] = 3 * rng.normal(size=5)
    b = A @ x_true + 0.01 * rng.normal(size=m)
    return A, b


def _lsq(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def main(repeats: int) -> str:
    from sklearn.linear_model import Lasso

    t_start = time.perf_counter()
    A, b = _problem()
    ref = Lasso(alpha=LAM / A.shape[0], fit_intercept=False, tol=1e-12, max_iter=100000).fit(A, b).coef_
    Aj, bj = jnp.asarray(A), jnp.asarray(b)
    x0 = jnp.zeros(A.shape[1])
    rows = []
    for name, opts in RULES:
        solver = jl.BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, tol=TOL, maxiter=3000,
                                           block_fun=lambda x, lam: lam * jnp.sum(jnp.abs(x)), **opts)
        run = jax.jit(solver.run)
        t = time_call(lambda run=run: run(x0, LAM, Aj, bj), repeats)
        out = t["result"]
        diff = float(np.max(np.abs(np.asarray(out.params) - ref)))
        rows.append((name, jl.status_name(int(out.state.status)), int(out.state.iter_num), diff,
                     1e3 * t["median_s"], t["compile_s"]))
    lines = [
        "## Greedy block coordinate descent: GSL, GSQ and the active-set phase (issue 20 item 7)",
        "",
        f"`python benchmarks/bench_block_cd_greedy.py --repeats {repeats}` ({machine()}; "
        f"{time.perf_counter() - t_start:.0f} s). Lasso `0.5 ||Ax - b||^2 + {LAM:g} ||x||_1`, A 80 x 40 "
        "Gaussian with column scales 1 .. 100 (randomly placed), 5-sparse truth, float64, from 0, "
        f"`tol={TOL:g}`. A sweep is one iteration of `BlockCoordinateDescent` (n block updates for the "
        "cyclic rule; n greedy picks for the greedy rules); GSL scores `L_j ||d_j||^2`, GSQ the decrease "
        "of the block's quadratic model with the l1 term (`block_fun`); the active-set phase adds a "
        "semismooth Newton step on the identified free blocks after each sweep (Nutini, Laradji, "
        "Schmidt, arXiv:1712.08859). Reference: scikit-learn `Lasso` at tol 1e-12. Median of "
        f"{repeats} jitted runs, compile apart.",
        "",
        "| rule | status | sweeps | max abs diff to scikit-learn | ms | compile s |",
        "|---|---|---|---|---|---|",
    ]
    for name, status, it, diff, ms, comp in rows:
        lines.append(f"| {name} | {status} | {it} | {diff:.1e} | {ms:.1f} | {comp:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_section(main, "block_cd_greedy", __doc__)
