"""ProximalGradient (FISTA + backtracking, with and without adaptive restart) vs jaxopt and
scikit-learn on the diabetes lasso.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_proximal_gradient.py``; writes
``benchmarks/results/proximal_gradient.md``.

The two libraries stop on different error measures (jaxopt_lab: the gradient-mapping norm
``||x+ - y|| / t`` at the accepted step; jaxopt: the fixed-point residual
``||x - prox(x - grad f(x))||`` with step 1), so one ``tol`` does not mean one accuracy. The
script therefore reports (1) a profile at equal ``tol`` (iterations, objective evaluations per
iteration, time per iteration, distance to scikit-learn's solution), and (2) the issue's measure:
the time to reach scikit-learn's ``Lasso`` solution to ``1e-6`` (max abs), each solver run at
the loosest ``tol`` of a grid whose result is that close. Same process, same data, compile time
apart, medians of 7 repeats.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import importlib.metadata  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxopt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import Lasso  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import write_section  # noqa: E402

import jaxopt_lab as jl  # noqa: E402

REPEATS = 7
TOLS = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
TARGET = 1e-6
JAXOPT_VERSION = importlib.metadata.version("jaxopt")


def _median(fn):
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _data():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y


def main():
    X, y = _data()
    n, d = X.shape
    alpha = 0.01
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    f = lambda w, X, y: 0.5 / n * jnp.sum((X @ w - y) ** 2)
    calls = [0]

    def counted(w, X, y):  # counts objective evaluations (value, or value and gradient)
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return f(w, X, y)

    sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000)
    coef = sk.fit(X, y).coef_
    sk_fast = Lasso(alpha=alpha, fit_intercept=False, tol=1e-10, max_iter=100000)
    t_sk = _median(lambda: sk_fast.fit(X, y).coef_)
    sk_err = float(np.max(np.abs(sk_fast.fit(X, y).coef_ - coef)))

    def ours(restart):
        return lambda fun, tol: jl.ProximalGradient(fun, jl.prox.prox_lasso, tol=tol, maxiter=20000,
                                                    restart=restart)

    makers = {
        'jaxopt_lab.ProximalGradient(restart="none")': ours("none"),
        'jaxopt_lab.ProximalGradient(restart="gradient")': ours("gradient"),
        "jaxopt.ProximalGradient": lambda fun, tol: jaxopt.ProximalGradient(
            fun, jaxopt.prox.prox_lasso, tol=tol, maxiter=20000, jit=True),
    }
    JX = "jaxopt.ProximalGradient"
    rows = {}
    for name, make in makers.items():
        for tol in TOLS:
            run = jax.jit(make(f, tol).run)
            t0 = time.perf_counter()
            out = jax.block_until_ready(run(jnp.zeros(d), alpha, Xj, yj))
            first = time.perf_counter() - t0
            t = _median(lambda run=run: run(jnp.zeros(d), alpha, Xj, yj))
            calls[0] = 0
            jax.block_until_ready(jax.jit(make(counted, tol).run)(jnp.zeros(d), alpha, Xj, yj))
            iters = int(out.state.iter_num)
            rows[name, tol] = dict(
                t=t, compile=max(first - t, 0.0), iters=iters, evals=calls[0] / max(iters, 1),
                err=float(np.max(np.abs(np.asarray(out.params) - coef))),
            )

    # Oscillation of the iterates (FISTA is not monotone): the first iteration after which
    # the iterate stays within TARGET of scikit-learn's solution (a scan of 2000 updates).
    settle = {}
    for name, make in makers.items():
        solver = make(f, 0.0)

        def trajectory(solver=solver):
            def step(carry, _):
                x, st = solver.update(*carry, alpha, Xj, yj)
                return (x, st), jnp.max(jnp.abs(x - coef))
            init = (jnp.zeros(d), solver.init_state(jnp.zeros(d), alpha, Xj, yj))
            return jax.lax.scan(step, init, None, length=2000)[1]

        errs = np.asarray(jax.jit(trajectory)())
        above = np.nonzero(errs > TARGET)[0]
        settle[name] = int(above[-1]) + 2 if above.size else 1

    lines = [
        "## ProximalGradient (FISTA + backtracking) vs jaxopt and scikit-learn: lasso, diabetes "
        f"({n} x {d}, alpha={alpha})",
        "",
        "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_proximal_gradient.py` "
        f"(CPU, float64, jax {jax.__version__}, jaxopt {JAXOPT_VERSION}; medians of {REPEATS}, "
        "compile apart). Error = max abs distance to scikit-learn's `Lasso` (coordinate descent, "
        "tol=1e-14). Evaluations count calls of the objective (value, or value and gradient).",
        "",
        "### Time to reach scikit-learn's solution",
        "",
        "Each solver at the loosest `tol` of "
        f"{', '.join(f'{t:g}' for t in TOLS)} whose result is within the target (max abs) of "
        f"scikit-learn's solution; {TARGET:g} is the issue's target, 1e-07 a stricter one.",
        "",
        "| target | solver | tol | median time (s) | ratio to jaxopt | iterations | error | compile (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target in (TARGET, 1e-7):
        best = {}
        for name in makers:
            ok = [tol for tol in TOLS if rows[name, tol]["err"] <= target]
            best[name] = ok[0] if ok else None
        ref = rows[JX, best[JX]]["t"] if best[JX] is not None else float("nan")
        for name in makers:
            tol = best[name]
            if tol is None:
                lines.append(f"| {target:g} | {name} | none | - | - | - | - | - |")
                continue
            r = rows[name, tol]
            lines.append(f"| {target:g} | {name} | {tol:g} | {r['t']:.5f} | "
                         f"{r['t'] / ref:.2f} | {r['iters']} | {r['err']:.1e} | {r['compile']:.2f} |")
        lines.append(f"| {target:g} | sklearn Lasso (tol=1e-10) | - | {t_sk:.5f} | {t_sk / ref:.2f} | - | "
                     f"{sk_err:.1e} | - |")
    lines += [
        "",
        "### Profile at equal `tol` (the two libraries measure the error differently)",
        "",
        "| tol | solver | median time (s) | iterations | evaluations / iteration | time / iteration (us) "
        "| error |",
        "|---|---|---|---|---|---|---|",
    ]
    for tol in TOLS:
        for name in makers:
            r = rows[name, tol]
            lines.append(f"| {tol:g} | {name} | {r['t']:.5f} | {r['iters']} | {r['evals']:.2f} | "
                         f"{r['t'] / max(r['iters'], 1) * 1e6:.1f} | {r['err']:.1e} |")
    lines += [
        "",
        f"Iterations after which the iterate stays within {TARGET:g} of scikit-learn's solution "
        "(FISTA's iterates oscillate): " + ", ".join(f"{k} {v}" for k, v in settle.items()) + ". "
        "jaxopt lets the step grow (each iteration first tries the previous step / decrease_factor); "
        "jaxopt_lab grows it the same way only after a step whose sufficient-decrease test was decided "
        "above f's rounding and whose curvature predicts the grown step passes, with "
        "Scheinberg-Goldfarb-Bai momentum; `restart=\"gradient\"` "
        "(O'Donoghue and Candes' adaptive restart, the default) resets the momentum when "
        "<y - x+, x+ - x> > 0.",
        "",
    ]
    text = "\n".join(lines)
    write_section("proximal_gradient", text)
    print(text)


if __name__ == "__main__":
    main()
