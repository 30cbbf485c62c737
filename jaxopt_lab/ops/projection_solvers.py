"""Projections computed by an iterative solver, differentiated implicitly.

The transportation polytope (and its square case, the Birkhoff polytope of doubly
stochastic matrices), in Euclidean and KL geometry, by damped Newton on the smooth
(semi-)dual; polyhedra ``{A z = b, G z <= h}`` by accelerated projected gradient on
the dual. Each solve is wrapped with :func:`jaxopt_lab.linalg.implicit_diff.custom_root`
on its optimality condition, so derivatives with respect to the inputs come from the
implicit function theorem, in forward and reverse mode. The closed-form projections
are in :mod:`jaxopt_lab.ops.projection`, which re-exports these (jaxopt's
``jaxopt.projection`` namespace).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import all_concrete
from jaxopt_lab.linalg import implicit_diff as idf
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.ops._simplex import simplex_project, simplex_threshold

# ------------------------------------------------- transport polytopes: damped Newton on the dual


def _newton(f: Callable, z0, args, maxiter: int = 100):
    """Minimize a smooth convex ``f(z, *args)`` by damped Newton with implicit derivatives."""

    def solve(z0, *args):
        grad = lambda z: jax.grad(f)(z, *args)
        ts = 2.0 ** jnp.arange(6, -40, -1, dtype=z0.dtype)  # ts[6] == 1
        eps = jnp.finfo(z0.dtype).eps

        def body(c):
            z, k, _ = c
            gz = grad(z)
            # Regularized Newton (ridge ~ ||g||): superlinear near a solution, and a
            # scaled gradient step where the piecewise-constant Hessian is singular.
            H = jax.hessian(f)(z, *args)
            ridge = jnp.linalg.norm(gz) + 1e3 * eps * (1.0 + jnp.max(jnp.abs(jnp.diag(H))))
            d = jnp.linalg.solve(H + ridge * jnp.eye(z.shape[0], dtype=z.dtype), gz)
            fz = f(z, *args)
            # Exact search over a geometric grid of steps, all evaluated at once.
            vals = jax.vmap(lambda t: f(z - t * d, *args))(ts)
            vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
            i = jnp.argmin(vals)
            # The full Newton step is taken whenever it does not increase f beyond
            # rounding and reduces the gradient (the regime of fast local convergence,
            # where f alone cannot rank steps); otherwise the best step of the grid.
            g_full = jnp.max(jnp.abs(grad(z - d)))
            newton_ok = (vals[6] <= fz + 10 * eps * jnp.abs(fz)) & (g_full < jnp.max(jnp.abs(gz)))
            t = jnp.where(newton_ok, 1.0, jnp.where(vals[i] < fz, ts[i], 0.0))
            znew = z - t * d
            gn = jnp.max(jnp.abs(grad(znew)))
            return znew, k + 1, (gn <= 1e2 * eps * (1.0 + jnp.max(jnp.abs(znew)))) | (t == 0)

        z, _, _ = jax.lax.while_loop(lambda c: (c[1] < maxiter) & ~c[2], body,
                                     (z0, jnp.asarray(0), jnp.asarray(False)))
        return z

    return idf.custom_root(jax.grad(f), solve=ls.solve_lu, symmetric=True)(solve)(z0, *args)


def _with_gauge(beta_free):
    return jnp.concatenate([beta_free, jnp.zeros(1, beta_free.dtype)])


def _semi_dual_euclid(beta_free, S, a, b):
    beta = _with_gauge(beta_free)
    # Row i is the simplex projection relu(S_i + beta - tau_i), of value
    # 0.5 ||P_i||^2 + tau_i a_i in the semi-dual.
    tau = simplex_threshold(S + beta, a)
    P = jnp.maximum(S + beta - tau, 0)
    return 0.5 * jnp.sum(P**2) + jnp.dot(tau[:, 0], a) - jnp.dot(beta, b)


def _dual_euclid(z, S, a, b):
    n = S.shape[0]
    alpha, beta = z[:n], _with_gauge(z[n:])
    P = jnp.maximum(S + alpha[:, None] + beta[None, :], 0)
    return 0.5 * jnp.sum(P**2) - jnp.dot(alpha, a) - jnp.dot(beta, b)


def _semi_dual_kl(beta_free, S, a, b):
    beta = _with_gauge(beta_free)
    return jnp.dot(a, jax.nn.logsumexp(S + beta, axis=1)) - jnp.dot(beta, b)


def _dual_kl(z, S, a, b):
    n = S.shape[0]
    alpha, beta = z[:n], _with_gauge(z[n:])
    return jnp.sum(jnp.exp(S + alpha[:, None] + beta[None, :])) - jnp.dot(alpha, a) - jnp.dot(beta, b)


def _transport(S, marginals, make_solver, use_semi_dual, kl):
    S = jnp.asarray(S)
    a, b = (jnp.asarray(m, S.dtype) for m in marginals)
    if S.ndim != 2 or a.shape != (S.shape[0],) or b.shape != (S.shape[1],):
        raise ValueError(f"transport: sim_matrix {S.shape} and marginals {a.shape}, {b.shape} mismatch.")
    if all_concrete(a, b) and not np.isclose(np.sum(np.asarray(a)), np.sum(np.asarray(b)), rtol=1e-6):
        raise ValueError("transport: marginals must have equal sums (the polytope is empty).")
    n, m = S.shape
    if use_semi_dual:
        f, z0 = (_semi_dual_kl if kl else _semi_dual_euclid), jnp.zeros(m - 1, S.dtype)
    else:
        f, z0 = (_dual_kl if kl else _dual_euclid), jnp.zeros(n + m - 1, S.dtype)
    if make_solver is not None:
        z = make_solver(f).run(z0, S, a, b).params
    else:
        z = _newton(f, z0, (S, a, b))
    if use_semi_dual:
        beta = _with_gauge(z)
        if kl:
            return a[:, None] * jax.nn.softmax(S + beta, axis=1)
        return simplex_project(S + beta, a)
    alpha, beta = z[:n], _with_gauge(z[n:])
    M = S + alpha[:, None] + beta[None, :]
    return jnp.exp(M) if kl else jnp.maximum(M, 0)


def projection_transport(sim_matrix: jax.Array, marginals: tuple, make_solver: Callable | None = None,
                         use_semi_dual: bool = True) -> jax.Array:
    """Euclidean projection onto the transportation polytope ``{P >= 0, P 1 = a, P^T 1 = b}``.

    The (semi-)dual, a smooth convex piecewise-quadratic problem, is solved by damped
    Newton (or by ``make_solver(fun).run(z0, S, a, b)`` if given, e.g.
    ``lambda f: jaxopt_lab.LBFGS(fun=f, tol=1e-8)``); derivatives are implicit.

    Args:
      sim_matrix: ``S``, shape ``(n, m)``.
      marginals: ``(a, b)`` with equal sums.
      make_solver: optional factory of a solver for the dual.
      use_semi_dual: solve the semi-dual (rows as simplex projections) or the dual.

    Returns:
      The transport plan ``P`` closest to ``S``.

    References:
      Blondel, Seguy and Rolet, "Smooth and Sparse Optimal Transport", AISTATS 2018
      (arXiv:1710.06276).
    """
    return _transport(sim_matrix, marginals, make_solver, use_semi_dual, kl=False)


def kl_projection_transport(sim_matrix: jax.Array, marginals: tuple, make_solver: Callable | None = None,
                            use_semi_dual: bool = True) -> jax.Array:
    """KL projection of ``exp(sim_matrix)`` onto the transportation polytope (Sinkhorn's problem).

    Args:
      sim_matrix: ``S``, shape ``(n, m)``.
      marginals: ``(a, b)`` with equal sums.
      make_solver: optional factory of a solver for the dual.
      use_semi_dual: solve the semi-dual or the dual.

    Returns:
      ``P = diag(u) exp(S) diag(v)`` with the given marginals.

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport",
      NeurIPS 2013 (arXiv:1306.0895); Blondel, Seguy and Rolet, 2018 (arXiv:1710.06276).
    """
    return _transport(sim_matrix, marginals, make_solver, use_semi_dual, kl=True)


def _birkhoff_marginals(S):
    S = jnp.asarray(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"Birkhoff polytope needs a square `sim_matrix`, got shape {S.shape}.")
    one = jnp.ones(S.shape[0], S.dtype)
    return one, one


def projection_birkhoff(sim_matrix: jax.Array, make_solver: Callable | None = None,
                        use_semi_dual: bool = True) -> jax.Array:
    """Euclidean projection onto the doubly stochastic matrices.

    Args:
      sim_matrix: square matrix.
      make_solver: optional dual solver factory (see :func:`projection_transport`).
      use_semi_dual: solve the semi-dual or the dual.

    Returns:
      The closest doubly stochastic matrix.

    References:
      Blondel, Seguy and Rolet, "Smooth and Sparse Optimal Transport", AISTATS 2018
      (arXiv:1710.06276).
    """
    return projection_transport(sim_matrix, _birkhoff_marginals(sim_matrix), make_solver, use_semi_dual)


def kl_projection_birkhoff(sim_matrix: jax.Array, make_solver: Callable | None = None,
                           use_semi_dual: bool = True) -> jax.Array:
    """KL projection of ``exp(sim_matrix)`` onto the doubly stochastic matrices (Sinkhorn).

    Args:
      sim_matrix: square matrix.
      make_solver: optional dual solver factory.
      use_semi_dual: solve the semi-dual or the dual.

    Returns:
      The doubly stochastic ``diag(u) exp(S) diag(v)``.

    References:
      Sinkhorn, "A relationship between arbitrary positive matrices and doubly
      stochastic matrices", Ann. Math. Statist., 1964; Cuturi, 2013 (arXiv:1306.0895).
    """
    return kl_projection_transport(sim_matrix, _birkhoff_marginals(sim_matrix), make_solver, use_semi_dual)


# ------------------------------------------------------------------ polyhedron


def projection_polyhedron(x: jax.Array, hyperparams: tuple, check_feasible: bool = True,
                          maxiter: int = 5000, tol: float | None = None) -> jax.Array:
    """Projection onto ``{z : A z = b, G z <= h}``.

    Solves the dual ``min_{mu, lam >= 0} 0.5 ||A^T mu + G^T lam||^2 - <mu, A x - b> -
    <lam, G x - h>`` by accelerated projected gradient (FISTA) and returns
    ``z = x - A^T mu - G^T lam``; derivatives come from the implicit function
    theorem on the projected-gradient fixed point. First-order, so meant for small
    or well-conditioned polyhedra (``maxiter`` caps the work).

    Args:
      x: 1-D array.
      hyperparams: ``(A, b, G, h)``.
      check_feasible: if the inputs are concrete, raise ``ValueError`` when the
        result violates the constraints by more than ``1e-6`` (relative), which
        signals an empty polyhedron (or too few iterations).
      maxiter: FISTA iterations cap (static).
      tol: stop when the fixed-point residual is below it (default ``sqrt(eps)``
        in the dtype of ``x`` squared, i.e. ~1e-12 in float64).

    Returns:
      The projection.

    References:
      Beck and Teboulle, "A fast iterative shrinkage-thresholding algorithm for
      linear inverse problems", 2009.
    """
    A, b, G, h = (jnp.asarray(v, x.dtype) for v in hyperparams)
    p = A.shape[0]
    K = jnp.concatenate([A, G], axis=0)
    tol = float(jnp.finfo(x.dtype).eps) ** 0.8 if tol is None else tol

    def grad_q(nu, x, A, b, G, h):
        K = jnp.concatenate([A, G], axis=0)
        r = jnp.concatenate([A @ x - b, G @ x - h])
        return K @ (K.T @ nu) - r

    def proj(nu):
        return nu.at[p:].set(jnp.maximum(nu[p:], 0))

    def fixed_point_residual(nu, eta, x, A, b, G, h):
        return nu - proj(nu - eta * grad_q(nu, x, A, b, G, h))

    eta = 1.0 / jnp.linalg.norm(K, 2) ** 2

    def solve(nu0, eta, x, A, b, G, h):
        def body(c):
            nu, y, t, k, _ = c
            nu_new = proj(y - eta * grad_q(y, x, A, b, G, h))
            t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
            y = nu_new + (t - 1) / t_new * (nu_new - nu)
            res = jnp.max(jnp.abs(fixed_point_residual(nu_new, eta, x, A, b, G, h)))
            return nu_new, y, t_new, k + 1, res

        one = jnp.asarray(1.0, x.dtype)
        c = jax.lax.while_loop(lambda c: (c[3] < maxiter) & (c[4] > tol), body,
                               (nu0, nu0, one, jnp.asarray(0), jnp.asarray(jnp.inf, x.dtype)))
        return c[0]

    nu0 = jnp.zeros(K.shape[0], x.dtype)
    nu = idf.custom_root(fixed_point_residual, solve=ls.solve_lu)(solve)(
        nu0, jax.lax.stop_gradient(eta), x, A, b, G, h)
    z = x - A.T @ nu[:p] - G.T @ nu[p:]
    if check_feasible and all_concrete(z):
        scale = 1.0 + float(jnp.max(jnp.abs(z)))
        viol = max(float(jnp.max(jnp.abs(A @ z - b), initial=0.0)),
                   float(jnp.max(G @ z - h, initial=0.0)))
        if viol > 1e-6 * scale:
            raise ValueError(f"projection_polyhedron: constraints violated by {viol:.2e}; the polyhedron "
                             "looks empty (or increase `maxiter`).")
    return z


__all__ = [
    "kl_projection_birkhoff",
    "kl_projection_transport",
    "projection_birkhoff",
    "projection_polyhedron",
    "projection_transport",
]
