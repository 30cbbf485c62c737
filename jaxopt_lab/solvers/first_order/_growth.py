"""The backtracking step-growth rule of the proximal-gradient skeleton: when the next line
search may start above the last accepted step (jaxopt's ``t / decrease_factor``) without
the iteration oscillating at the rounding level of ``f`` near a minimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.solvers.first_order._state import _Step
from jaxopt_lab.solvers.linesearch import functions as _linesearch


def next_first_trial(s: _Step, decrease_factor) -> jax.Array:
    """The next search's first trial: ``t / decrease_factor`` (``t`` the accepted step) when

    * the sufficient-decrease test was decided above rounding: its allowance
      ``q = ||x_next - y||^2 / (2 t)`` exceeds ``GROWTH_MARGIN eps |f(y)|`` (below that, ``f``
      cannot tell a good step from an over-long one), and
    * the quadratic model of ``f`` along the step predicts that the grown step passes: the
      curvature term ``f(x_next) - f(y) - <grad f(y), x_next - y>`` is at most
      ``decrease_factor * q`` (it scales as ``(t'/t)^2``, ``q`` as ``t'/t``);

    ``t`` otherwise.

    Args:
      s: the accepted step (point ``y``, its value and gradient, ``x_next`` and ``f(x_next)``).
      decrease_factor: the line search's shrink factor in (0, 1).

    Returns:
      The first trial step size of the next search, in ``s.dtype``.

    References:
      Scheinberg, Goldfarb and Bai, Fast first-order methods for composite convex
      optimization with backtracking, 2014, arXiv:1109.5997 (steps that may increase).
    """
    t = s.stepsize
    diff = tu.tree_sub(s.x_next, s.y)
    allowance = 0.5 * tu.tree_l2_norm(diff, True) / jnp.where(t > 0, t, 1.0)
    curvature = s.f_next - s.value - jnp.real(tu.tree_vdot(s.grad, diff))
    floor = _linesearch.GROWTH_MARGIN * jnp.finfo(s.dtype).eps * jnp.abs(s.value)
    grow = ~s.failed & (allowance > floor) & (curvature <= decrease_factor * allowance)
    return jnp.where(grow, t / decrease_factor, t).astype(s.dtype)
