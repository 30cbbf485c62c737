"""The step the quasi-Newton family shares: direction -> line search -> bookkeeping.

A variant subclasses :class:`QuasiNewtonSolver` and writes its Hessian approximation only:
the empty one (``_init_approx``), the direction and first trial step (``_direction``) and
the update from the accepted step (``_update_approx``). The state, line search, counters,
status, restart after a failed search and frozen-lane rule live here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch
from jaxopt_lab.solvers.quasi_newton._helpers import real_problem, stall_count


def step_as_given(update: Callable) -> Callable:
    """Mark an ``update`` that is ``_step`` with its arguments as given: the run loop may then
    call ``_step`` without the masking of stopped states (a subclass's own ``update`` is unmarked)."""
    update._is_step = True  # type: ignore[attr-defined]
    return update


class QuasiNewtonState(NamedTuple):
    """State of every quasi-Newton solver (BFGS, DFP, L-BFGS, L-BFGS-B, nonlinear CG).

    The fields of the approximation ``approx`` read as the state's own: ``state.H``
    (BFGS, DFP), ``state.s_history`` (L-BFGS), ``state.descent_direction`` (CG).

    Attributes:
      iter_num: iterations done.
      value, grad: objective and gradient (``jax.grad``'s convention) at the current params.
      stepsize: last accepted step.
      error: the stopping measure (gradient norm, or projected-gradient norm with bounds).
      approx, aux: the solver's Hessian approximation (a ``NamedTuple``); ``fun``'s aux output.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval, num_linesearch_iter: evaluations so far, in all and in
        line searches (a value and its gradient count once each).
      status: :class:`jaxopt_lab.Status` code.
      num_no_progress: steps in a row at the rounding level of ``x`` that lowered neither
        ``f`` beyond its rounding nor the error by half; 5 of them end the solve ``STALLED``.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    error: jax.Array
    approx: Any
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array
    num_no_progress: jax.Array

    def __getattr__(self, name: str):  # only for names that are not fields: the approximation's
        try:
            return getattr(self.approx, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None


@dataclasses.dataclass(eq=False)
class QuasiNewtonSolver(_linesearch.LineSearchOptions, IterativeSolver):
    """Base of the quasi-Newton family: one ``init_state`` and one ``update``.

    Shared options: ``fun(params, *args, **kwargs)`` (a scalar; ``(value, aux)`` with
    ``has_aux``; ``(value, grad)`` with ``value_and_grad``), ``value_and_grad``, ``has_aux``
    and those of :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions`. A
    variant adds keyword-only fields and writes ``_init_approx``, ``_direction`` and
    ``_update_approx``; with bounds also ``_problem``, ``_feasible``, ``_into``, ``_out``, ``_error``.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False

    # -- what a variant writes --------------------------------------------------------
    def _init_approx(self, x, value, grad):
        """The Hessian approximation before any step."""
        raise NotImplementedError

    def _direction(self, x, grad, state, ctx):
        """``(direction, first trial step)`` from the current point and state."""
        raise NotImplementedError

    def _update_approx(self, state, x, grad, direction, ls, x_new):
        """The approximation after the step ``x -> x_new`` found by ``ls``."""
        raise NotImplementedError

    def _can_restart(self, approx) -> jax.Array:
        """Whether a failed search clears the memory and retries instead of stopping."""
        return jnp.asarray(False)

    def _search(self, value_and_grad, x, grad, state, direction, init_stepsize, stopped):
        """``(result, direction, evaluations)``: one line search along ``direction``."""
        ls = self._line_search(value_and_grad, x, state.value, grad, direction, init_stepsize,
                               state.aux, done=stopped)
        return ls, direction, ls.num_evals

    def _adjust_status(self, state, new_state):
        """A variant's own stopping tests (e.g. a relative decrease of ``f``)."""
        return new_state

    # -- the space the step works in (overridden with bounds) -------------------------
    def _problem(self, params, args, kwargs):
        """``(x, x -> ((f, aux), g), ctx)``; complex params in their real view (``ctx``)."""
        return real_problem(self._value_and_grad_fun(), params, args, kwargs)

    def _init_status(self, ctx) -> jax.Array:
        return jnp.asarray(Status.RUNNING)

    def _feasible(self, x, ctx):
        return x

    def _into(self, tree, ctx):
        """A params-shaped pytree in the step's space (gradients: conjugated first)."""
        return tree if ctx is None else ctx.to_real(tree)

    def _out(self, x, ctx):
        """A point of the step's space as a params-shaped pytree (conjugate it for a gradient)."""
        return x if ctx is None else ctx.from_real(x)

    def _error(self, x, grad, ctx) -> jax.Array:
        return tu.tree_l2_norm(grad)

    def _init(self, init_params, args, kwargs):
        x, vg, ctx = self._problem(init_params, args, kwargs)
        (value, aux), grad = vg(x)
        dtype = jnp.result_type(value)
        zero = jnp.asarray(0, jnp.int32)
        return QuasiNewtonState(
            iter_num=zero, value=value, grad=tu.tree_conj(self._out(grad, ctx)),
            stepsize=jnp.asarray(1.0, dtype), error=self._error(x, grad, ctx).astype(dtype),
            approx=self._init_approx(x, value, grad), aux=aux, failed_linesearch=jnp.asarray(False),
            num_fun_eval=zero + 1, num_grad_eval=zero + 1, num_linesearch_iter=zero,
            status=self._init_status(ctx).astype(jnp.int32), num_no_progress=zero)

    def _step(self, params, state, args, kwargs, mask_stopped: bool = True) -> OptStep:
        x, vg, ctx = self._problem(params, args, kwargs)
        grad = self._into(tu.tree_conj(state.grad), ctx)
        dtype = jnp.result_type(state.value)
        stopped = _linesearch.stopped(state.status)
        direction, init_t = self._direction(x, grad, state, ctx)
        ls, direction, evals = self._search(vg, x, grad, state, direction, init_t, stopped)
        x_new = self._feasible(ls.params, ctx)
        approx = self._update_approx(state, x, grad, direction, ls, x_new)
        # A failed search with memory clears it and retries along the gradient (SciPy's
        # L-BFGS-B); otherwise it ends the solve with the search's failure status.
        restart = ls.failed & self._can_restart(state.approx)
        approx = tu.tree_where(restart, self._init_approx(x, state.value, grad), approx)
        status = jnp.where(restart & ~ls.nonfinite, Status.RUNNING, _linesearch.failure_status(ls))
        error = self._error(x_new, ls.grad, ctx).astype(dtype)
        # A run of steps that neither move x beyond rounding nor lower f or the error ends
        # the solve STALLED (tol below the dtype's reach), instead of running to maxiter.
        count, status = stall_count(state, x, x_new, jnp.asarray(ls.value, dtype), error, ls.failed,
                                    status, self.tol)
        new_state = QuasiNewtonState(
            iter_num=state.iter_num + 1, value=jnp.asarray(ls.value, dtype),
            grad=tu.tree_conj(self._out(ls.grad, ctx)),
            stepsize=jnp.where(ls.failed, state.stepsize, ls.stepsize).astype(dtype),
            error=jnp.where(ls.failed & ls.nonfinite, jnp.nan, error), approx=approx, aux=ls.aux,
            failed_linesearch=ls.failed, num_fun_eval=state.num_fun_eval + evals,
            num_grad_eval=state.num_grad_eval + evals, num_linesearch_iter=state.num_linesearch_iter + evals,
            status=status.astype(jnp.int32), num_no_progress=count)
        new_state = self._adjust_status(state, new_state)
        if not mask_stopped:
            return OptStep(self._out(x_new, ctx), new_state)
        return _linesearch.keep_if_stopped(stopped, params, state, self._out(x_new, ctx), new_state)

    def _loop_step(self, params, state, args, kwargs) -> OptStep:
        # The run loop keeps stopped lanes itself: the step skips its select of the whole
        # state (the memory included), unless a subclass wrote its own ``update``.
        if getattr(type(self).update, "_is_step", False):
            out = self._step(params, state, args, kwargs, mask_stopped=False)
            return OptStep(out.params, self._finalize(out.state, out.state.value))  # as update does
        return super()._loop_step(params, state, args, kwargs)

    def init_state(self, init_params, *args, **kwargs) -> QuasiNewtonState:
        """Evaluate ``fun`` at ``init_params``; empty Hessian approximation.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state (a :class:`QuasiNewtonState`).
        """
        return self._init(init_params, args, kwargs)

    @step_as_given
    def update(self, params, state, *args, **kwargs) -> OptStep:
        """One iteration: direction, line search, curvature update.

        Args:
          params: current point.
          state: current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``; a stopped state (neither ``RUNNING`` nor ``MAX_ITER``)
          comes back unchanged, unevaluated. A failed search ends the solve: ``STALLED`` (no
          decrease representable in the dtype; also after 5 steps in a row without progress),
          ``NONFINITE`` (NaN gradient where ``f`` was finite) or ``LINESEARCH_FAILED``.
        """
        return self._step(params, state, args, kwargs)
