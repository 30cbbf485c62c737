"""What every mini-batch solver shares: :class:`StochasticSolver` and its ``run_iterator``.

``run`` (from :class:`~jaxopt_lab.core.solver.IterativeSolver`) iterates on fixed data;
``run_iterator`` feeds one mini-batch per ``update`` from a Python iterator (a data
loader), as jaxopt's ``StochasticSolver.run_iterator`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jaxopt_lab.core import loop as _loop
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep


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
        return _loop.run_batches(self, init_params, iterator, args, kwargs)
