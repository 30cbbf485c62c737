"""Euclidean projections onto convex sets in closed form, with jaxopt's names and signatures.

``projection_X(x, hyperparams)`` returns ``argmin_{z in X} ||z - x||_2``, computed by a
formula or a finite algorithm (sort, bisection), differentiable by autodiff. The
projections that need an iterative solver (transportation and Birkhoff polytopes, KL
projections, polyhedra) live in :mod:`jaxopt_lab.ops.projection_solvers` and are
re-exported here, so ``jaxopt_lab.projection`` holds jaxopt's whole namespace. Invalid
sets known before tracing (a box with ``lower > upper``) raise ``ValueError``;
:func:`is_empty_set` answers the same question on traced hyperparameters.

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
from jaxopt_lab.core.checks import all_concrete
from jaxopt_lab.ops._simplex import simplex_project
from jaxopt_lab.ops.projection_solvers import (
    kl_projection_birkhoff,
    kl_projection_transport,
    projection_birkhoff,
    projection_polyhedron,
    projection_transport,
)

PyTree = Any


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
    if all_concrete(lower, upper):
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
    return simplex_project(jnp.asarray(x), value)


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
    if check_feasible and all_concrete(alpha, beta, w, c):
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


__all__ = [
    "is_empty_set",
    "kl_projection_birkhoff",
    "kl_projection_transport",
    "projection_affine_set",
    "projection_birkhoff",
    "projection_box",
    "projection_box_section",
    "projection_halfspace",
    "projection_hypercube",
    "projection_hyperplane",
    "projection_l1_ball",
    "projection_l1_sphere",
    "projection_l2_ball",
    "projection_l2_sphere",
    "projection_linf_ball",
    "projection_non_negative",
    "projection_polyhedron",
    "projection_simplex",
    "projection_sparse_simplex",
    "projection_transport",
]
