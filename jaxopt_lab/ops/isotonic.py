"""Isotonic regression in the l2 sense by pool-adjacent-violators, jittable, with its derivative.

``isotonic_l2_pav(y)`` solves ``min_x ||x - y||^2`` subject to ``x_1 <= ... <= x_n``
(or ``>=``), then clips to ``[y_min, y_max]``. The solution is piecewise constant: each
block holds the mean of ``y`` over it, so the Jacobian is block-diagonal with entries
``1 / |block|`` (zero where clipping is active), which the ``custom_jvp`` applies to a
tangent by block averaging; reverse mode follows by transposition.

References:
  Ayer, Brunk, Ewing, Reid and Silverman, "An Empirical Distribution Function for
  Sampling with Incomplete Information", 1955; Best and Chakravarti, "Active set
  algorithms for isotonic regression; a unifying framework", 1990; Blondel, Teboul,
  Berthet and Djolonga, "Fast Differentiable Sorting and Ranking", 2020 (arXiv:2002.08871).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _pav_blocks(y):
    """Increasing PAV on a 1-D array: ``(block means, block id of every entry)``.

    A stack of blocks ``(sum, count)`` is grown left to right; after each push the
    top two blocks are merged while their means violate the order. Every merge
    removes a block, so the inner loop runs at most ``n`` times in total.
    """
    n = y.shape[0]
    sums = jnp.zeros(n, y.dtype)
    counts = jnp.zeros(n, y.dtype)

    def violated(carry):
        s, c, top = carry
        # mean[top-1] > mean[top], written without divisions.
        return (top >= 1) & (s[top - 1] * c[top] > s[top] * c[top - 1])

    def merge(carry):
        s, c, top = carry
        s = s.at[top - 1].add(s[top]).at[top].set(0.0)
        c = c.at[top - 1].add(c[top]).at[top].set(0.0)
        return s, c, top - 1

    def push(i, carry):
        s, c, top = carry
        top = top + 1
        s, c = s.at[top].set(y[i]), c.at[top].set(1.0)
        return jax.lax.while_loop(violated, merge, (s, c, top))

    sums, counts, top = jax.lax.fori_loop(0, n, push, (sums, counts, jnp.asarray(-1)))
    means = jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1.0), 0.0)
    ends = jnp.cumsum(counts)  # block k covers positions [ends[k-1], ends[k])
    ids = jnp.searchsorted(ends, jnp.arange(n, dtype=y.dtype), side="right")
    return means, ids, counts


def _block_average(t, ids, counts):
    sums = jax.ops.segment_sum(t, ids, num_segments=t.shape[0])
    return sums[ids] / counts[ids]


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _isotonic_1d(y, y_min, y_max, increasing):
    sign = 1.0 if increasing else -1.0
    means, ids, _ = _pav_blocks(sign * y)
    return jnp.clip(sign * means[ids], y_min, y_max)


@_isotonic_1d.defjvp
def _isotonic_1d_jvp(increasing, primals, tangents):
    y, y_min, y_max = primals
    t, _, _ = tangents
    sign = 1.0 if increasing else -1.0
    means, ids, counts = _pav_blocks(sign * y)
    raw = sign * means[ids]
    out = jnp.clip(raw, y_min, y_max)
    inside = (raw > y_min) & (raw < y_max)
    return out, jnp.where(inside, _block_average(t, ids, counts), 0.0)


def isotonic_l2_pav(y: jax.Array, y_min: float = -jnp.inf, y_max: float = jnp.inf,
                    increasing: bool = True) -> jax.Array:
    """Isotonic regression ``argmin ||x - y||^2`` over monotone ``x``, clipped to ``[y_min, y_max]``.

    Args:
      y: a 1-D array, or an array whose last axis is regressed (leading axes batched).
      y_min: lower clip of the solution (no derivative flows to it).
      y_max: upper clip of the solution (no derivative flows to it).
      increasing: non-decreasing (True) or non-increasing (False) solution (static).

    Returns:
      The isotonic fit, shaped like ``y``. Differentiable in ``y`` (forward and reverse).

    References:
      Ayer et al., 1955; Best and Chakravarti, 1990; Blondel et al., "Fast
      Differentiable Sorting and Ranking", 2020 (arXiv:2002.08871).
    """
    y = jnp.asarray(y)
    if y.ndim == 0:
        raise ValueError("`y` must have at least one axis, got a scalar.")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    y_min = jax.lax.stop_gradient(jnp.asarray(y_min, y.dtype))
    y_max = jax.lax.stop_gradient(jnp.asarray(y_max, y.dtype))
    fn = lambda v: _isotonic_1d(v, y_min, y_max, bool(increasing))
    for _ in range(y.ndim - 1):
        fn = jax.vmap(fn)
    return fn(y)
