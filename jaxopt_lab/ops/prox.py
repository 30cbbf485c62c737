"""Proximal operators, with jaxopt's names and signatures.

Every operator has the signature ``prox(x, hyperparams=None, scaling=1.0)`` and
returns ``argmin_y 0.5 ||y - x||^2 + scaling * g(y, hyperparams)`` for its function
``g``. ``x`` may be any pytree; hyperparameters are scalars or pytrees matching
``x``. A concrete negative ``scaling`` or regularization raises ``ValueError``
(the operator is not defined there); traced values are not checked.

References:
  Parikh and Boyd, "Proximal Algorithms", Foundations and Trends in
  Optimization, 2014.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.ops import projection

PyTree = Any


def _check_nonneg(value, name: str) -> None:
    for leaf in jax.tree_util.tree_leaves(value):
        if isinstance(leaf, jax.core.Tracer):
            continue
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.number) and (np.any(arr < 0) or np.any(np.isnan(arr))):
            raise ValueError(f"`{name}` must be >= 0, got {leaf!r}.")


def _broadcast(hyper, x):
    """A scalar hyperparameter for every leaf of ``x``, or a pytree matching ``x``."""
    if jax.tree_util.tree_structure(hyper) == jax.tree_util.tree_structure(x):
        return hyper
    return jax.tree_util.tree_map(lambda _: hyper, x)


def prox_none(x: PyTree, hyperparams: Any = None, scaling: float = 1.0) -> PyTree:
    """Proximal operator of ``g = 0``: the identity.

    Args:
      x: input pytree.
      hyperparams: ignored.
      scaling: ignored (checked to be non-negative).

    Returns:
      ``x``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    del hyperparams
    _check_nonneg(scaling, "scaling")
    return x


def _soft(x, t):
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0)


def prox_lasso(x: PyTree, l1reg: Any = None, scaling: float = 1.0) -> PyTree:
    """Soft thresholding, the proximal operator of ``l1reg * ||x||_1``.

    Args:
      x: input pytree.
      l1reg: non-negative scalar or pytree matching ``x`` (default 1.0).
      scaling: non-negative scaling of the function.

    Returns:
      ``sign(x) * max(|x| - scaling * l1reg, 0)``.

    References:
      Donoho, "De-noising by soft-thresholding", IEEE Trans. Inf. Theory, 1995.
    """
    l1reg = 1.0 if l1reg is None else l1reg
    _check_nonneg(scaling, "scaling")
    _check_nonneg(l1reg, "l1reg")
    return jax.tree_util.tree_map(lambda a, r: _soft(a, scaling * r), x, _broadcast(l1reg, x))


def prox_non_negative_lasso(x: PyTree, l1reg: Any = None, scaling: float = 1.0) -> PyTree:
    """Proximal operator of ``l1reg * ||x||_1`` restricted to ``x >= 0``.

    Args:
      x: input pytree.
      l1reg: non-negative scalar or pytree (default 1.0).
      scaling: non-negative scaling.

    Returns:
      ``max(x - scaling * l1reg, 0)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    l1reg = 1.0 if l1reg is None else l1reg
    _check_nonneg(scaling, "scaling")
    _check_nonneg(l1reg, "l1reg")
    return jax.tree_util.tree_map(lambda a, r: jnp.maximum(a - scaling * r, 0), x, _broadcast(l1reg, x))


def prox_elastic_net(x: PyTree, hyperparams: tuple | None = None, scaling: float = 1.0) -> PyTree:
    """Proximal operator of the elastic net ``lam (||x||_1 + 0.5 gamma ||x||_2^2)``.

    As in jaxopt, ``hyperparams = (lam, gamma)``: ``lam`` scales the whole penalty
    and ``gamma`` is the ratio of the l2 to the l1 part.

    Args:
      x: input pytree.
      hyperparams: ``(lam, gamma)``, non-negative scalars or pytrees (default ``(1.0, 1.0)``).
      scaling: non-negative scaling.

    Returns:
      ``soft(x, scaling lam) / (1 + scaling lam gamma)``.

    References:
      Zou and Hastie, "Regularization and variable selection via the elastic
      net", JRSS-B, 2005.
    """
    lam, gamma = (1.0, 1.0) if hyperparams is None else hyperparams
    _check_nonneg(scaling, "scaling")
    _check_nonneg(lam, "hyperparams[0]")
    _check_nonneg(gamma, "hyperparams[1]")
    return jax.tree_util.tree_map(
        lambda a, r1, r2: _soft(a, scaling * r1) / (1 + scaling * r1 * r2),
        x, _broadcast(lam, x), _broadcast(gamma, x),
    )


def prox_group_lasso(x: PyTree, l2reg: float | None = 1.0, scaling: float = 1.0) -> PyTree:
    """Block soft thresholding, the proximal operator of ``l2reg * ||x||_2``.

    Args:
      x: input pytree (one group).
      l2reg: non-negative scalar (default 1.0).
      scaling: non-negative scaling.

    Returns:
      ``max(0, 1 - scaling l2reg / ||x||) x``.

    References:
      Yuan and Lin, "Model selection and estimation in regression with grouped
      variables", JRSS-B, 2006.
    """
    l2reg = 1.0 if l2reg is None else l2reg
    _check_nonneg(scaling, "scaling")
    _check_nonneg(l2reg, "l2reg")
    norm = tu.tree_l2_norm(x)
    factor = jnp.maximum(0.0, 1.0 - scaling * l2reg / jnp.where(norm > 0, norm, 1.0))
    return tu.tree_scalar_mul(jnp.where(norm > 0, factor, 0.0), x)


def prox_ridge(x: PyTree, l2reg: float | None = 1.0, scaling: float = 1.0) -> PyTree:
    """Proximal operator of ``0.5 l2reg ||x||_2^2``.

    Args:
      x: input pytree.
      l2reg: non-negative scalar or pytree (default 1.0).
      scaling: non-negative scaling.

    Returns:
      ``x / (1 + scaling l2reg)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    l2reg = 1.0 if l2reg is None else l2reg
    _check_nonneg(scaling, "scaling")
    _check_nonneg(l2reg, "l2reg")
    return jax.tree_util.tree_map(lambda a, r: a / (1 + scaling * r), x, _broadcast(l2reg, x))


def prox_non_negative_ridge(x: PyTree, l2reg: float | None = 1.0, scaling: float = 1.0) -> PyTree:
    """Proximal operator of ``0.5 l2reg ||x||_2^2`` restricted to ``x >= 0``.

    Args:
      x: input pytree.
      l2reg: non-negative scalar or pytree (default 1.0).
      scaling: non-negative scaling.

    Returns:
      ``max(x, 0) / (1 + scaling l2reg)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    # The penalty is separable and radial per coordinate: clip, then shrink.
    return prox_ridge(jax.tree_util.tree_map(lambda a: jnp.maximum(a, 0), x), l2reg, scaling)


def prox_box(x: PyTree, hyperparams: tuple | None = None, scaling: float = 1.0) -> PyTree:
    """Proximal operator of the indicator of the box ``lower <= x <= upper``.

    Args:
      x: input pytree.
      hyperparams: ``(lower, upper)``, scalars or pytrees matching ``x``
        (default ``(0, 1)``); ``lower > upper`` raises ``ValueError``.
      scaling: non-negative (an indicator is unchanged by scaling).

    Returns:
      ``clip(x, lower, upper)``.

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014.
    """
    _check_nonneg(scaling, "scaling")
    lower, upper = (0.0, 1.0) if hyperparams is None else hyperparams
    return projection.projection_box(x, (lower, upper))


def prox_nuclear_norm(x: jax.Array, l1reg: float | None = 1.0, scaling: float = 1.0) -> jax.Array:
    """Singular value thresholding, the proximal operator of ``l1reg ||X||_*``.

    Args:
      x: a matrix (or a batch of matrices, the last two axes).
      l1reg: non-negative scalar (default 1.0).
      scaling: non-negative scaling.

    Returns:
      ``U diag(max(s - scaling l1reg, 0)) V^T`` from the SVD ``x = U diag(s) V^T``.

    References:
      Cai, Candes and Shen, "A singular value thresholding algorithm for matrix
      completion", SIAM J. Optim., 2010 (arXiv:0810.3286).
    """
    l1reg = 1.0 if l1reg is None else l1reg
    _check_nonneg(scaling, "scaling")
    _check_nonneg(l1reg, "l1reg")
    if jnp.ndim(x) < 2:
        raise ValueError(f"`x` must be a matrix for the nuclear norm, got shape {jnp.shape(x)}.")
    u, s, vt = jnp.linalg.svd(x, full_matrices=False)
    s = jnp.maximum(s - scaling * l1reg, 0)
    return (u * s[..., None, :]) @ vt


def make_prox_from_projection(projection: Callable) -> Callable:
    """The proximal operator of a set's indicator, from its projection.

    Args:
      projection: ``projection(x, hyperparams)``.

    Returns:
      ``prox(x, hyperparams=None, scaling=1.0) = projection(x, hyperparams)``
      (the indicator is invariant to scaling).

    References:
      Parikh and Boyd, "Proximal Algorithms", 2014, section 1.2.
    """
    if not callable(projection):
        raise TypeError("`projection` must be callable.")

    def prox(x, hyperparams=None, scaling=1.0):
        _check_nonneg(scaling, "scaling")
        return projection(x, hyperparams)

    return prox


__all__ = [
    "make_prox_from_projection",
    "prox_box",
    "prox_elastic_net",
    "prox_group_lasso",
    "prox_lasso",
    "prox_non_negative_lasso",
    "prox_non_negative_ridge",
    "prox_none",
    "prox_nuclear_norm",
    "prox_ridge",
]
