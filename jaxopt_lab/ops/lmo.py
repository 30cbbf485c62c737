"""Linear minimization oracles: ``lmo(grad, hyperparams) -> argmin_{s in C} <grad, s>``.

A linear minimization oracle (LMO) returns a point of a compact convex set ``C`` minimizing
a linear function over it; it is all that Frank-Wolfe (conditional gradient) methods need
of ``C``, and is often much cheaper than a projection (a top singular pair instead of a full
SVD for the nuclear-norm ball). Every oracle here returns a pytree like ``grad`` in its
dtype; the sets over pytrees are defined on all leaves together (the simplex and balls) or
leaf by leaf (the box), as each docstring says. Ties are broken deterministically.

The simplex and the l1 ball are polytopes with few vertices (``n`` and ``2 n`` for ``n``
entries); their oracles carry a :class:`Polytope` (``lmo.polytope``, see
:func:`polytope_of`) that enumerates the vertices, which the away-step and pairwise
Frank-Wolfe variants need to keep a point's convex decomposition. Boxes have ``2^n``
vertices and have no such description.

References:
  Frank and Wolfe, "An algorithm for quadratic programming", Naval Res. Logist. Q., 1956;
  Jaggi, "Revisiting Frank-Wolfe: Projection-Free Sparse Convex Optimization", ICML 2013.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any

__all__ = [
    "Polytope",
    "lmo_box",
    "lmo_l1_ball",
    "lmo_l2_ball",
    "lmo_linf_ball",
    "lmo_nuclear_ball",
    "lmo_simplex",
    "polytope_of",
]


class Polytope(NamedTuple):
    """The vertices of a polytope ``C = conv{v_0, ..., v_{m-1}}``, as functions.

    Attributes:
      scores: ``scores(grad, hyperparams) -> (m,)`` array of ``<grad, v_i>``; its argmin is
        the Frank-Wolfe vertex, its argmax over the active set the away vertex.
      vertex: ``vertex(index, like, hyperparams) -> v_index``, a pytree like ``like``.
      weights: ``weights(params, hyperparams) -> (m,)`` nonnegative weights summing to one
        with ``params = sum_i weights[i] v_i`` (``params`` must lie in ``C``).
    """

    scores: Callable[..., jax.Array]
    vertex: Callable[..., PyTree]
    weights: Callable[..., jax.Array]


def polytope_of(lmo: Callable) -> Polytope | None:
    """The :class:`Polytope` an oracle carries (``lmo.polytope``), or ``None``.

    Args:
      lmo: a linear minimization oracle.

    Returns:
      Its vertex description, or ``None`` when it has none (e.g. a box or a ball).
    """
    return getattr(lmo, "polytope", None)


def _flat(tree):
    flat, unravel = ravel_pytree(tree)
    return flat, unravel


def _scalar(value, default, dtype):
    return jnp.asarray(default if value is None else value, dtype)


def _dtype(tree):
    return jnp.result_type(*jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------------------ simplex


def _simplex_scores(grad, scale=1.0):
    g, _ = _flat(grad)
    return _scalar(scale, 1.0, g.dtype) * g


def _simplex_vertex(index, like, scale=1.0):
    flat, unravel = _flat(like)
    return unravel(_scalar(scale, 1.0, flat.dtype) * jax.nn.one_hot(index, flat.shape[0], dtype=flat.dtype))


def _simplex_weights(params, scale=1.0):
    x, _ = _flat(params)
    return jnp.maximum(x, 0) / _scalar(scale, 1.0, x.dtype)


def lmo_simplex(grad: PyTree, scale: float | jax.Array | None = 1.0) -> PyTree:
    """LMO of the scaled simplex ``{s >= 0, sum(s) = scale}`` (over all leaves together).

    The minimizer of ``<grad, s>`` is the vertex ``scale * e_i`` at the smallest entry
    ``i = argmin(grad)`` (the first one on ties).

    Args:
      grad: pytree (the gradient).
      scale: the simplex's total mass ``> 0`` (``None`` means 1).

    Returns:
      The vertex, a pytree like ``grad``.

    References:
      Jaggi, "Revisiting Frank-Wolfe: Projection-Free Sparse Convex Optimization", 2013.
    """
    return _simplex_vertex(jnp.argmin(_simplex_scores(grad, scale)), grad, scale)


lmo_simplex.polytope = Polytope(_simplex_scores, _simplex_vertex, _simplex_weights)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ l1 ball


def _l1_scores(grad, radius=1.0):
    g, _ = _flat(grad)
    r = _scalar(radius, 1.0, g.dtype)
    return r * jnp.concatenate([g, -g])


def _l1_vertex(index, like, radius=1.0):
    flat, unravel = _flat(like)
    n = flat.shape[0]
    r = _scalar(radius, 1.0, flat.dtype)
    sign = jnp.where(index < n, r, -r)
    return unravel(sign * jax.nn.one_hot(index % n, n, dtype=flat.dtype))


def _l1_weights(params, radius=1.0):
    x, _ = _flat(params)
    r = _scalar(radius, 1.0, x.dtype)
    w = jnp.concatenate([jnp.maximum(x, 0), jnp.maximum(-x, 0)]) / r
    # The mass left inside the ball goes to the pair (e_0, -e_0), whose midpoint is 0.
    rest = jnp.maximum(1 - jnp.sum(w), 0) / 2
    n = x.shape[0]
    return w.at[0].add(rest).at[n].add(rest)


def lmo_l1_ball(grad: PyTree, radius: float | jax.Array | None = 1.0) -> PyTree:
    """LMO of the l1 ball ``{||s||_1 <= radius}`` (over all leaves together).

    The minimizer is ``-radius * sign(grad_i) e_i`` at ``i = argmax |grad_i|``: the ball is
    the convex hull of the ``2 n`` vertices ``+-radius e_i``.

    Args:
      grad: pytree (the gradient).
      radius: the ball's radius ``> 0`` (``None`` means 1).

    Returns:
      The vertex, a pytree like ``grad``.

    References:
      Jaggi, "Revisiting Frank-Wolfe: Projection-Free Sparse Convex Optimization", 2013.
    """
    return _l1_vertex(jnp.argmin(_l1_scores(grad, radius)), grad, radius)


lmo_l1_ball.polytope = Polytope(_l1_scores, _l1_vertex, _l1_weights)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ boxes and balls


def lmo_box(grad: PyTree, hyperparams: tuple) -> PyTree:
    """LMO of the box ``{lower <= s <= upper}`` (leaf by leaf).

    The minimizer takes ``lower`` where ``grad > 0`` and ``upper`` elsewhere. The box has
    ``2^n`` vertices, so it carries no :class:`Polytope` (no away or pairwise steps).

    Args:
      grad: pytree (the gradient).
      hyperparams: ``(lower, upper)``, scalars or pytrees like ``grad`` (as
        :func:`jaxopt_lab.projection.projection_box`).

    Returns:
      The vertex, a pytree like ``grad``.
    """
    lower, upper = hyperparams

    def bcast(h):
        if jax.tree_util.tree_structure(h) == jax.tree_util.tree_structure(grad):
            return h
        return jax.tree_util.tree_map(lambda _: h, grad)

    return jax.tree_util.tree_map(
        lambda g, lo, hi: jnp.where(g > 0, jnp.asarray(lo, g.dtype), jnp.asarray(hi, g.dtype)),
        grad, bcast(lower), bcast(upper))


def lmo_linf_ball(grad: PyTree, radius: float | jax.Array | None = 1.0) -> PyTree:
    """LMO of the l-infinity ball ``{max_i |s_i| <= radius}`` (leaf by leaf).

    The minimizer is ``-radius * sign(grad)`` (``+radius`` where ``grad == 0``).

    Args:
      grad: pytree (the gradient).
      radius: the ball's radius ``> 0`` (``None`` means 1).

    Returns:
      The vertex, a pytree like ``grad``.
    """
    return jax.tree_util.tree_map(
        lambda g: jnp.where(g > 0, -_scalar(radius, 1.0, g.dtype), _scalar(radius, 1.0, g.dtype)), grad)


def lmo_l2_ball(grad: PyTree, radius: float | jax.Array | None = 1.0) -> PyTree:
    """LMO of the Euclidean ball ``{||s||_2 <= radius}`` (the norm over all leaves).

    The minimizer is ``-radius * grad / ||grad||``; for ``grad = 0`` every point minimizes,
    and the center ``0`` is returned.

    Args:
      grad: pytree (the gradient).
      radius: the ball's radius ``> 0`` (``None`` means 1).

    Returns:
      The minimizer, a pytree like ``grad``.
    """
    dtype = _dtype(grad)
    norm = jnp.sqrt(sum(jnp.sum(jnp.abs(g) ** 2) for g in jax.tree_util.tree_leaves(grad))).astype(dtype)
    scale = jnp.where(norm > 0, -_scalar(radius, 1.0, dtype) / jnp.where(norm > 0, norm, 1), 0)
    return jax.tree_util.tree_map(lambda g: scale.astype(g.dtype) * g, grad)


def lmo_nuclear_ball(grad: jax.Array, radius: float | jax.Array | None = 1.0,
                     num_iters: int | None = None) -> jax.Array:
    """LMO of the nuclear-norm ball ``{||S||_* <= radius}`` of matrices.

    The minimizer is ``-radius * u v^T`` for the top singular pair ``(u, v)`` of ``grad``
    (``<grad, S> >= -||grad||_2 ||S||_*``). With ``num_iters=None`` the pair comes from a
    thin SVD (for small matrices); with ``num_iters=k`` from ``k`` power iterations on
    ``grad^T grad`` started from a fixed random vector (``O(k m n)``, the reason to prefer
    Frank-Wolfe over projected methods on this set); the power iterate is exact up to
    ``(sigma_2 / sigma_1)^(2k)``.

    Args:
      grad: a 2-D array (the gradient).
      radius: the ball's radius ``> 0`` (``None`` means 1).
      num_iters: power iterations (static), or ``None`` for the SVD.

    Returns:
      The rank-one minimizer, shaped like ``grad``.

    Raises:
      ValueError: ``grad`` is not a 2-D array.

    References:
      Jaggi, "Revisiting Frank-Wolfe: Projection-Free Sparse Convex Optimization", 2013.
    """
    if jnp.ndim(grad) != 2:
        raise ValueError(f"lmo_nuclear_ball: `grad` must be a 2-D array, got shape {jnp.shape(grad)}.")
    r = _scalar(radius, 1.0, grad.dtype)
    if num_iters is None:
        u, _, vt = jnp.linalg.svd(grad, full_matrices=False)
        return -r * jnp.outer(u[:, 0], vt[0])
    v = jax.random.normal(jax.random.PRNGKey(0), (grad.shape[1],), grad.dtype)

    def body(_, v):
        w = grad.T @ (grad @ v)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(grad.dtype).tiny)

    v = jax.lax.fori_loop(0, int(num_iters), body, v / jnp.linalg.norm(v))
    u = grad @ v
    u = u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(grad.dtype).tiny)
    return -r * jnp.outer(u, v)
