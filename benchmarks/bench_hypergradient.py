"""Hypergradient of a ridge validation loss with respect to the regularization.

``L(lam) = 0.5 ||A_val x*(lam) - b_val||^2`` with ``x*(lam)`` the ridge solution on
the training set (n=5000, d=500, float64). Closed form:
``dL/dlam = -g^T (A^T A + lam I)^{-1} x*`` with ``g = A_val^T (A_val x* - b_val)``.
Each library solves the inner problem with its L-BFGS and differentiates it
implicitly, the way its users would write it.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_hypergradient.py``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks._timing import machine, time_call, write_section  # noqa: E402


def data(n=5000, d=500, n_val=1000, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    A = rng.standard_normal((n, d)) / np.sqrt(n)
    b = A @ w + 0.1 * rng.standard_normal(n)
    A_val = rng.standard_normal((n_val, d)) / np.sqrt(n_val)
    b_val = A_val @ w + 0.1 * rng.standard_normal(n_val)
    return tuple(map(jnp.asarray, (A, b, A_val, b_val)))


def ridge(x, lam, A, b):
    r = A @ x - b
    return 0.5 * jnp.sum(r**2) + 0.5 * lam * jnp.sum(x**2)


def closed_form(lam, A, b, A_val, b_val):
    H = A.T @ A + lam * jnp.eye(A.shape[1])
    x = jnp.linalg.solve(H, A.T @ b)
    g = A_val.T @ (A_val @ x - b_val)
    return -g @ jnp.linalg.solve(H, x)


def main():
    A, b, A_val, b_val = data()
    lam = 0.05
    x0 = jnp.zeros(A.shape[1])
    exact = float(closed_form(lam, A, b, A_val, b_val))
    outer = lambda x: 0.5 * jnp.sum((A_val @ x - b_val) ** 2)
    inner_tol = 1e-10
    rows = []

    solver = jl.LBFGS(ridge, tol=inner_tol, maxiter=5000)
    ours = jax.jit(jax.grad(lambda lam: outer(solver.run(x0, lam, A, b).params)))
    rows.append(("jaxopt_lab.LBFGS, implicit (CG, default)", time_call(lambda: ours(lam))))
    fwd = jax.jit(lambda lam: jax.jvp(lambda l: outer(solver.run(x0, l, A, b).params), (lam,), (1.0,))[1])
    rows.append(("jaxopt_lab.LBFGS, implicit, forward mode (jvp)", time_call(lambda: fwd(lam))))

    import jaxopt

    jsolver = jaxopt.LBFGS(ridge, tol=inner_tol, maxiter=5000)
    theirs = jax.jit(jax.grad(lambda lam: outer(jsolver.run(x0, lam, A, b).params)))
    rows.append(("jaxopt.LBFGS, implicit (default solve)", time_call(lambda: theirs(lam))))
    jsolver_cg = jaxopt.LBFGS(ridge, tol=inner_tol, maxiter=5000,
                              implicit_diff_solve=jaxopt.linear_solve.solve_cg)
    theirs_cg = jax.jit(jax.grad(lambda lam: outer(jsolver_cg.run(x0, lam, A, b).params)))
    rows.append(("jaxopt.LBFGS, implicit (solve_cg)", time_call(lambda: theirs_cg(lam))))

    import optimistix as optx

    osolver = optx.LBFGS(rtol=1e-12, atol=1e-12)
    ofn = lambda x, lam: ridge(x, lam, A, b)
    oval = jax.jit(jax.grad(lambda lam: outer(optx.minimise(
        ofn, osolver, x0, args=lam, max_steps=5000, adjoint=optx.ImplicitAdjoint(), throw=False).value)))
    rows.append(("optimistix.LBFGS, ImplicitAdjoint", time_call(lambda: oval(lam))))

    ours_t = rows[0][1]["median_s"]
    lines = ["## Hypergradient of a ridge validation loss", "",
             "Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_hypergradient.py`. " + machine() +
             f". n=5000, d=500, float64, lambda={lam}, inner L-BFGS tolerance {inner_tol:g}; the time "
             "includes the inner solve. Closed form: "
             f"dL/dlambda = {exact:.12e}.", "",
             "| method | time (ms) | x ours | compile (s) | relative error vs closed form |",
             "|---|---|---|---|---|"]
    for label, t in rows:
        err = abs(float(t["result"]) - exact) / abs(exact)
        lines.append(f"| {label} | {1e3 * t['median_s']:.1f} | {t['median_s'] / ours_t:.2f} | "
                     f"{t['compile_s']:.2f} | {err:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("hypergradient", text)


if __name__ == "__main__":
    main()
