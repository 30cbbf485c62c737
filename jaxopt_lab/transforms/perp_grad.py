"""Perpendicular gradient: remove the component of the update along the weights (grokking paper).

The paper's other remedy for softmax collapse, the StableMax loss, lives with the losses
(:func:`jaxopt_lab.ops.loss.stablemax_cross_entropy`, :func:`~jaxopt_lab.ops.loss.stablemax`)
and is importable from here too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_update_args
from jaxopt_lab.ops.loss import log_stablemax, stablemax, stablemax_cross_entropy  # noqa: F401


def scale_by_perp_grad(eps: float = 1e-30) -> optax.GradientTransformation:
    """Project each leaf's update onto the hyperplane orthogonal to that leaf's weights.

    ``u_perp = u - (<w, u> / <w, w>) w`` per leaf (``<w, w> <= eps`` leaves ``u`` unchanged).
    A gradient step along ``u_perp`` cannot scale the weights up, which is what
    drives the naive loss minimization (and the softmax collapse) studied in the paper.

    Args:
      eps: leaves whose squared norm is at most ``eps`` are not projected.

    Returns:
      A stateless ``optax.GradientTransformation`` that requires ``params``.

    References:
      Prieto, Barsbey, Mediano, Birdal, "Grokking at the Edge of Numerical Stability", 2025
      (arXiv:2501.04697).
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_perp_grad needs `params` in update(updates, state, params).")
        check_update_args("scale_by_perp_grad", updates, params, name="updates")

        def leaf(u, w):
            acc = jnp.promote_types(u.dtype, jnp.float32)
            uf, wf = u.astype(acc), w.astype(acc)
            ww = jnp.vdot(wf, wf)
            coef = jnp.where(ww > eps, jnp.vdot(wf, uf) / jnp.where(ww > eps, ww, 1.0), 0.0)
            return (uf - coef * wf).astype(u.dtype)

        return jax.tree_util.tree_map(leaf, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def perp_grad(learning_rate: optax.ScalarOrSchedule, momentum: float | None = None,
              eps: float = 1e-30) -> optax.GradientTransformation:
    """⊥Grad optimizer: SGD (optionally with momentum) on perpendicular gradients.

    Args:
      learning_rate: step size or schedule.
      momentum: heavy-ball coefficient on the projected gradients, or ``None``.
      eps: see :func:`scale_by_perp_grad`.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Prieto et al., "Grokking at the Edge of Numerical Stability", 2025 (arXiv:2501.04697).
    """
    if isinstance(momentum, int | float) and not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1) (or be None), got {momentum}.")
    if isinstance(eps, int | float) and eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}.")
    parts = [scale_by_perp_grad(eps)]
    if momentum is not None:
        parts.append(optax.trace(decay=momentum))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


__all__ = ["scale_by_perp_grad", "perp_grad"]
