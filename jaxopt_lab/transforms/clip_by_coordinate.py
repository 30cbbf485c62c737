"""Coordinate-wise (element-wise) clipping of updates, with an optional clipped-momentum recipe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_update_args


def clip_by_coordinate(threshold: float | jax.Array, relative: bool = False, eps: float = 1e-12
                       ) -> optax.GradientTransformation:
    """Clip every coordinate of the updates to ``[-tau_i, tau_i]``.

    With ``relative=False``, ``tau_i = threshold``; with ``relative=True``,
    ``tau_i = threshold * RMS(u)`` of the leaf, so only coordinates that are outliers
    relative to their own leaf are clipped (scale-free). Clipping coordinate-wise, rather
    than by the global norm, keeps the direction of the many well-behaved coordinates when a
    few are heavy-tailed.

    Args:
      threshold: clipping level (``>= 0``), a float or a traced scalar.
      relative: measure ``threshold`` in units of each leaf's RMS.
      eps: floor of the RMS in relative mode.

    Returns:
      A stateless ``optax.GradientTransformation``.

    References:
      Zhang, Karimireddy, Veit, Kim, Reddi, Kumar, Sra, "Why are Adaptive Methods Good for
      Attention Models?", 2020 (arXiv:1912.03194) - coordinate-wise clipping (ACClip).
    """
    if isinstance(threshold, int | float) and threshold < 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}.")

    def update(updates, state, params=None):
        check_update_args("clip_by_coordinate", updates, params, name="updates")
        del params

        def leaf(u):
            tau = threshold
            if relative:
                uf = u.astype(jnp.promote_types(u.dtype, jnp.float32))
                tau = threshold * jnp.maximum(jnp.sqrt(jnp.mean(uf * uf)), eps)
            return jnp.clip(u, -tau, tau).astype(u.dtype)

        return jax.tree_util.tree_map(leaf, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def coordinate_clipped_sgd(
    learning_rate: optax.ScalarOrSchedule, threshold: float = 1.0, momentum: float | None = 0.9,
    relative: bool = False,
) -> optax.GradientTransformation:
    """SGD (with optional momentum) on coordinate-wise clipped gradients.

    Args:
      learning_rate: step size or schedule.
      threshold, relative: see :func:`clip_by_coordinate`.
      momentum: heavy-ball coefficient applied after clipping, or ``None``.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Zhang et al., "Why are Adaptive Methods Good for Attention Models?", 2020
      (arXiv:1912.03194).
    """
    parts = [clip_by_coordinate(threshold, relative)]
    if momentum is not None:
        parts.append(optax.trace(decay=momentum))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


__all__ = ["clip_by_coordinate", "coordinate_clipped_sgd"]
