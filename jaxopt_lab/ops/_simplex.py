"""The sort-based simplex projection, shared by the closed-form and the transport projections.

Kept apart so that :mod:`jaxopt_lab.ops.projection_solvers` (transport plans, whose rows are
simplex projections) does not import :mod:`jaxopt_lab.ops.projection`, which re-exports it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def simplex_threshold(x: jax.Array, value) -> jax.Array:
    """The threshold ``theta`` of ``max(x - theta, 0)`` along the last axis (shape ``(..., 1)``).

    Args:
      x: array; leading axes are a batch.
      value: the simplex sum, a scalar or one per row (shape ``x.shape[:-1]``).

    Returns:
      ``theta`` with a trailing axis of size 1.
    """
    u = -jnp.sort(-x, axis=-1)
    css = jnp.cumsum(u, axis=-1) - jnp.asarray(value, x.dtype)[..., None]
    k = jnp.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    rho = jnp.sum(u - css / k > 0, axis=-1, keepdims=True)
    return jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(x.dtype)


def simplex_project(x: jax.Array, value) -> jax.Array:
    """``max(x - theta, 0)``: the Euclidean projection of each row of ``x`` onto the simplex.

    Args:
      x: array; leading axes are a batch.
      value: the simplex sum, a scalar or one per row.

    Returns:
      The projection, same shape as ``x``.
    """
    return jnp.maximum(x - simplex_threshold(x, value), 0)
