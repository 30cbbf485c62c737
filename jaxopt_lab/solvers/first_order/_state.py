"""The first-order family's states: :class:`CompositeState` (BlockCoordinateDescent,
MirrorDescent), :class:`FirstOrderState` (the proximal-gradient solvers) and the record of
one forward-backward step."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class CompositeState(NamedTuple):
    """State of BlockCoordinateDescent and MirrorDescent (subclassed for their docs): ``iter_num``,
    ``error`` (optimality error after the iteration), ``value`` (``f`` where evaluated),
    ``aux`` and ``status``."""

    iter_num: jax.Array
    error: jax.Array
    value: jax.Array
    aux: Any
    status: jax.Array


class FirstOrderState(NamedTuple):
    """State of the proximal-gradient solvers (subclassed per solver for its docs).

    Attributes:
      iter_num: iterations done.
      stepsize: last step size used.
      next_stepsize: first trial of the next backtracking search (jaxopt's
        ``state.stepsize``): ``stepsize / decrease_factor`` after a step whose
        sufficient-decrease test was decided above the rounding of ``f``, ``stepsize``
        otherwise (and with a fixed step).
      can_grow: whether the step may still grow: with acceleration a grown trial that
        fails costs momentum (see ``GradientDescent``), so growth stops after the first
        failure until the momentum restarts; always true without acceleration.
      error: gradient-mapping norm ``||x_next - y|| / stepsize`` at the extrapolated point
        ``y``: ``||grad f(y)||`` without a prox, and with one never below the unit-step
        mapping ``||y - prox(y - s grad f(y), s)|| / s`` (``s = max(stepsize, 1)``) when that
        is checked, so a step lost to rounding does not read as zero.
      value: ``f`` at the extrapolated point ``y``.
      aux: auxiliary output of ``fun``.
      velocity: extrapolated point ``y`` (equal to params without acceleration).
      t: momentum coefficient of the accelerated scheme.
      num_fun_eval: evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
      objective: ``f(x) + g(x)`` at the iterate with ProximalGradient's ``restart="function"``,
        ``inf`` otherwise.
      num_restarts: momentum restarts so far (0 without restarts).
    """

    iter_num: jax.Array
    stepsize: jax.Array
    next_stepsize: jax.Array
    can_grow: jax.Array
    error: jax.Array
    value: jax.Array
    aux: Any
    velocity: Any
    t: jax.Array
    num_fun_eval: jax.Array
    status: jax.Array
    objective: jax.Array
    num_restarts: jax.Array


class _Step(NamedTuple):
    """One forward-backward step (``f_next``: ``f(x_next)``, ``None`` with a fixed step)."""

    hp: Any
    y: Any
    value: jax.Array
    grad: Any
    aux: Any
    dtype: Any
    stepsize: jax.Array
    x_next: Any
    num_evals: Any
    failed: jax.Array
    f_next: Any
