"""The step the quasi-Newton family shares: direction -> line search -> bookkeeping.

A solver of the family subclasses :class:`QuasiNewtonSolver` and writes only its
Hessian approximation: the empty approximation (``_init_approx``), the search direction
and first trial step it gives (``_direction``) and its curvature update from the accepted
step (``_update_approx``). The state, the line search, the evaluation counters, the
status, the restart after a failed search and the frozen-lane rule live here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class QuasiNewtonState(NamedTuple):
    """State of every quasi-Newton solver (BFGS, L-BFGS, L-BFGS-B, nonlinear CG).

    The fields of the Hessian approximation ``approx`` read as the state's own:
    ``state.H`` (BFGS), ``state.s_history`` (L-BFGS), ``state.descent_direction`` (CG).

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      stepsize: last accepted step.
      error: the stopping measure (gradient norm, or projected-gradient norm with bounds).
      approx: the solver's Hessian approximation (a ``NamedTuple`` of arrays).
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval: evaluations so far (a value and its gradient count once each).
      num_linesearch_iter: line-search evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
      num_no_progress: consecutive iterations without progress (a step at the rounding
        level of ``x`` that lowered neither ``f`` beyond its rounding nor the error by
        half); :data:`NO_PROGRESS_ITERS` of them end the solve ``STALLED``.
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

    def __getattr__(self, name: str):
        # Called only for names that are not fields: those of the approximation.
        try:
            return getattr(self.approx, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None


# Iterations in a row without progress after which a solve ends STALLED.
NO_PROGRESS_ITERS = 5


def no_progress(x, x_new, value, new_value, error, new_error, failed, dtype) -> jax.Array:
    """Whether an accepted step made no progress that the dtype can show.

    True when the step is at the rounding level of ``x`` (``||x_new - x|| <= 10 eps ||x||``),
    ``f`` did not decrease by more than four of its ulps and the error did not halve. In
    ``f``'s rounding regime a line search can keep accepting (approximate-Wolfe) steps that
    only move ``x`` by an ulp or not at all; a run of such steps is a stall, not progress.
    A healthy solve has either a step above rounding or a shrinking error.

    Args:
      x, x_new: the points before and after the step (pytrees).
      value, new_value: ``f`` there.
      error, new_error: the stopping measure there.
      failed: whether the line search failed (a failure is reported by its own status).
      dtype: the real dtype of ``f``.

    Returns:
      A boolean scalar.
    """
    eps = jnp.finfo(dtype).eps
    step = tu.tree_l2_norm(tu.tree_sub(x_new, x)).astype(dtype)
    tiny_step = step <= 10 * eps * tu.tree_l2_norm(x).astype(dtype)
    no_decrease = new_value >= value - 4 * eps * jnp.abs(value)
    no_error_drop = ~(new_error < 0.5 * error)
    return ~failed & tiny_step & no_decrease & no_error_drop


class ComplexView:
    """Complex params seen as real ones: each complex leaf becomes a real array with a
    trailing axis of 2 (real part, imaginary part).

    In this view the inner product is ``Re <x, y>`` and the gradient of a real ``f`` is
    ``conj(jax.grad(f))`` (jaxopt's convention for complex inputs), so every real-valued
    quasi-Newton formula applies unchanged.

    Args:
      like: a params pytree (its complex leaves are the ones converted).
    """

    def __init__(self, like):
        self._complex = jax.tree_util.tree_map(jnp.iscomplexobj, like)

    def to_real(self, tree):
        """A params-shaped pytree in the real view."""
        return jax.tree_util.tree_map(
            lambda c, a: jnp.stack([jnp.real(a), jnp.imag(a)], axis=-1) if c else a, self._complex, tree)

    def from_real(self, tree):
        """A real-view pytree back as params."""
        return jax.tree_util.tree_map(
            lambda c, a: jax.lax.complex(a[..., 0], a[..., 1]) if c else a, self._complex, tree)


def is_complex(tree) -> bool:
    """Whether a pytree has a complex leaf."""
    return any(jnp.iscomplexobj(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def curvature_pair(x, x_new, g, g_new, failed, dtype):
    """``(s, y, <s, y>, <y, y>, good)`` for the step ``x -> x_new``.

    ``good`` keeps the pair only with positive curvature ``<s, y> > eps <y, y>`` after a
    successful search, which keeps a BFGS-type approximation positive definite.

    Args:
      x, x_new: the points (pytrees).
      g, g_new: the gradients there.
      failed: whether the line search failed.
      dtype: dtype of the inner products.

    Returns:
      A tuple ``(s, y, sy, yy, good)``.
    """
    s, y = tu.tree_sub(x_new, x), tu.tree_sub(g_new, g)
    sy, yy = tu.tree_vdot(s, y).astype(dtype), tu.tree_vdot(y, y).astype(dtype)
    return s, y, sy, yy, (sy > jnp.finfo(dtype).eps * yy) & ~failed


def first_stepsize(norm, dtype):
    """``min(1, 1 / norm)``: the first trial step along an unscaled direction of that norm."""
    return jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.asarray(norm, dtype), jnp.finfo(dtype).tiny))


@dataclasses.dataclass(eq=False)
class QuasiNewtonSolver(_linesearch.LineSearchOptions, IterativeSolver):
    """Base of the quasi-Newton family: one ``init_state`` and one ``update``.

    Options shared by the family: ``fun`` (the objective ``fun(params, *args, **kwargs)``,
    returning a scalar, or ``(value, aux)`` with ``has_aux``, ``(value, grad)`` with
    ``value_and_grad``), ``value_and_grad`` and ``has_aux``, and the line-search options
    of :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions`.

    A subclass declares its own options as keyword-only dataclass fields, sets ``_state_class`` and
    writes ``_init_approx``, ``_direction`` and ``_update_approx``; a constrained variant
    also overrides ``_problem``, ``_feasible``, ``_out`` and ``_error``.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False

    _state_class: ClassVar[type] = QuasiNewtonState

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
        del approx
        return jnp.asarray(False)

    def _search(self, value_and_grad, x, grad, state, direction, init_stepsize, stopped):
        """``(result, direction, evaluations)``: one line search along ``direction``."""
        ls = self._line_search(value_and_grad, x, state.value, grad, direction, init_stepsize,
                               state.aux, done=stopped)
        return ls, direction, ls.num_evals

    def _adjust_status(self, state, new_state):
        """A variant's own stopping tests (e.g. a relative decrease of ``f``)."""
        del state
        return new_state

    # -- the space the step works in (overridden with bounds) -------------------------
    def _problem(self, params, args, kwargs):
        """``(x, value_and_grad, ctx)``: the point, ``x -> ((f, aux), g)`` and extra data.

        Complex params are iterated on in their real view (``ctx`` is then a
        :class:`ComplexView`), with the gradient ``conj(jax.grad(f))`` and the inner product
        ``Re <x, y>``.
        """
        vg = self._value_and_grad_fun()
        if not is_complex(params):
            return params, lambda x: vg(x, *args, **kwargs), None
        view = ComplexView(params)

        def real_vg(x):
            out, grad = vg(view.from_real(x), *args, **kwargs)
            return out, view.to_real(tu.tree_conj(grad))
        return view.to_real(params), real_vg, view

    def _init_status(self, ctx) -> jax.Array:
        del ctx
        return jnp.asarray(Status.RUNNING)

    def _feasible(self, x, ctx):
        del ctx
        return x

    def _into(self, tree, ctx):
        """A params-shaped pytree in the step's space."""
        return tree if ctx is None else ctx.to_real(tree)

    def _out(self, x, ctx):
        """A point of the step's space as a params-shaped pytree."""
        return x if ctx is None else ctx.from_real(x)

    def _grad_into(self, grad, ctx):
        """``state.grad`` (``jax.grad``'s convention) in the step's space."""
        return self._into(tu.tree_conj(grad), ctx)

    def _grad_out(self, grad, ctx):
        """A gradient of the step's space as ``state.grad`` (``jax.grad``'s convention:
        the conjugate of the steepest-ascent direction for complex leaves)."""
        return tu.tree_conj(self._out(grad, ctx))

    def _error(self, x, grad, ctx) -> jax.Array:
        del x, ctx
        return tu.tree_l2_norm(grad)

    # -- shared -----------------------------------------------------------------------
    def _init(self, init_params, args, kwargs):
        x, vg, ctx = self._problem(init_params, args, kwargs)
        (value, aux), grad = vg(x)
        dtype = jnp.result_type(value)
        one = jnp.asarray(1, jnp.int32)
        return self._state_class(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=self._grad_out(grad, ctx),
            stepsize=jnp.asarray(1.0, dtype), error=self._error(x, grad, ctx).astype(dtype),
            approx=self._init_approx(x, value, grad), aux=aux, failed_linesearch=jnp.asarray(False),
            num_fun_eval=one, num_grad_eval=one, num_linesearch_iter=jnp.asarray(0, jnp.int32),
            status=self._init_status(ctx).astype(jnp.int32), num_no_progress=jnp.asarray(0, jnp.int32),
        )

    def _step(self, params, state, args, kwargs) -> OptStep:
        x, vg, ctx = self._problem(params, args, kwargs)
        grad = self._grad_into(state.grad, ctx)
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
        idle = no_progress(x, x_new, state.value, jnp.asarray(ls.value, dtype), state.error, error,
                           ls.failed, dtype)
        count = jnp.where(idle, state.num_no_progress + 1, 0).astype(jnp.int32)
        status = jnp.where((status == Status.RUNNING) & (count >= NO_PROGRESS_ITERS) & ~(error <= self.tol),
                           Status.STALLED, status)
        new_state = self._state_class(
            iter_num=state.iter_num + 1, value=jnp.asarray(ls.value, dtype),
            grad=self._grad_out(ls.grad, ctx),
            stepsize=jnp.where(ls.failed, state.stepsize, ls.stepsize).astype(dtype),
            error=jnp.where(ls.failed & ls.nonfinite, jnp.nan, error), approx=approx, aux=ls.aux,
            failed_linesearch=ls.failed, num_fun_eval=state.num_fun_eval + evals,
            num_grad_eval=state.num_grad_eval + evals,
            num_linesearch_iter=state.num_linesearch_iter + evals, status=status.astype(jnp.int32),
            num_no_progress=count,
        )
        new_state = self._adjust_status(state, new_state)
        return _linesearch.keep_if_stopped(stopped, params, state, self._out(x_new, ctx), new_state)

    def init_state(self, init_params, *args, **kwargs) -> QuasiNewtonState:
        """Evaluate ``fun`` at ``init_params``; empty Hessian approximation.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state (a :class:`QuasiNewtonState`).
        """
        return self._init(init_params, args, kwargs)

    def update(self, params, state, *args, **kwargs) -> OptStep:
        """One iteration: direction, line search, curvature update.

        Args:
          params: current point.
          state: current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``; a state whose status is neither ``RUNNING`` nor
          ``MAX_ITER`` comes back unchanged with no evaluation (a stopped lane costs
          nothing under ``vmap``). A failed line search ends the solve: ``STALLED`` when
          no decrease is representable in the dtype, ``NONFINITE`` for a NaN gradient
          where ``f`` was finite, else ``LINESEARCH_FAILED``. :data:`NO_PROGRESS_ITERS`
          accepted steps in a row without progress (see :func:`no_progress`) end it
          ``STALLED`` too.
        """
        return self._step(params, state, args, kwargs)
