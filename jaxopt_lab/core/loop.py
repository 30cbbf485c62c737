"""The run loop shared by every solver.

``run`` iterates ``step(params, state) -> (params, state)`` while
``state.status == RUNNING``. With ``jit`` it is one ``lax.while_loop`` (or, when
unrolling for reverse-mode differentiation through the iterations, a ``lax.scan``
of ``maxiter`` steps whose finished steps are masked). Under ``vmap`` the
while-loop's batched predicate freezes finished lanes, so each lane's result and
status are exact. A step that turns the iterate non-finite is not kept: the loop
returns the last finite iterate, with the state that describes it (its value and
error), and the ``NONFINITE`` status. ``run_batches`` drives a solver the same way over
the mini-batches of a Python iterator (``run_iterator`` of the stochastic solvers).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.control import bounded_while_loop
from jaxopt_lab.core.types import OptStep, Status

_RUNNING = Status.RUNNING
_NONFINITE = Status.NONFINITE


def guarded_step(step: Callable, verbose, name: str, lookback: bool) -> Callable:
    """``(prev, params, state) -> (prev, params, state)``: one step that is undone if non-finite.

    The body of :func:`run`'s loop, public so that drivers that iterate a solver in
    segments (:func:`jaxopt_lab.batch_run`) run exactly the same step.

    Without ``lookback`` the state after a step describes the returned params (their value
    and error), so a NONFINITE step returns the input params with the input state, which
    describes them. With ``lookback`` a step evaluates at its input params: a NONFINITE
    step means the input is bad, and the previous iterate ``prev`` is returned with the
    input state, which describes ``prev``.

    Args:
      step: ``(params, state) -> (params, state)``.
      verbose: print each step's iteration, error and status with ``jax.debug.print``.
      name: label for verbose output.
      lookback: the state returned by ``step(params_k, ...)`` describes ``params_k``.

    Returns:
      The guarded step ``(prev, params, state) -> (prev, params, state)``.
    """
    def guarded(prev, params, state):
        new_params, new_state = step(params, state)
        bad = new_state.status == _NONFINITE
        kept_state = state._replace(status=new_state.status, iter_num=new_state.iter_num)
        kept_params = prev if lookback else params
        params_out = tu.tree_where(bad, kept_params, new_params)
        state_out = tu.tree_where(bad, kept_state, new_state)
        prev_out = tu.tree_where(bad, kept_params, params) if lookback else prev
        if verbose:
            jax.debug.print(
                name + " iter {i} error {e:.3e} status {s}",
                i=state_out.iter_num, e=state_out.error, s=state_out.status,
            )
        return prev_out, params_out, state_out

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
    lookback: bool = False,
    finish: Callable | None = None,
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
      lookback: the state returned by ``step(params_k, ...)`` describes ``params_k`` (the
        step evaluates at its input): the loop carries the previous iterate, returned on a
        NONFINITE stop.
      finish: optional ``(prev_params, params, state) -> (params, state)`` applied once
        after the loop (e.g. to evaluate the state at the returned params).

    Returns:
      ``(params, state)`` at the end, as an ``OptStep``.
    """

    guarded = guarded_step(step, verbose, name, lookback)
    # Without lookback the carried "previous iterate" is never read: keep it empty.
    prev = params if lookback else None

    def done(carry):
        prev, params, state = carry
        if finish is not None:
            params, state = finish(params if prev is None else prev, params, state)
        return OptStep(params, state)

    if not jit:
        carry = (prev, params, state)
        while int(carry[2].status) == _RUNNING:
            carry = guarded(*carry)
        return done(carry)

    if unroll:
        def scan_body(carry, _):
            new = guarded(*carry)
            running = carry[2].status == _RUNNING
            return tu.tree_where(running, new, carry), None

        carry, _ = jax.lax.scan(scan_body, (prev, params, state), None, length=maxiter)
        return done(carry)

    def cond(carry):
        return carry[2].status == _RUNNING

    def body(carry):
        return guarded(*carry)

    carry = jax.lax.while_loop(cond, body, (prev, params, state))
    return done(carry)


def status_all_done(status) -> jax.Array:
    """Whether every entry of a (possibly batched) status array has stopped.

    Args:
      status: an int32 array of :class:`jaxopt_lab.Status` codes, any shape.

    Returns:
      A boolean scalar array: ``True`` when no entry is ``RUNNING``.
    """
    return jnp.all(status != _RUNNING)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val, maxiter: int, unroll: bool = False,
               jit: bool = True):
    """A while loop with at most ``maxiter`` iterations (jaxopt's ``loop.while_loop``).

    Runs ``val = body_fun(val)`` while ``cond_fun(val)`` is true, at most ``maxiter``
    times, and returns the last ``val``.

    - ``unroll=False, jit=True``: one ``lax.while_loop`` (``maxiter`` may be traced);
      forward-mode differentiable only.
    - ``unroll=True, jit=True``: a ``lax.scan`` of ``maxiter`` steps in which the steps
      after ``cond_fun`` turns false leave ``val`` unchanged (``maxiter`` must be a Python
      int); differentiable in forward and reverse mode.
    - ``unroll=True, jit=False``: a Python loop that stops as soon as ``cond_fun`` is
      false (for debugging; ``cond_fun`` must return a concrete boolean).
    - ``unroll=False, jit=False``: rejected, as in jaxopt (a Python loop is an unrolled one).

    Args:
      cond_fun: ``val -> bool`` scalar.
      body_fun: ``val -> val`` (same pytree structure, shapes and dtypes).
      init_val: the initial loop value, a pytree.
      maxiter: the iteration cap (``>= 0``).
      unroll: differentiate in reverse mode through the iterations (see above).
      jit: use ``lax`` control flow.

    Returns:
      The loop value after the last iteration.

    Raises:
      TypeError: ``cond_fun`` or ``body_fun`` is not callable, or ``maxiter`` is not an
        integer where it must be one.
      ValueError: ``maxiter < 0``, or ``unroll=False`` with ``jit=False``.
    """
    for fn, name in ((cond_fun, "cond_fun"), (body_fun, "body_fun")):
        if not callable(fn):
            raise TypeError(f"`{name}` must be callable, got {type(fn).__name__}.")
    concrete = not isinstance(maxiter, jax.core.Tracer)
    if concrete:
        if isinstance(maxiter, bool) or not float(maxiter).is_integer():
            raise TypeError(f"`maxiter` must be an integer, got {maxiter!r}.")
        if int(maxiter) < 0:
            raise ValueError(f"`maxiter` must be >= 0, got {maxiter}.")
    if not unroll and not jit:
        raise ValueError("while_loop: `unroll=False` with `jit=False` is not supported; "
                         "use unroll=True for a Python loop.")
    if not unroll:
        def cond(carry):
            k, val = carry
            return jnp.logical_and(k < maxiter, cond_fun(val))

        def body(carry):
            k, val = carry
            return k + 1, body_fun(val)

        return jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), init_val))[1]
    if not concrete:
        raise TypeError("while_loop: `maxiter` must be a Python int when unroll=True.")
    if not jit:
        val = init_val
        for _ in range(int(maxiter)):
            if not bool(cond_fun(val)):
                break
            val = body_fun(val)
        return val

    return bounded_while_loop(cond_fun, body_fun, init_val, int(maxiter), unroll=True)


def _init_state(solver, params, args, kwargs):
    return solver.init_state(params, *args, **kwargs)


def _update(solver, params, state, args, kwargs):
    return solver.update(params, state, *args, **kwargs)


# The solver is an argument (a pytree whose numeric options are leaves): one compile per
# solver structure and batch shape, reused across tolerances and step sizes.
_jitted_init_state = jax.jit(_init_state)
_jitted_update = jax.jit(_update)
_EXHAUSTED = object()


def run_batches(solver, init_params, iterator, args: tuple = (), kwargs: dict | None = None) -> OptStep:
    """Run ``solver.update`` once per mini-batch of a Python iterator (jaxopt's ``run_iterator``).

    The first batch goes to ``init_state`` only; each later batch to one ``update``, as
    ``fun(params, *args, data=batch, **kwargs)``, for at most ``solver.maxiter`` updates.
    The loop stops when the state's status leaves ``RUNNING`` (read before the next batch
    is drawn, so a stop leaves the rest of the iterator unread). A ``NONFINITE`` update
    returns the last finite iterate with the state that describes it, as :func:`run` does
    (the previous iterate when ``solver._state_at_input``). ``init_state`` and ``update``
    are jitted once each with ``solver.jit``; the iterator runs in Python.

    Args:
      solver: an iterative solver (``init_state``, ``update``, ``maxiter``, ``jit``).
      init_params: initial point (a pytree).
      iterator: an iterable of mini-batches (a generator, a data loader, a list).
      args: positional arguments passed with every batch (after ``params``).
      kwargs: keyword arguments passed with every batch (not ``data``).

    Returns:
      ``OptStep(params, state)``.

    Raises:
      ValueError: ``kwargs`` already holds ``data``, or ``iterator`` yields no batch.
      TypeError: ``iterator`` is not iterable.
    """
    kwargs = {} if kwargs is None else kwargs
    if "data" in kwargs:
        raise ValueError("run_iterator passes each batch as `data=`; do not pass `data` in **kwargs.")
    try:
        batches = iter(iterator)
    except TypeError:
        raise TypeError("`iterator` must be an iterable of batches, got "
                        f"{type(iterator).__name__}.") from None
    solver._check_run_args(init_params, args, kwargs)
    try:
        first = next(batches)
    except StopIteration:
        raise ValueError("`iterator` yielded no batch (run_iterator needs at least one, "
                         "for init_state).") from None
    init, step = (_jitted_init_state, _jitted_update) if solver.jit else (_init_state, _update)
    lookback = solver._state_at_input
    state = init(solver, init_params, args, {**kwargs, "data": first})
    params = prev = init_params
    for _ in range(solver.maxiter):
        if int(state.status) != _RUNNING:
            break
        batch = next(batches, _EXHAUSTED)
        if batch is _EXHAUSTED:
            break
        new_params, new_state = step(solver, params, state, args, {**kwargs, "data": batch})
        if int(new_state.status) == _NONFINITE:
            # As in guarded_step: the input state describes the iterate kept.
            params = prev if lookback else params
            state = state._replace(status=new_state.status, iter_num=new_state.iter_num)
            break
        prev, params, state = params, new_params, new_state
    return OptStep(params, state)
