"""The run loop shared by every solver.

``run`` iterates ``step(params, state) -> (params, state)`` while
``state.status == RUNNING``. With ``jit`` it is one ``lax.while_loop`` (or, when
unrolling for reverse-mode differentiation through the iterations, a ``lax.scan``
of ``maxiter`` steps whose finished steps are masked). Under ``vmap`` the
while-loop's batched predicate freezes finished lanes, so each lane's result and
status are exact. A step that turns the iterate non-finite is not kept: the loop
returns the last finite iterate with the ``NONFINITE`` status.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab import tree_util as tu

_RUNNING = 0
_NONFINITE = 3


def _guarded_step(step: Callable, verbose, name: str) -> Callable:
    def guarded(params, state):
        new_params, new_state = step(params, state)
        bad = new_state.status == _NONFINITE
        kept_state = state._replace(status=new_state.status, iter_num=new_state.iter_num)
        params_out = tu.tree_where(bad, params, new_params)
        state_out = tu.tree_where(bad, kept_state, new_state)
        if verbose:
            jax.debug.print(
                name + " iter {i} error {e:.3e} status {s}",
                i=state_out.iter_num, e=state_out.error, s=state_out.status,
            )
        return params_out, state_out

    return guarded


def run(
    step: Callable,
    params,
    state,
    maxiter: int,
    unroll: bool = False,
    verbose=False,
    jit: bool = True,
    name: str = "solver",
):
    """Iterate ``step`` from ``(params, state)`` until the status leaves RUNNING.

    Args:
      step: ``(params, state) -> (params, state)``; the state has ``status``,
        ``iter_num`` and ``error`` fields.
      params: initial parameters.
      state: initial state.
      maxiter: iteration cap (the number of scan steps when unrolling).
      unroll: use a masked ``lax.scan`` (differentiable in reverse mode).
      verbose: print progress with ``jax.debug.print``.
      jit: use ``lax`` control flow; otherwise a Python loop (for debugging).
      name: label for verbose output.

    Returns:
      ``(params, state)`` at the end, as an ``OptStep``.
    """
    from jaxopt_lab.base import OptStep

    guarded = _guarded_step(step, verbose, name)

    if not jit:
        while int(state.status) == _RUNNING:
            params, state = guarded(params, state)
        return OptStep(params, state)

    if unroll:
        def scan_body(carry, _):
            p, s = carry
            new_p, new_s = guarded(p, s)
            running = s.status == _RUNNING
            return (tu.tree_where(running, new_p, p), tu.tree_where(running, new_s, s)), None

        (params, state), _ = jax.lax.scan(scan_body, (params, state), None, length=maxiter)
        return OptStep(params, state)

    def cond(carry):
        return carry[1].status == _RUNNING

    def body(carry):
        return guarded(*carry)

    params, state = jax.lax.while_loop(cond, body, (params, state))
    return OptStep(params, state)


def status_all_done(status) -> jax.Array:
    """True when no entry of a (possibly batched) status array is RUNNING."""
    return jnp.all(status != _RUNNING)
