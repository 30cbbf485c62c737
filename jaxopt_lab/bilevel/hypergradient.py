"""Hypergradients of ``phi(x) = F(x, y*(x))`` with diagnostics.

Methods:

* ``"implicit"``: implicit function theorem. With ``H = grad^2_yy G`` at the inner
  solution, ``grad phi = grad_x F - grad^2_xy G v`` where ``H v = grad_y F`` (the
  adjoint system), solved by CG, GMRES or a k-term Neumann series, warm-started and
  optionally preconditioned. ``mode="forward"`` instead differentiates the inner
  solve in forward mode (``jax.jacfwd`` through the core's implicit differentiation).
* ``"unrolled"``: reverse mode through ``k`` gradient steps on ``G`` (a ``lax.scan``).
* ``"truncated"``: the same, back-propagating only through the last ``k`` steps.
* ``"penalty"``: fully first-order value-function penalty,
  ``grad_x F(x, y_s) + (grad_x G(x, y_s) - grad_x G(x, z)) / sigma`` with
  ``y_s = argmin sigma F + G`` and ``z = argmin G``; its bias is ``O(sigma)``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.bilevel import _inner
from jaxopt_lab.bilevel.problem import BilevelProblem
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive
from jaxopt_lab.core.solver import ById, is_dynamic
from jaxopt_lab.core.types import Status
from jaxopt_lab.linalg import linear_solve as ls

PyTree = Any
METHODS = ("implicit", "unrolled", "truncated", "penalty")
ADJOINT_SOLVERS = ("cg", "gmres", "neumann")
_DEFAULTS = dict(
    inner_solver="lbfgs", inner_tol=None, inner_maxiter=500, inner_stepsize=None,
    adjoint_solver="cg", adjoint_tol=None, adjoint_maxiter=None, adjoint_init=None, M=None,
    neumann_steps=50, neumann_stepsize=None, mode="reverse", warn_tol=None,
    steps=100, truncate=10, sigma=1e-3,
)


class HypergradDiagnostics(NamedTuple):
    """What a hypergradient computation reports.

    Attributes:
      inner_solution: the inner iterate the hypergradient was taken at (reuse it as
        the next warm start).
      inner_residual: ``||grad_y G||`` there.
      inner_iterations: inner iterations used.
      inner_status: a :class:`jaxopt_lab.Status` code of the inner solve.
      adjoint: the adjoint ``v ~ H^{-1} grad_y F`` (warm start for the next solve;
        for ``"penalty"`` its first-order estimate ``(z - y_sigma) / sigma``).
      adjoint_residual: ``||H v - grad_y F||`` (for ``"penalty"``: the residual of
        the penalized inner problem; 0 where there is no adjoint).
      adjoint_iterations: adjoint iterations (-1 when the solver does not report it).
      outer_value: ``F(x, y)`` at the inner iterate.
      warning: True when the inner or adjoint solve missed its tolerance (residual
        above ``warn_tol``) or the hypergradient is not finite.
    """

    inner_solution: Any
    inner_residual: jax.Array
    inner_iterations: jax.Array
    inner_status: jax.Array
    adjoint: Any
    adjoint_residual: jax.Array
    adjoint_iterations: jax.Array
    outer_value: jax.Array
    warning: jax.Array


def adjoint_solve(problem: BilevelProblem, x, y, data, rhs, solver: str = "cg", tol=None,
                  maxiter: int | None = None, init=None, M=None, neumann_steps: int = 50,
                  neumann_stepsize=None):
    """Solve ``grad^2_yy G(x, y) v = rhs``.

    Args:
      problem: the bilevel problem.
      x, y: where the Hessian is taken.
      data: problem data.
      rhs: right-hand side (a pytree like ``y``).
      solver: ``"cg"``, ``"gmres"`` or ``"neumann"``.
      tol: relative residual tolerance (CG/GMRES); ``None``: the precision of
        ``rhs`` (:func:`jaxopt_lab.linalg.linear_solve.default_tol`: 1e-12 in float64,
        ``10 * eps`` in float32).
      maxiter: iteration cap (CG/GMRES).
      init: warm start.
      M: preconditioner ``v -> P^{-1} v`` (e.g. an inverse Hessian-diagonal estimate).
      neumann_steps: number of Neumann terms ``k``.
      neumann_stepsize: ``alpha`` in ``v = alpha sum_j (I - alpha H)^j rhs`` (default
        ``1 / L`` from a power iteration).

    Returns:
      ``(v, LinearSolveInfo)``.

    References:
      Lorraine, Vicol and Duvenaud, "Optimizing Millions of Hyperparameters by
      Implicit Differentiation", 2020 (arXiv:1911.02590) for the Neumann series.
    """
    matvec = lambda v: problem.inner_hvp(x, y, data, v)
    if solver == "cg":
        return ls.solve_cg(matvec, rhs, init=init, tol=tol, maxiter=maxiter, M=M, return_info=True)
    if solver == "gmres":
        return ls.solve_gmres(matvec, rhs, init=init, tol=tol, maxiter=maxiter, M=M, return_info=True)
    alpha = neumann_stepsize
    if alpha is None:
        alpha = 1.0 / _inner.estimate_inner_lipschitz(problem, x, y, data)
    pre = (lambda v: v) if M is None else M

    def body(_, c):
        p, acc = c
        p = tu.tree_sub(p, tu.tree_scalar_mul(alpha, pre(matvec(p))))
        return p, tu.tree_add(acc, p)

    rhs_p = pre(rhs)
    _, acc = jax.lax.fori_loop(0, neumann_steps, body, (rhs_p, rhs_p))
    v = tu.tree_scalar_mul(alpha, acc)
    res = tu.tree_l2_norm(tu.tree_sub(rhs, matvec(v)))
    return v, ls.LinearSolveInfo(res, jnp.asarray(neumann_steps, jnp.int32))


def hyperobjective(problem: BilevelProblem, x, y0, data, inner_tol=None, inner_maxiter: int = 500,
                   implicit_diff_solve=None) -> jax.Array:
    """``phi(x) = F(x, y*(x))``, differentiable in forward and reverse mode.

    The inner solve is an L-BFGS run whose derivative comes from the implicit
    function theorem (the core's ``custom_root``), so ``jax.grad``, ``jax.jacfwd``
    and ``jax.hessian`` of this function all work.

    Args:
      problem: the bilevel problem.
      x: outer variables.
      y0: inner starting point (gets no derivative).
      data: problem data.
      inner_tol, inner_maxiter: inner L-BFGS tolerance and cap. ``inner_tol=None``
        derives the tolerance from the dtype: ``eps**(2/3) * max(1, ||grad_y G(x, y0)||)``
        (float32: 2.4e-5, float64: 3.7e-11 times the scale), reachable in that
        precision with two thirds of its digits kept (see ``hypergradient``).
      implicit_diff_solve: linear solver of the implicit derivatives (default: CG
        to the precision of the dtype).

    Returns:
      The scalar ``F(x, y*(x), data)``.

    References:
      Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
      (arXiv:2105.15183).
    """
    if inner_tol is None:
        inner_tol = _inner.precision_tols(problem, x, y0, data)[0]
    solver = _lbfgs(problem.inner_objective, inner_tol, inner_maxiter, implicit_diff_solve)
    y = solver.run(y0, x, data).params
    return problem.outer_fun(x, y, data)


def _lbfgs(fun, tol, maxiter, solve):
    from jaxopt_lab.solvers.quasi_newton.lbfgs import LBFGS

    return LBFGS(fun=fun, tol=tol, maxiter=maxiter, implicit_diff_solve=solve)


def _check_options(method, options):
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown hypergradient option(s): {sorted(unknown)}.")
    opts = {**_DEFAULTS, **options}
    if opts["inner_solver"] not in _inner.INNER_SOLVERS:
        raise ValueError(f"`inner_solver` must be one of {_inner.INNER_SOLVERS}, "
                         f"got {opts['inner_solver']!r}.")
    if opts["adjoint_solver"] not in ADJOINT_SOLVERS:
        raise ValueError(f"`adjoint_solver` must be one of {ADJOINT_SOLVERS}, "
                         f"got {opts['adjoint_solver']!r}.")
    if opts["mode"] not in ("reverse", "forward"):
        raise ValueError(f"`mode` must be 'reverse' or 'forward', got {opts['mode']!r}.")
    for name in ("sigma", "inner_tol", "adjoint_tol", "inner_stepsize", "neumann_stepsize", "warn_tol"):
        if opts[name] is not None:
            check_positive(opts[name], name)
    for name in ("inner_maxiter", "neumann_steps", "steps", "truncate"):
        check_int(opts[name], name, minimum=1)
    if opts["truncate"] > opts["steps"]:
        raise ValueError(f"`truncate` ({opts['truncate']}) must be <= `steps` ({opts['steps']}).")
    if opts["M"] is not None:
        check_callable(opts["M"], "M")
    return opts


def hypergradient(problem: BilevelProblem, x: PyTree, y0: PyTree, data: Any = None,
                  method: str = "implicit", **options) -> tuple[PyTree, HypergradDiagnostics]:
    """Hypergradient of ``phi(x) = F(x, y*(x))`` and its diagnostics.

    Args:
      problem: a :class:`BilevelProblem`.
      x: outer variables (pytree).
      y0: inner starting point / warm start (pytree).
      data: passed to the objectives.
      method: ``"implicit"``, ``"unrolled"``, ``"truncated"`` or ``"penalty"``.
      **options: ``inner_solver`` (``"lbfgs"`` or ``"gd"``), ``inner_tol``,
        ``inner_maxiter``, ``inner_stepsize`` (gradient-step size; default ``1/L``
        by power iteration); for ``"implicit"``: ``adjoint_solver`` (``"cg"``,
        ``"gmres"``, ``"neumann"``), ``adjoint_tol``, ``adjoint_maxiter``,
        ``adjoint_init`` (warm start), ``M`` (preconditioner, approximating
        ``H^{-1}``), ``neumann_steps``, ``neumann_stepsize``, ``mode``
        (``"reverse"`` adjoint or ``"forward"`` JVPs); for ``"unrolled"``/
        ``"truncated"``: ``steps`` (k), ``truncate`` (steps back-propagated);
        for ``"penalty"``: ``sigma`` (> 0); ``warn_tol`` (residual above which
        ``diagnostics.warning`` is set).

        The tolerances default to ``None``, meaning values derived from the
        precision ``eps`` of the inner gradient's dtype and the size ``scale =
        max(1, ||grad_y G(x, y0)||)`` of its terms: ``inner_tol = eps**(2/3) *
        scale`` (float32: 2.4e-5, float64: 3.7e-11 times the scale; for
        ``"penalty"``, whose difference quotient divides the inner errors by
        ``sigma``, ``max(min(sigma, 1) * inner_tol, 30 eps scale)``),
        ``warn_tol = sqrt(eps) * scale`` and, for CG/GMRES, the relative
        ``adjoint_tol`` of :func:`jaxopt_lab.linalg.linear_solve.default_tol` (1e-12 in
        float64, ``10 * eps`` below). Rounding puts a floor of order
        ``eps * scale`` under any computed gradient norm; ``eps**(2/3)`` stays a
        factor ``eps**(-1/3)`` above it (about 200 in float32), so the inner solve
        can report ``CONVERGED`` in float32 too, while keeping two thirds of the
        digits (in float64 this is at least as tight as the former fixed 1e-10).

    Returns:
      ``(hypergrad, diagnostics)``: a pytree like ``x`` and a
      :class:`HypergradDiagnostics`.

    References:
      Pedregosa, "Hyperparameter optimization with approximate gradient", 2016
      (arXiv:1602.02355); Franceschi et al., "Forward and Reverse Gradient-Based
      Hyperparameter Optimization", 2017 (arXiv:1703.01785); Shaban et al.,
      "Truncated Back-propagation for Bilevel Optimization", 2019
      (arXiv:1810.10667); Kwon et al., "On Penalty Methods for Nonconvex Bilevel
      Optimization and First-Order Stochastic Approximation", 2023 (arXiv:2309.01753).
    """
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"`problem` must be a BilevelProblem, got {type(problem).__name__}.")
    opts = _check_options(method, options)
    problem.check_args(x, y0, data, "x", "y0")
    static = {k: v for k, v in opts.items() if not is_dynamic(v)}
    dynamic = {k: v for k, v in opts.items() if is_dynamic(v)}
    return _hypergradient_jit(problem, method, tuple(sorted(static.items(), key=lambda kv: kv[0])),
                              x, y0, data, dynamic)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _hypergradient_jit(problem, method, static_items, x, y0, data, dynamic):
    static = {k: (v.value if isinstance(v, ById) else v) for k, v in static_items}
    o = {**static, **dynamic}
    if o["inner_tol"] is None or o["warn_tol"] is None:
        inner_tol, warn_tol = _inner.precision_tols(problem, x, y0, data)
        o["_derived_inner_tol"] = o["inner_tol"] is None
        o["inner_tol"] = inner_tol if o["inner_tol"] is None else o["inner_tol"]
        o["warn_tol"] = warn_tol if o["warn_tol"] is None else o["warn_tol"]
    if method == "implicit":
        h, d = _implicit(problem, x, y0, data, o)
    elif method == "penalty":
        h, d = _penalty(problem, x, y0, data, o)
    else:
        h, d = _unrolled(problem, x, y0, data, o, truncated=method == "truncated")
    bad = ~tu.tree_all_finite(h) | (d.inner_residual > o["warn_tol"]) | (d.adjoint_residual > o["warn_tol"])
    return h, d._replace(warning=bad)


def _solve(problem, x, y0, data, o, sigma=None):
    return _inner.solve_inner(problem, x, y0, data, o["inner_solver"], o["inner_tol"],
                              o["inner_maxiter"], o["inner_stepsize"], sigma=sigma)


def _implicit(problem, x, y0, data, o):
    y, res, its, status = _solve(problem, x, y0, data, o)
    value, _, gy = problem.outer_grads(x, y, data)
    if o["mode"] == "forward":
        ystar = lambda xx: _lbfgs(problem.inner_objective, o["inner_tol"], o["inner_maxiter"],
                                  None).run(y, xx, data).params
        h = jax.jacfwd(lambda xx: problem.outer_fun(xx, ystar(xx), data))(x)
        zero = jnp.zeros((), res.dtype)
        return h, HypergradDiagnostics(y, res, its, status, tu.tree_zeros_like(y), zero,
                                       jnp.asarray(-1, jnp.int32), value, False)
    v, info = adjoint_solve(problem, x, y, data, gy, o["adjoint_solver"], o["adjoint_tol"],
                            o["adjoint_maxiter"], o["adjoint_init"], o["M"], o["neumann_steps"],
                            o["neumann_stepsize"])
    h = problem.hypergrad_from_adjoint(x, y, data, v)
    return h, HypergradDiagnostics(y, res, its, status, v, info.residual_norm, info.iterations, value, False)


def _unrolled(problem, x, y0, data, o, truncated):
    eta = o["inner_stepsize"]
    if eta is None:
        eta = jax.lax.stop_gradient(1.0 / _inner.estimate_inner_lipschitz(problem, x, y0, data))
    steps, back = o["steps"], (o["truncate"] if truncated else o["steps"])

    def run(xx, yy, n):
        return _inner.gd_steps(lambda z: problem.inner_grad(xx, z, data), yy, eta, n)

    y_mid = jax.lax.stop_gradient(run(x, y0, steps - back)) if back < steps else y0

    def phi(xx):
        yk = run(xx, y_mid, back)
        return problem.outer_fun(xx, yk, data), yk

    (value, y), h = jax.value_and_grad(phi, has_aux=True)(x)
    res = tu.tree_l2_norm(problem.inner_grad(x, y, data))
    status = jnp.where(res <= o["inner_tol"], Status.CONVERGED, Status.MAX_ITER).astype(jnp.int32)
    zero = jnp.zeros((), res.dtype)
    return h, HypergradDiagnostics(y, res, jnp.asarray(steps, jnp.int32), status, tu.tree_zeros_like(y),
                                   zero, jnp.asarray(0, jnp.int32), value, False)


def _penalty(problem, x, y0, data, o):
    sigma = o["sigma"]
    if o.get("_derived_inner_tol", False):
        # The difference quotient divides the inner solutions' errors by sigma: ask for
        # sigma times the tolerance, but stay 30 eps above the rounding floor.
        eps = jnp.finfo(jnp.asarray(o["inner_tol"]).dtype).eps
        scale = o["inner_tol"] / eps ** (2.0 / 3.0)
        o = {**o, "inner_tol": jnp.maximum(jnp.minimum(sigma, 1.0) * o["inner_tol"], 30 * eps * scale)}
    z, res, its, status = _solve(problem, x, y0, data, o)
    ys, res_s, _, status_s = _solve(problem, x, z, data, o, sigma=sigma)
    value, gx, _ = problem.outer_grads(x, ys, data)
    gxs, _ = problem.inner_grads(x, ys, data)
    gxz, _ = problem.inner_grads(x, z, data)
    h = jax.tree_util.tree_map(lambda a, b, c: a + (b - c) / sigma, gx, gxs, gxz)
    adj = jax.tree_util.tree_map(lambda a, b: (a - b) / sigma, z, ys)
    status = jnp.where(status == Status.CONVERGED, status_s, status)
    return h, HypergradDiagnostics(z, res, its, status, adj, res_s, jnp.asarray(-1, jnp.int32), value, False)
