"""Inner solves shared by the hypergradient methods and the bilevel solvers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import Status
from jaxopt_lab.solvers.quasi_newton.lbfgs import LBFGS

INNER_SOLVERS = ("lbfgs", "gd")


def gd_steps(grad_fn: Callable, y: Any, stepsize, num_steps: int) -> Any:
    """``num_steps`` fixed gradient steps ``y <- y - stepsize * grad_fn(y)``."""
    body = lambda _, yy: tu.tree_add_scalar_mul(yy, -stepsize, grad_fn(yy))
    return jax.lax.fori_loop(0, num_steps, body, y)


def gd_until(grad_fn: Callable, y: Any, stepsize, tol, maxiter: int):
    """Gradient steps until ``||grad|| <= tol`` or ``maxiter`` steps.

    Returns:
      ``(y, residual, iterations, status)``.
    """

    def cond(c):
        _, g, k = c
        res = tu.tree_l2_norm(g)
        return (res > tol) & (k < maxiter) & jnp.isfinite(res)

    def body(c):
        yy, g, k = c
        yy = tu.tree_add_scalar_mul(yy, -stepsize, g)
        return yy, grad_fn(yy), k + 1

    y, g, k = jax.lax.while_loop(cond, body, (y, grad_fn(y), jnp.asarray(0, jnp.int32)))
    res = tu.tree_l2_norm(g)
    status = jnp.where(
        ~jnp.isfinite(res), Status.NONFINITE,
        jnp.where(res <= tol, Status.CONVERGED, Status.MAX_ITER),
    ).astype(jnp.int32)
    return y, res, k, status


def precision_tols(problem, x, y0, data) -> tuple[jax.Array, jax.Array]:
    """Inner and warning tolerances derived from the precision of the inner gradient.

    With ``eps`` the machine epsilon of ``grad_y G`` (float32: 1.2e-7, float64:
    2.2e-16) and ``scale = max(1, ||grad_y G(x, y0)||)`` (no derivative flows
    through it), the inner tolerance is ``eps**(2/3) * scale`` and the warning
    threshold ``sqrt(eps) * scale``.

    Why: the gradient of ``G`` is computed with a rounding error of order
    ``eps`` times the size of its terms, which ``scale`` measures (at a cold start
    ``grad_y G(x, y0)`` is made of those terms), so no solver can promise a
    residual much below ``eps * scale``. ``eps**(2/3)`` leaves a margin of
    ``eps**(-1/3)`` above that floor (about 200 in float32, 1.6e5 in float64)
    while the inner solution, hence the hypergradient, keeps about two thirds of
    the dtype's digits (float32: 2.4e-5, float64: 3.7e-11, close to the former
    fixed 1e-10). The warning threshold flags residuals that lost more than half
    of the digits.

    Args:
      problem: the bilevel problem.
      x, y0: outer variables and inner starting point.
      data: problem data.

    Returns:
      ``(inner_tol, warn_tol)``, scalars of the gradient's dtype.
    """
    g0 = jax.lax.stop_gradient(tu.tree_l2_norm(problem.inner_grad(x, y0, data)))
    eps = jnp.finfo(g0.dtype).eps
    scale = jnp.where(jnp.isfinite(g0), jnp.maximum(g0, 1.0), 1.0)
    return (eps ** (2.0 / 3.0) * scale).astype(g0.dtype), (jnp.sqrt(eps) * scale).astype(g0.dtype)


def solve_inner(problem, x, y0, data, solver: str = "lbfgs", tol=None, maxiter: int = 500,
                stepsize=None, sigma=None):
    """Minimize ``G(x, .)`` (or ``sigma F + G`` when ``sigma`` is given) from ``y0``.

    ``tol=None`` is the first of :func:`precision_tols`.

    Returns:
      ``(y, residual, iterations, status)`` with ``residual = ||grad_y||``.
    """
    if tol is None:
        tol = precision_tols(problem, x, y0, data)[0]
    if sigma is None:
        fun, extra = problem.inner_objective, (x, data)
    else:
        fun, extra = problem.penalized_inner, (x, data, sigma)
    grad_fn = lambda yy: jax.grad(fun)(yy, *extra)
    if solver == "gd":
        if stepsize is None:
            stepsize = 1.0 / estimate_inner_lipschitz(problem, x, y0, data, sigma=sigma)
        return gd_until(grad_fn, y0, stepsize, tol, maxiter)
    out = LBFGS(fun=fun, tol=tol, maxiter=maxiter, implicit_diff=False, unroll=False).run(y0, *extra)
    res = tu.tree_l2_norm(grad_fn(out.params))
    return out.params, res, out.state.iter_num.astype(jnp.int32), out.state.status


def estimate_inner_lipschitz(problem, x, y, data, sigma=None, iters: int = 30) -> jax.Array:
    """Largest eigenvalue of ``grad^2_yy G`` (or of ``sigma F + G``) by power iteration."""
    if sigma is None:
        hvp = lambda v: problem.inner_hvp(x, y, data, v)
    else:
        g = lambda yy: jax.grad(problem.penalized_inner)(yy, x, data, sigma)
        hvp = lambda v: jax.jvp(g, (y,), (v,))[1]
    # A fixed pseudo-random start: a constant vector can lie in the Hessian's null space
    # (e.g. softmax logits shifted by a constant).
    leaves, treedef = jax.tree_util.tree_flatten(y)
    keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
    v0 = treedef.unflatten([jax.random.normal(k, jnp.shape(a), jnp.asarray(a).dtype)
                             for k, a in zip(keys, leaves, strict=True)])
    v0 = tu.tree_scalar_mul(1.0 / tu.tree_l2_norm(v0), v0)

    def body(_, v):
        w = hvp(v)
        return tu.tree_scalar_mul(1.0 / jnp.maximum(tu.tree_l2_norm(w), 1e-30), w)

    v = jax.lax.fori_loop(0, iters, body, v0)
    # Rayleigh quotient, with a 10% margin for the power iteration's underestimate.
    return 1.1 * jnp.maximum(tu.tree_vdot(v, hvp(v)), 1e-12)
