"""What every mini-batch solver shares: :class:`StochasticSolver` and its ``run_iterator``.

``run`` (from :class:`~jaxopt_lab.core.solver.IterativeSolver`) iterates on fixed data;
``run_iterator`` feeds one mini-batch per ``update`` from a Python iterator (a data
loader), as jaxopt's ``StochasticSolver.run_iterator`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax

from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status


def _init_state(solver, params, args, kwargs):
    return solver.init_state(params, *args, **kwargs)


def _update(solver, params, state, args, kwargs):
    return solver.update(params, state, *args, **kwargs)


# The solver is an argument (a pytree whose numeric options are leaves): one compile per
# solver structure and batch shape, reused across tolerances and step sizes.
_jitted_init_state = jax.jit(_init_state)
_jitted_update = jax.jit(_update)
_EXHAUSTED = object()


class StochasticSolver(IterativeSolver):
    """Base of solvers whose ``update`` takes one mini-batch per call (jaxopt's name).

    Subclasses write ``init_state`` and ``update`` as any solver; ``update`` receives the
    mini-batch through the ``data=`` keyword when driven by :meth:`run_iterator`.

    Attributes:
      maxiter, tol, verbose, implicit_diff, implicit_diff_solve, has_aux, jit, unroll, adjoint:
        the options of :class:`jaxopt_lab.core.solver.IterativeSolver`.
    """

    def run_iterator(self, init_params: Any, iterator: Iterable, *args, **kwargs) -> OptStep:
        """Run ``update`` over the mini-batches of ``iterator`` (jaxopt's ``run_iterator``).

        As in jaxopt, the first batch is used by ``init_state`` only; each later batch
        is passed to one ``update`` as ``fun(params, *args, data=batch, **kwargs)``, for at
        most ``maxiter`` updates. The loop also stops early when the state's status leaves
        ``RUNNING``: ``CONVERGED`` once a batch's gradient norm is ``<= tol`` (jaxopt keeps
        stepping), or ``NONFINITE``, which returns the last finite iterate. ``update`` is
        jitted once (with ``jit=True``); the iterator runs in Python.

        Args:
          init_params: initial point (a pytree).
          iterator: an iterable of mini-batches (a generator, a data loader, a list).
          *args, **kwargs: passed to ``fun`` with every batch (not ``data``).

        Returns:
          ``OptStep(params, state)``. The state's ``value`` and ``error`` are those of the
          input params of the last ``update`` on its batch (the returned params once
          ``CONVERGED``).

        Raises:
          ValueError: ``kwargs`` already holds ``data``, or ``iterator`` yields no batch.
          TypeError: ``iterator`` is not iterable.
        """
        if "data" in kwargs:
            raise ValueError("run_iterator passes each batch as `data=`; do not pass `data` "
                             "in **kwargs.")
        try:
            batches: Iterator = iter(iterator)
        except TypeError:
            raise TypeError(f"`iterator` must be an iterable of batches, got "
                            f"{type(iterator).__name__}.") from None
        self._check_run_args(init_params, args, kwargs)
        try:
            first = next(batches)
        except StopIteration:
            raise ValueError("`iterator` yielded no batch (run_iterator needs at least one, "
                             "for init_state).") from None
        init, step = (_jitted_init_state, _jitted_update) if self.jit else (_init_state, _update)
        state = init(self, init_params, args, {**kwargs, "data": first})
        params = prev = init_params
        for _ in range(self.maxiter):
            # The status is read before the next batch is drawn: a stop leaves it unread.
            if int(state.status) != Status.RUNNING:
                break
            batch = next(batches, _EXHAUSTED)
            if batch is _EXHAUSTED:
                break
            new_params, new_state = step(self, params, state, args, {**kwargs, "data": batch})
            if int(new_state.status) == Status.NONFINITE:
                # update evaluates at its input: ``params`` is bad on this batch, so the
                # previous iterate is returned, with the state that describes it.
                params = prev
                state = state._replace(status=new_state.status, iter_num=new_state.iter_num)
                break
            prev, params, state = params, new_params, new_state
        return OptStep(params, state)
