"""Backtracking that grows its step: iterations and answers of GradientDescent / ProximalGradient
(``stepsize <= 0``) against jaxopt 0.8.5 on l2- and l1-regularized logistic regression.

Both libraries start each search at the last accepted step divided by ``decrease_factor``.
jaxopt always does; ours only after a step whose sufficient-decrease test was decided above
the rounding of ``f`` and whose curvature predicts that the grown step passes, judges a grown
trial without rounding slack and, with acceleration, uses Scheinberg-Goldfarb-Bai momentum
and stops growing after a rejected grown trial (until a restart). Ours stops on the
rounding-free gradient-mapping norm, jaxopt on ``||x_{k+1} - y_k|| / next step``. Reported per
configuration: iterations, status, objective, ``fun`` evaluations (ours), the distance
between the two answers and each answer's true optimality error (the unit-step gradient
mapping ``||x - prox(x - grad f(x), 1)||``).

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_backtracking_growth.py`` (writes
``benchmarks/results/backtracking_growth.md``).
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxopt  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from jaxopt_lab.problems.logreg import logistic_data  # noqa: E402

OUT = pathlib.Path(__file__).parent / "results" / "backtracking_growth.md"


def logreg(l2):
    def f(w, X, y):
        z = X @ w
        return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * l2 * jnp.sum(w ** 2)
    return f


def problems():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8))
    y = (X @ rng.standard_normal(8) + rng.standard_normal(60) > 0).astype(float)
    X2, y2 = logistic_data(500, 50, seed=1, dtype=jnp.float64)
    return {"60 x 8, l2 = 1e-2": (logreg(1e-2), X, y), "500 x 50, l2 = 1e-3": (logreg(1e-3), X2, y2)}


def solve(lib, f, X, y, l1, accel, tol, dtype, maxiter=5000):
    w0 = jnp.zeros(X.shape[1], dtype)
    X, y = jnp.asarray(X, dtype), jnp.asarray(y, dtype)
    if l1 is None:
        out = lib.GradientDescent(f, tol=tol, maxiter=maxiter, acceleration=accel).run(w0, X, y)
        objective = f(out.params, X, y)
        grad = jax.grad(f)(out.params, X, y)
        opt_err = jnp.linalg.norm(grad)
    else:
        out = lib.ProximalGradient(f, lib.prox.prox_lasso, tol=tol, maxiter=maxiter,
                                   acceleration=accel).run(w0, l1, X, y)
        objective = f(out.params, X, y) + l1 * jnp.sum(jnp.abs(out.params))
        grad = jax.grad(f)(out.params, X, y)
        opt_err = jnp.linalg.norm(out.params - jl.prox.prox_lasso(out.params - grad, l1, 1.0))
    status = getattr(out.state, "status", None)
    evals = getattr(out.state, "num_fun_eval", None)
    return dict(iters=int(out.state.iter_num), params=np.asarray(out.params, np.float64),
                objective=float(objective), opt_err=float(opt_err),
                status="-" if status is None else jl.Status(int(status)).name,
                evals="-" if evals is None else int(evals))


def main() -> None:
    lines = [
        "# Backtracking that grows its step (GradientDescent / ProximalGradient, `stepsize <= 0`)",
        "",
        "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_backtracking_growth.py` "
        f"(CPU, jax {jax.__version__}, jaxopt {importlib.metadata.version('jaxopt')}). Start at 0, "
        "maxiter 5000, decrease_factor 0.5, `restart='gradient'` (ours' ProximalGradient default).",
        "",
        "`opt err`: unit-step gradient mapping of the returned point (`||grad f||` without l1), "
        "in float64. `evals`: ours' `num_fun_eval` (one value-and-gradient per iteration plus one "
        "value per trial).",
        "",
        "| problem | dtype | tol | solver | accel | ours iters | jaxopt iters | ratio | ours status | "
        "ours evals | ours objective | jaxopt objective | max abs x diff | ours opt err | jaxopt opt err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dtype, tols in ((jnp.float64, (1e-8, 1e-10)), (jnp.float32, (1e-3,))):
        for tol in tols:
            for name, (f, X, y) in problems().items():
                for l1 in (None, 1e-2):
                    for accel in (True, False):
                        a = solve(jl, f, X, y, l1, accel, tol, dtype)
                        b = solve(jaxopt, f, X, y, l1, accel, tol, dtype)
                        solver = "GradientDescent" if l1 is None else "ProximalGradient (l1 = 1e-2)"
                        dx = float(np.max(np.abs(a["params"] - b["params"])))
                        cells = [name, jnp.dtype(dtype).name, f"{tol:g}", solver, accel, a["iters"],
                                 b["iters"], f"{a['iters'] / b['iters']:.2f}", a["status"], a["evals"],
                                 f"{a['objective']:.12g}", f"{b['objective']:.12g}", f"{dx:.1e}",
                                 f"{a['opt_err']:.1e}", f"{b['opt_err']:.1e}"]
                        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
                        print(lines[-1], flush=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
