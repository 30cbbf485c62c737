"""Moré-Garbow-Hillstrom problems: every smooth jaxopt_lab solver against SciPy.

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mgh.py [--scales 1,10,100] [--solvers LBFGS,...]``.
Writes ``benchmarks/results/mgh.md``: per problem, start and solver, whether it was
solved (:func:`jaxopt_lab.problems.mgh.is_solved`), iterations and function evaluations,
with SciPy's corresponding method run with the same gradient tolerance and iteration cap.
Solvers not (yet) in ``jaxopt_lab`` are listed as absent. The harness functions are
also used by ``tests/test_mgh.py``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize as so  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from jaxopt_lab.problems import mgh  # noqa: E402

MAXITER = 2000
TOL = 1e-6  # gradient-norm tolerance given to every method

# jaxopt_lab solver -> (kind, SciPy counterpart). kind: "min" (fun), "lsq" (residual),
# "bounds" (fun with box constraints, on the bounded variants).
SOLVERS: dict[str, tuple[str, str | None]] = {
    "LBFGS": ("min", "L-BFGS-B"),
    "BFGS": ("min", "BFGS"),
    "NonlinearCG": ("min", "CG"),
    "NewtonCG": ("min", "Newton-CG"),
    "GradientDescent": ("min", None),
    "GaussNewton": ("lsq", "trf"),
    "LevenbergMarquardt": ("lsq", "lm"),
    "LBFGSB": ("bounds", "L-BFGS-B"),
}


@dataclasses.dataclass
class Record:
    """One solve: who, what, and how it ended."""

    solver: str
    problem: str
    scale: float
    solved: bool
    converged: bool  # the solver itself claimed success
    status: str
    iters: int
    nfev: int
    f: float


def available() -> tuple[list[str], list[str]]:
    """``(present, absent)`` names of :data:`SOLVERS` in ``jaxopt_lab``."""
    present = [n for n in SOLVERS if getattr(jl, n, None) is not None]
    return present, [n for n in SOLVERS if n not in present]


_FUNS: dict = {}


def _fun(problem: mgh.Problem):
    # One function object per problem, so a new start reuses the compiled solve.
    key = (problem.name, problem.lower is not None)
    if key not in _FUNS:
        _FUNS[key] = (lambda p: lambda x: p.fun(x))(problem)
    return _FUNS[key]


def _res(problem: mgh.Problem):
    key = (problem.name, "residual")
    if key not in _FUNS:
        _FUNS[key] = problem.residual
    return _FUNS[key]


def run_jaxopt_lab(name: str, problem: mgh.Problem, scale: float, maxiter: int = MAXITER) -> Record:
    """Solve ``problem`` from ``scale * x0`` with ``jaxopt_lab.<name>``.

    Args:
      name: a key of :data:`SOLVERS` present in ``jaxopt_lab``.
      problem: the problem.
      scale: start multiplier.
      maxiter: iteration cap.

    Returns:
      A :class:`Record`.
    """
    kind = SOLVERS[name][0]
    cls = getattr(jl, name)
    tol = TOL
    x0 = jnp.asarray(problem.start(scale))
    if kind == "lsq":  # these solvers see 0.5 ||r||^2, whose gradient is half of sum r^2's
        out = cls(_res(problem), tol=0.5 * tol, maxiter=maxiter).run(x0)
    elif kind == "bounds":
        bounds = (jnp.asarray(problem.lower), jnp.asarray(problem.upper))
        out = cls(fun=_fun(problem), tol=tol, maxiter=maxiter).run(x0, bounds=bounds)
    else:
        out = cls(fun=_fun(problem), tol=tol, maxiter=maxiter).run(x0)
    st = out.state
    nfev = int(getattr(st, "num_fun_eval", getattr(st, "iter_num", -1)))
    x = np.asarray(out.params)
    f = float(problem.fun(jnp.asarray(x)))
    return Record(name, problem.name, scale, mgh.is_solved(problem, x, TOL),
                  int(st.status) == jl.Status.CONVERGED, jl.status_name(st.status),
                  int(st.iter_num), nfev, f)


def run_scipy(method: str, problem: mgh.Problem, scale: float, maxiter: int = MAXITER) -> Record:
    """Solve ``problem`` with SciPy's ``method`` and the same tolerance and cap.

    Args:
      method: ``"L-BFGS-B"``, ``"BFGS"``, ``"CG"``, ``"Newton-CG"`` (``minimize``) or
        ``"trf"``, ``"lm"`` (``least_squares``).
      problem: the problem.
      scale: start multiplier.
      maxiter: iteration cap.

    Returns:
      A :class:`Record` (``solver`` is ``"scipy:<method>"``).
    """
    tol = TOL
    x0 = problem.start(scale)
    fun = jax.jit(_fun(problem))
    grad = jax.jit(jax.grad(_fun(problem)))
    f = lambda x: float(fun(x))
    g = lambda x: np.asarray(grad(x))
    with np.errstate(all="ignore"):
        if method in ("trf", "lm"):
            res = jax.jit(_res(problem))
            jac = jax.jit(jax.jacfwd(_res(problem)))
            try:
                r = so.least_squares(lambda x: np.asarray(res(x)), x0, jac=lambda x: np.asarray(jac(x)),
                                     method=method, gtol=tol, ftol=1e-15, xtol=1e-15,
                                     max_nfev=maxiter * (problem.n + 1))
                x, ok, nit, nfev = r.x, bool(r.success), int(r.njev or r.nfev), int(r.nfev)
            except (ValueError, np.linalg.LinAlgError):
                x, ok, nit, nfev = x0, False, 0, 0
        else:
            opts: dict = {"maxiter": maxiter}
            kw: dict = {}
            if method == "L-BFGS-B":
                opts.update(gtol=tol, ftol=0.0, maxfun=20 * maxiter, maxcor=10)
                if problem.lower is not None:
                    kw["bounds"] = list(zip(problem.lower, problem.upper, strict=True))
            elif method in ("BFGS", "CG"):
                opts.update(gtol=tol)
            elif method == "Newton-CG":
                hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(_fun(problem)), (x,), (v,))[1])
                kw["hessp"] = lambda x, v: np.asarray(hvp(x, v))
                opts.update(xtol=1e-12)
            r = so.minimize(f, x0, jac=g, method=method, options=opts, **kw)
            x, ok, nit, nfev = r.x, bool(r.success), int(r.nit), int(r.nfev)
    fx = float(fun(np.asarray(x))) if np.all(np.isfinite(x)) else float("nan")
    return Record(f"scipy:{method}", problem.name, scale, mgh.is_solved(problem, x, TOL),
                  ok, "success" if ok else "failure", nit, nfev, fx)


def run_all(names, problems, scales, maxiter: int = MAXITER, scipy: bool = True) -> list[Record]:
    """Every (solver, problem, scale) and, with ``scipy``, each solver's SciPy counterpart.

    Args:
      names: jaxopt_lab solver names (keys of :data:`SOLVERS`).
      problems: MGH problems.
      scales: start multipliers.
      maxiter: iteration cap.
      scipy: also run the SciPy counterparts.

    Returns:
      A list of :class:`Record`.
    """
    out = []
    for name in names:
        kind, method = SOLVERS[name]
        for p in problems:
            if (kind == "bounds") != (p.lower is not None):
                continue
            for s in scales:
                out.append(run_jaxopt_lab(name, p, s, maxiter))
                if scipy and method is not None:
                    out.append(run_scipy(method, p, s, maxiter))
    return out


def false_convergence(records) -> list[Record]:
    """jaxopt_lab records that report CONVERGED on a problem they did not solve."""
    return [r for r in records if not r.solver.startswith("scipy:") and r.converged and not r.solved]


def to_markdown(records, absent, scales, seconds: float) -> str:
    """The results section."""
    lines = ["## MGH test problems (Moré, Garbow and Hillstrom 1981) vs SciPy", "",
             f"Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mgh.py {' '.join(sys.argv[1:])}`", "",
             f"18 problems x starts {', '.join(f'{s:g}x0' for s in scales)}; bounded variants for "
             "LBFGSB. Solved: gradient norm <= 1e-6 * max(1, |f(x)|) or published f* "
             f"reached. Same gradient tolerance (1e-6) and maxiter={MAXITER} for every method. "
             f"{len(records)} solves in {seconds:.0f} s (compile included).", ""]
    if absent:
        lines += [f"Absent from jaxopt_lab when this ran: {', '.join(absent)}.", ""]
    solvers = list(dict.fromkeys(r.solver for r in records))
    lines += ["| solver | solved | claimed success | claimed but not solved |", "|---|---|---|---|"]
    for s in solvers:
        rs = [r for r in records if r.solver == s]
        lines.append(f"| {s} | {sum(r.solved for r in rs)}/{len(rs)} | {sum(r.converged for r in rs)} | "
                     f"{sum(r.converged and not r.solved for r in rs)} |")
    lines += ["", "Per problem: `solved? iterations / function evaluations` (`-` not solved).", "",
              "| problem | start | " + " | ".join(solvers) + " |",
              "|---|---|" + "---|" * len(solvers)]
    keys = list(dict.fromkeys((r.problem, r.scale) for r in records))
    index = {(r.solver, r.problem, r.scale): r for r in records}
    for prob, scale in keys:
        cells = []
        for s in solvers:
            r = index.get((s, prob, scale))
            cells.append("" if r is None else f"{'ok' if r.solved else '-'} {r.iters}/{r.nfev}")
        lines.append(f"| {prob} | {scale:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    scales = mgh.SCALES
    if "--scales" in sys.argv:
        scales = tuple(float(s) for s in sys.argv[sys.argv.index("--scales") + 1].split(","))
    present, absent = available()
    if "--solvers" in sys.argv:
        present = [n for n in sys.argv[sys.argv.index("--solvers") + 1].split(",") if n in present]
    print("running:", present, "absent:", absent, flush=True)
    t0 = time.perf_counter()
    records = run_all(present, mgh.PROBLEMS + mgh.BOUNDED, scales)
    seconds = time.perf_counter() - t0
    from benchmarks._timing import write_section

    path = write_section("mgh", to_markdown(records, absent, scales, seconds))
    print(open(path).read())
    bad = false_convergence(records)
    for r in bad:
        print("FALSE CONVERGENCE:", r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
