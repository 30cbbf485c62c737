"""Euclidean (and KL) projections onto convex sets, with jaxopt's names and signatures.

``projection_X(x, hyperparams)`` returns ``argmin_{z in X} ||z - x||_2``. All are
differentiable: closed forms by autodiff, the iterative ones (transport, Birkhoff,
polyhedron) by implicit differentiation of their optimality conditions, in forward
and reverse mode. Invalid sets known before tracing (a box with ``lower > upper``,
unbalanced transport marginals) raise ``ValueError``.

References:
  Blondel, Fujino and Ueda, "Large-scale Multiclass Support Vector Machine
  Training via Euclidean Projection onto the Simplex", ICPR 2014; Condat,
  "Fast projection onto the simplex and the l1 ball", Math. Program., 2016.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.linalg import implicit_diff as idf
from jaxopt_lab.linalg import linear_solve as ls

PyTree = Any


def _concrete(*xs) -> bool:
    return all(not isinstance(leaf, jax.core.Tracer) for x in xs for leaf in jax.tree_util.tree_leaves(x))


def _bcast(h, x):
    if jax.tree_util.tree_structure(h) == jax.tree_util.tree_structure(x):
        return h
    return jax.tree_util.tree_map(lambda _: h, x)


# ------------------------------------------------------------------ closed forms


def projection_non_negative(x: PyTree, hyperparams: Any = None) -> PyTree:
    """Projection onto the non-negative orthant.

    Args:
      x: pytree.
      hyperparams: ignored.

    Returns:
      ``max(x, 0)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    del hyperparams
    return jax.tree_util.tree_map(lambda a: jnp.maximum(a, 0), x)


def projection_box(x: PyTree, hyperparams: tuple) -> PyTree:
    """Projection onto the box ``lower <= z <= upper``.

    Args:
      x: pytree.
      hyperparams: ``(lower, upper)``, scalars or pytrees matching ``x``.

    Returns:
      ``clip(x, lower, upper)``; a concrete ``lower > upper`` raises ``ValueError``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    lower, upper = hyperparams
    lower, upper = _bcast(lower, x), _bcast(upper, x)
    if _concrete(lower, upper):
        for lo, up in zip(jax.tree_util.tree_leaves(lower), jax.tree_util.tree_leaves(upper), strict=True):
            if np.any(np.asarray(lo) > np.asarray(up)):
                raise ValueError("projection_box: `lower` > `upper` somewhere (empty box).")
    return jax.tree_util.tree_map(lambda a, lo, up: jnp.clip(a, lo, up), x, lower, upper)


def projection_hypercube(x: PyTree, unit: float = 1.0) -> PyTree:
    """Projection onto the hypercube ``[0, unit]^d``.

    Args:
      x: pytree.
      unit: side length.

    Returns:
      ``clip(x, 0, unit)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    return projection_box(x, (0.0, unit))


def projection_simplex(x: jax.Array, value: float = 1.0) -> jax.Array:
    """Projection onto the simplex ``{z >= 0, sum z = value}`` (along the last axis).

    Sort-based threshold: ``z = max(x - theta, 0)`` with ``theta`` from the sorted
    cumulative sums.

    Args:
      x: array; leading axes are a batch.
      value: the simplex sum (> 0), a scalar or one per row (shape ``x.shape[:-1]``).

    Returns:
      The projection, same shape as ``x``.

    References:
      Held, Wolfe and Crowder, "Validation of subgradient optimization", 1974;
      Duchi et al., "Efficient projections onto the l1-ball for learning in high
      dimensions", ICML 2008.
    """
    x = jnp.asarray(x)
    return jnp.maximum(x - _simplex_threshold(x, value), 0)


def _simplex_threshold(x, value):
    u = -jnp.sort(-x, axis=-1)
    css = jnp.cumsum(u, axis=-1) - jnp.asarray(value, x.dtype)[..., None]
    k = jnp.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    rho = jnp.sum(u - css / k > 0, axis=-1, keepdims=True)
    return jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(x.dtype)


def projection_sparse_simplex(x: jax.Array, max_nz: int, use_approx_max_nz: bool = False,
                              value: float = 1.0) -> jax.Array:
    """Projection onto the simplex with at most ``max_nz`` non-zeros.

    The ``max_nz`` largest entries are projected onto the simplex, the others set to 0.

    Args:
      x: 1-D array.
      max_nz: number of non-zeros allowed (static).
      use_approx_max_nz: select the largest entries with ``lax.approx_max_k``.
      value: the simplex sum.

    Returns:
      The sparse projection.

    References:
      Kyrillidis et al., "Sparse projections onto the simplex", ICML 2013
      (arXiv:1206.1529).
    """
    x = jnp.asarray(x)
    top = jax.lax.approx_max_k if use_approx_max_nz else jax.lax.top_k
    vals, idx = top(x, max_nz)
    return jnp.zeros_like(x).at[idx].set(projection_simplex(vals, value))


def projection_l1_sphere(x: jax.Array, value: float = 1.0) -> jax.Array:
    """Projection onto the l1 sphere ``{||z||_1 = value}``.

    Args:
      x: array.
      value: radius.

    Returns:
      ``sign(x) * projection_simplex(|x|, value)``.

    References:
      Duchi et al., "Efficient projections onto the l1-ball", ICML 2008.
    """
    return jnp.sign(x) * projection_simplex(jnp.abs(x), value)


def projection_l1_ball(x: jax.Array, max_value: float = 1.0) -> jax.Array:
    """Projection onto the l1 ball ``{||z||_1 <= max_value}``.

    Args:
      x: array.
      max_value: radius.

    Returns:
      ``x`` if inside, else its projection onto the sphere.

    References:
      Duchi et al., "Efficient projections onto the l1-ball", ICML 2008.
    """
    inside = jnp.sum(jnp.abs(x)) <= max_value
    return jnp.where(inside, x, projection_l1_sphere(x, max_value))


def projection_l2_sphere(x: PyTree, value: float = 1.0) -> PyTree:
    """Projection onto the l2 sphere ``{||z||_2 = value}`` (``x != 0``).

    Args:
      x: pytree.
      value: radius.

    Returns:
      ``value * x / ||x||``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    return tu.tree_scalar_mul(value / tu.tree_l2_norm(x), x)


def projection_l2_ball(x: PyTree, max_value: float = 1.0) -> PyTree:
    """Projection onto the l2 ball ``{||z||_2 <= max_value}``.

    Args:
      x: pytree.
      max_value: radius.

    Returns:
      ``x * min(1, max_value / ||x||)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    norm = tu.tree_l2_norm(x)
    factor = jnp.where(norm > max_value, max_value / jnp.where(norm > 0, norm, 1.0), 1.0)
    return tu.tree_scalar_mul(factor, x)


def projection_linf_ball(x: PyTree, max_value: float = 1.0) -> PyTree:
    """Projection onto the l-infinity ball ``{||z||_inf <= max_value}``.

    Args:
      x: pytree.
      max_value: radius.

    Returns:
      ``clip(x, -max_value, max_value)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    return projection_box(x, (-max_value, max_value))


def projection_hyperplane(x: jax.Array, hyperparams: tuple) -> jax.Array:
    """Projection onto the hyperplane ``{z : <a, z> = b}``.

    Args:
      x: 1-D array.
      hyperparams: ``(a, b)``.

    Returns:
      ``x - (<a, x> - b) / ||a||^2 a``.

    References:
      Boyd and Vandenberghe, "Convex Optimization", 2004, section 8.1.
    """
    a, b = hyperparams
    return x - (jnp.dot(a, x) - b) / jnp.dot(a, a) * a


def projection_halfspace(x: jax.Array, hyperparams: tuple) -> jax.Array:
    """Projection onto the halfspace ``{z : <a, z> <= b}``.

    Args:
      x: 1-D array.
      hyperparams: ``(a, b)``.

    Returns:
      ``x - max(<a, x> - b, 0) / ||a||^2 a``.

    References:
      Boyd and Vandenberghe, "Convex Optimization", 2004, section 8.1.
    """
    a, b = hyperparams
    return x - jnp.maximum(jnp.dot(a, x) - b, 0) / jnp.dot(a, a) * a


def projection_affine_set(x: jax.Array, hyperparams: tuple) -> jax.Array:
    """Projection onto the affine set ``{z : A z = b}``.

    Args:
      x: 1-D array.
      hyperparams: ``(A, b)``; ``A`` need not have full row rank if the set is
        non-empty.

    Returns:
      ``x - A^+ (A x - b)``.

    References:
      Boyd and Vandenberghe, "Convex Optimization", 2004, section 8.1.
    """
    A, b = hyperparams
    if A.ndim != 2 or A.shape[1] != x.shape[-1] or A.shape[0] != jnp.shape(b)[0]:
        raise ValueError(f"projection_affine_set: shapes A {A.shape}, b {jnp.shape(b)}, x {x.shape} "
                         "do not match.")
    return x - jnp.linalg.pinv(A) @ (A @ x - b)


def projection_box_section(x: jax.Array, hyperparams: tuple, check_feasible: bool = False) -> jax.Array:
    """Projection onto ``{alpha <= z <= beta, <w, z> = c}`` with ``w > 0``.

    The solution is ``z = clip(x - tau w, alpha, beta)`` where the multiplier
    ``tau`` is the root of the decreasing piecewise-linear ``<w, z(tau)> - c``:
    bisection brackets it, then one Newton step on the final linear piece makes
    it exact and gives the derivatives (implicit function theorem).

    Args:
      x: 1-D array.
      hyperparams: ``(alpha, beta, w, c)``.
      check_feasible: raise ``ValueError`` when (concretely) ``c`` lies outside
        ``[<w, alpha>, <w, beta>]``.

    Returns:
      The projection.

    References:
      Helgason, Kennington and Lall, "A polynomially bounded algorithm for a
      singly constrained quadratic program", Math. Program., 1980.
    """
    alpha, beta, w, c = hyperparams
    alpha, beta, w = (jnp.broadcast_to(v, x.shape).astype(x.dtype) for v in (alpha, beta, w))
    if check_feasible and _concrete(alpha, beta, w, c):
        lo, hi = float(np.dot(w, alpha)), float(np.dot(w, beta))
        if not lo <= float(c) <= hi:
            raise ValueError(f"projection_box_section: c={float(c)} outside [{lo}, {hi}]: empty set.")
    z_of = lambda tau: jnp.clip(x - tau * w, alpha, beta)
    g = lambda tau: jnp.dot(w, z_of(tau)) - c
    sg = jax.lax.stop_gradient
    lo, hi = sg(jnp.min((x - beta) / w)), sg(jnp.max((x - alpha) / w))

    def bisect(_, b):
        lo, hi = b
        mid = 0.5 * (lo + hi)
        pos = sg(g(mid)) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    nbits = 2 * jnp.finfo(x.dtype).nmant + 8
    lo, hi = jax.lax.fori_loop(0, nbits, bisect, (lo, hi))
    tau0 = 0.5 * (lo + hi)
    free = (x - tau0 * w > alpha) & (x - tau0 * w < beta)
    slope = jnp.sum(jnp.where(free, w * w, 0))
    tau = tau0 + g(tau0) / jnp.where(slope > 0, slope, 1.0) * (slope > 0)
    return z_of(tau)


# ---------------------------------------------------------- solved by Newton's method


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
    tau = _simplex_threshold(S + beta, a)
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
    if _concrete(a, b) and not np.isclose(np.sum(np.asarray(a)), np.sum(np.asarray(b)), rtol=1e-6):
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
        return projection_simplex(S + beta, a)
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
    if check_feasible and _concrete(z):
        scale = 1.0 + float(jnp.max(jnp.abs(z)))
        viol = max(float(jnp.max(jnp.abs(A @ z - b), initial=0.0)),
                   float(jnp.max(G @ z - h, initial=0.0)))
        if viol > 1e-6 * scale:
            raise ValueError(f"projection_polyhedron: constraints violated by {viol:.2e}; the polyhedron "
                             "looks empty (or increase `maxiter`).")
    return z


# ------------------------------------------------------------------ empty sets


def _any_leaf(pred, *trees) -> jax.Array:
    """``True`` when ``pred`` holds for some entry of some leaf (leaves matched in order)."""
    leaves = [jax.tree_util.tree_leaves(t) for t in trees]
    out = jnp.asarray(False)
    for vals in zip(*leaves, strict=True):
        out = out | jnp.any(pred(*(jnp.asarray(v) for v in vals)))
    return out


def _box_empty(x, hyperparams):
    lower, upper = hyperparams
    return _any_leaf(lambda lo, up: lo > up, _bcast(lower, x), _bcast(upper, x))


def _radius_empty(x, radius):
    del x
    return _any_leaf(lambda r: r < 0, radius)


def _halfspace_empty(x, hyperparams):  # {<a, z> <= b} with a = 0 and b < 0
    del x
    a, b = hyperparams
    return jnp.all(jnp.asarray(a) == 0) & (jnp.asarray(b) < 0)


def _hyperplane_empty(x, hyperparams):  # {<a, z> = b} with a = 0 and b != 0
    del x
    a, b = hyperparams
    return jnp.all(jnp.asarray(a) == 0) & (jnp.asarray(b) != 0)


def _box_section_empty(x, hyperparams):
    alpha, beta, w = (jnp.broadcast_to(jnp.asarray(v), jnp.shape(x)) for v in hyperparams[:3])
    c = jnp.asarray(hyperparams[3])
    return jnp.any(alpha > beta) | (c < jnp.dot(w, alpha)) | (c > jnp.dot(w, beta))


_EMPTY_TESTS: dict[Callable, Callable] = {
    projection_box: _box_empty,
    projection_hypercube: _radius_empty,
    projection_simplex: _radius_empty,
    projection_l1_sphere: _radius_empty,
    projection_l1_ball: _radius_empty,
    projection_l2_sphere: _radius_empty,
    projection_l2_ball: _radius_empty,
    projection_linf_ball: _radius_empty,
    projection_halfspace: _halfspace_empty,
    projection_hyperplane: _hyperplane_empty,
    projection_box_section: _box_section_empty,
}


def is_empty_set(projection: Callable, x: PyTree, hyperparams: Any) -> jax.Array:
    """Whether the set that ``projection`` projects onto is empty, for these hyperparameters.

    Known for this module's closed-form sets: a box with ``lower > upper`` somewhere
    (also ``projection_box_section`` with ``c`` outside ``[<w, alpha>, <w, beta>]``), a
    negative radius or sum (balls, spheres, hypercube, simplex), a halfspace
    ``{<0, z> <= b < 0}`` and a hyperplane ``{<0, z> = b != 0}``. Works on traced
    hyperparameters (inside ``jit``/``vmap``); for any other projection the answer is
    ``False`` (not known to be empty).

    Args:
      projection: a projection function, e.g. :func:`projection_box`.
      x: a point of the space projected (used to broadcast scalar bounds).
      hyperparams: the projection's hyperparameters, as passed to ``projection``.

    Returns:
      A boolean scalar array.
    """
    test = _EMPTY_TESTS.get(projection)
    if test is None or hyperparams is None:
        return jnp.asarray(False)
    return jnp.asarray(test(x, hyperparams))
