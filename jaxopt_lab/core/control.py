"""Control-flow primitives shared by every floor (no package imports): inner loops that
stop within a bound and stay reverse-differentiable when a solver unrolls."""

from __future__ import annotations

from collections.abc import Callable

import jax


def bounded_while_loop(cond_fun: Callable, body_fun: Callable, init_val, max_steps: int, *,
                       unroll: bool = False):
    """An inner loop that stops within ``max_steps`` steps, reverse-differentiable when unrolled.

    For the loops inside a solver's step (line searches, inner linear solves): with
    ``unroll=False`` it is ``lax.while_loop(cond_fun, body_fun, init_val)``; with
    ``unroll=True`` (the solver differentiates through its iterations) it is a
    ``lax.scan`` of ``max_steps`` steps, each running ``body_fun`` only while
    ``cond_fun`` holds (a ``lax.cond``; under ``vmap`` a select that runs both branches,
    so a body must not produce inf/NaN on a finished value). ``cond_fun`` must itself
    turn false within ``max_steps`` body calls (e.g. by counting them): the two forms
    then return the same value, and the unrolled one also has reverse-mode derivatives.

    Args:
      cond_fun: ``val -> bool`` scalar.
      body_fun: ``val -> val`` (same pytree structure, shapes and dtypes).
      init_val: the initial loop value, a pytree.
      max_steps: a bound on the number of body calls (a Python int; the scan length).
      unroll: a masked ``lax.scan`` (forward and reverse mode) instead of a
        ``lax.while_loop`` (forward mode only).

    Returns:
      The loop value once ``cond_fun`` is false (or after ``max_steps`` steps when unrolled).
    """
    if not unroll:
        return jax.lax.while_loop(cond_fun, body_fun, init_val)

    def step(val, _):
        return jax.lax.cond(cond_fun(val), body_fun, lambda v: v, val), None

    return jax.lax.scan(step, init_val, None, length=int(max_steps))[0]


__all__ = ["bounded_while_loop"]
