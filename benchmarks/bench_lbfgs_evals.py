"""L-BFGS evaluations per iteration and iterations: jaxopt_lab vs jaxopt and SciPy, one process.

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lbfgs_evals.py [--quick]
[--xla-small-loops]``. Writes ``benchmarks/results/lbfgs_evals.md`` (with
``--xla-small-loops``, where every solver runs with XLA:CPU's small-while-loop kernels
raised to 1 MB: ``lbfgs_evals_xla_small_loops.md``): per problem (noisy logistic
regression n=20000 d=200, breast cancer, the 18 MGH problems at their standard start),
iterations and value-and-gradient evaluations to ``||g||_2 <= 1e-6`` for
``jaxopt_lab.LBFGS`` (strong-Wolfe zoom and Moré-Thuente searches), ``jaxopt.LBFGS`` and
SciPy's L-BFGS-B (stopped by a callback at the same gradient norm, its own test being an
inf-norm), and median wall times on every problem, where ``optax.lbfgs`` (in a jitted
while loop stopped at the same gradient norm) and ``optimistix.LBFGS`` (its own Cauchy
test on f and x, ``rtol = atol = 1e-10``; its final gradient norm decides "reached") are timed
too, with jaxopt_lab's time over each anchor's. The solvers of a problem are timed
round-robin (load drift hits all alike): medians of 11 on the logistic regressions, of
31 on the MGH problems. ``--quick``: the logistic problems only. About 2 minutes on 2
CPU cores.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# --xla-small-loops: every solver (all share the process) runs with XLA:CPU compiling the while
# loops that touch at most 1 MB into single kernels (the default limit is about 1 kB).
SMALL_LOOPS_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000"
SMALL_LOOPS = "--xla-small-loops" in sys.argv
if SMALL_LOOPS:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + SMALL_LOOPS_FLAG).strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy.optimize as so  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks._timing import machine, write_section  # noqa: E402
from benchmarks.bench_lbfgs import breast_cancer, interleaved, logistic, synthetic  # noqa: E402
from jaxopt_lab.problems import mgh  # noqa: E402

TOL = 1e-6
MAXITER = 3000


# Every jitted runner returns three arrays (the solution, its counts, a convergence measure):
# a jitted call pays about 1.5 us on the host per output array, so returning a whole solver
# state (16 arrays) where another runner returns three would time the outputs, not the solver.


def _counts(out):
    return out.params, jnp.stack([out.state.iter_num, out.state.num_fun_eval])


def _ours(fun, x0, linesearch):
    solver = jl.LBFGS(fun, tol=TOL, maxiter=MAXITER, linesearch=linesearch)
    run = jax.jit(lambda w0: (lambda out: (*_counts(out), out.state.status))(solver.run(w0)))
    return run, lambda out: (int(out[1][0]), int(out[1][1]), int(out[2]) == jl.Status.CONVERGED)


def _jaxopt(fun, x0):
    import jaxopt

    solver = jaxopt.LBFGS(fun, tol=TOL, maxiter=MAXITER)
    run = jax.jit(lambda w0: (lambda out: (*_counts(out), out.state.error))(solver.run(w0)))
    return run, lambda out: (int(out[1][0]), int(out[1][1]), float(out[2]) <= TOL)


def _scipy(fun, x0):
    vg = jax.jit(jax.value_and_grad(fun))

    def run(x):
        seen = {"nfev": 0, "g": None, "nit": 0}

        def f(w):
            seen["nfev"] += 1
            v, g = vg(jnp.asarray(w))
            seen["g"] = np.asarray(g)
            return float(v), seen["g"]

        def callback(intermediate_result):
            seen["nit"] += 1
            if np.linalg.norm(seen["g"]) <= TOL:
                raise StopIteration

        so.minimize(f, np.asarray(x), jac=True, method="L-BFGS-B", callback=callback,
                    options=dict(maxiter=MAXITER, gtol=0.0, ftol=0.0, maxcor=10, maxfun=20 * MAXITER))
        return seen["nit"], seen["nfev"], bool(np.linalg.norm(seen["g"]) <= TOL)

    return run, lambda out: out


def _optax(fun, x0):
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    @jax.jit
    def run(w0):
        def step(carry):
            w, state, k = carry
            value, grad = value_and_grad(w, state=state)
            updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=fun)
            return optax.apply_updates(w, updates), state, k + 1

        def cond(carry):
            _, state, k = carry
            grad = optax.tree_utils.tree_get(state, "grad")
            return (k == 0) | ((k < MAXITER) & (optax.tree_utils.tree_norm(grad) >= TOL))

        w, state, k = jax.lax.while_loop(cond, step, (w0, opt.init(w0), 0))
        return w, k, optax.tree_utils.tree_norm(jax.grad(fun)(w))

    # optax counts no evaluations: iterations only.
    return run, lambda out: (int(out[1]), None, float(out[2]) <= TOL)


def _optimistix(fun, x0):
    import optimistix as optx

    solver = optx.LBFGS(rtol=1e-10, atol=1e-10)

    @jax.jit
    def run(w0):
        sol = optx.minimise(lambda w, _: fun(w), solver, w0, max_steps=MAXITER, throw=False)
        return sol.value, sol.stats["num_steps"], jnp.linalg.norm(jax.grad(fun)(sol.value))

    # Its own stopping test; "reached" when its final gradient norm is within 10x ours.
    return run, lambda out: (int(out[1]), None, float(out[2]) <= 10 * TOL)


SOLVERS = {
    "LBFGS zoom": lambda f, x0: _ours(f, x0, "zoom"),
    "LBFGS more-thuente": lambda f, x0: _ours(f, x0, "more-thuente"),
    "jaxopt.LBFGS": _jaxopt,
    "scipy L-BFGS-B": _scipy,
}
# Timed only (no evaluation counts of their own).
TIMED_ONLY = {"optax.lbfgs": _optax, "optimistix.LBFGS": _optimistix}
OURS = "LBFGS zoom"


def problems(quick: bool):
    """``(name, fun, x0, repeats)`` of every problem (timed repeats per solver)."""
    X, y, lam = synthetic()
    fun = lambda w, X=X, y=y, lam=lam: logistic(w, X, y, lam)
    yield "logistic n=20000 d=200", fun, jnp.zeros(200), 11
    X, y, lam = breast_cancer()
    fun = lambda w, X=X, y=y, lam=lam: logistic(w, X, y, lam)
    yield "breast cancer", fun, jnp.zeros(X.shape[1]), 11
    if not quick:
        for p in mgh.PROBLEMS:
            yield p.name, (lambda q: lambda x: q.fun(x))(p), jnp.asarray(p.start(1.0)), 31


def main() -> int:
    quick = "--quick" in sys.argv
    rows, ratios = [], {name: [] for name in SOLVERS}
    for pname, fun, x0, repeats in problems(quick):
        made = {sname: make(fun, x0) for sname, make in (SOLVERS | TIMED_ONLY).items()}
        timed = interleaved({k: (lambda run=run, x0=x0: run(x0)) for k, (run, _) in made.items()}, repeats)
        cells = {}
        for sname, (_, read) in made.items():
            iters, nfev, ok = read(timed[sname]["result"])
            cells[sname] = (iters, nfev, ok, 1e3 * timed[sname]["median_s"])
        ref = cells["scipy L-BFGS-B"]
        for sname, (iters, nfev, ok, _) in cells.items():
            if sname in SOLVERS and ok and ref[2] and ref[0] > 0:
                ratios[sname].append((iters / ref[0], (nfev - 1) / max(iters, 1)))
        rows.append((pname, cells))
        print(pname, cells, flush=True)

    names = list(SOLVERS) + [k for k in TIMED_ONLY if any(k in c for _, c in rows)]
    lines = ["## L-BFGS: evaluations per iteration and iterations vs jaxopt and SciPy", "",
             "Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lbfgs_evals.py"
             f"{''.join(' ' + a for a in sys.argv[1:])}`. "
             f"{machine()}. float64, stop at `||g||_2 <= {TOL:g}` for every solver (SciPy through a "
             "callback), memory 10. Cells: `iterations / value-and-gradient evaluations (evals per "
             "iteration)`, `-` when the solver did not reach the tolerance; time = median of 11 (logistic) "
             "or 31 (MGH) round-robin calls after a warm-up (compile excluded), each jitted runner "
             "returning three arrays (solution, counts, convergence measure). optax and optimistix "
             "report no evaluation counts (`?`); optimistix stops on its own test (its final "
             f"gradient norm within {10 * TOL:g} counts as reached)."
             + (f" All solvers with `XLA_FLAGS={SMALL_LOOPS_FLAG}`." if SMALL_LOOPS else ""), "",
             "| problem | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for pname, cells in rows:
        out = []
        for s in names:
            if s not in cells:
                out.append("")
                continue
            iters, nfev, ok, ms = cells[s]
            if nfev is None:
                text = f"{iters}/?" if ok else f"- {iters}/?"
            else:
                text = f"{iters}/{nfev} ({(nfev - 1) / max(iters, 1):.2f})" if ok else f"- {iters}/{nfev}"
            out.append(text + f", {ms:.2f} ms")
        lines.append(f"| {pname} | " + " | ".join(out) + " |")
    lines += ["", "| solver | problems solved (with SciPy) | geo-mean iterations / SciPy's | "
              "max iterations / SciPy's | mean evals per iteration |", "|---|---|---|---|---|"]
    for s in names:
        r = ratios.get(s)
        if r:
            it = np.array([a for a, _ in r])
            ev = np.array([b for _, b in r])
            lines.append(f"| {s} | {len(r)} | {np.exp(np.mean(np.log(it))):.2f} | {it.max():.2f} | "
                         f"{ev.mean():.2f} |")
    lines += ["", f"Time of jaxopt_lab ({OURS}) over each other solver's (below 1: jaxopt_lab is faster; "
              "`-`: it did not reach the tolerance); best anchor: the fastest of jaxopt, SciPy, optax "
              "and optimistix:", "",
              "| problem | " + " | ".join(n for n in names if n != OURS) + " | vs best anchor |",
              "|---|" + "---|" * len(names)]
    vs_best = {}
    for pname, cells in rows:
        _, _, ours_ok, ours_ms = cells[OURS]
        row, best = [], None
        for s in names:
            if s == OURS:
                continue
            _, _, ok, ms = cells.get(s, (None, None, False, None))
            row.append(f"{ours_ms / ms:.2f}" if ok and ms else "-")
            if ok and ms and not s.startswith("LBFGS ") and (best is None or ms < best[0]):
                best = (ms, s)
        last = f"**{ours_ms / best[0]:.2f}** ({best[1]})" if best and ours_ok else "-"
        if best and ours_ok:
            vs_best[pname] = ours_ms / best[0]
        lines.append(f"| {pname} | " + " | ".join(row) + f" | {last} |")
    mgh_names = {p.name for p in mgh.PROBLEMS}
    mgh_ratios = np.array([r for p, r in vs_best.items() if p in mgh_names])
    if mgh_ratios.size:
        lines += ["", f"MGH problems ({mgh_ratios.size} reached by jaxopt_lab and an anchor): "
                  "jaxopt_lab's time "
                  f"over the best anchor's, geo-mean **{np.exp(np.mean(np.log(mgh_ratios))):.2f}x**, median "
                  f"{np.median(mgh_ratios):.2f}x, max {mgh_ratios.max():.2f}x; at most 0.9x on "
                  f"{int(np.sum(mgh_ratios <= 0.9))} of them."]
    text = "\n".join(lines)
    print(text)
    write_section("lbfgs_evals_xla_small_loops" if SMALL_LOOPS else "lbfgs_evals", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
