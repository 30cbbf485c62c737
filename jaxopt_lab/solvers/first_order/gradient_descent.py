"""Gradient descent with a fixed step or backtracking, optionally accelerated."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive, uses_line_search
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class _Step(NamedTuple):
    """One forward-backward step: prox hyperparameters, extrapolated point ``y``, ``f(y)``
    and its aux, ``grad f(y)``, dtype, accepted step size, next point, line-search
    evaluations, whether the search failed, and ``f`` at the next point (``None`` with a
    fixed step)."""

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


class ProxGradState(NamedTuple):
    """State of :class:`GradientDescent` (and of proximal gradient solvers).

    Attributes:
      iter_num: iterations done.
      stepsize: last step size used.
      error: norm of the gradient mapping ``||x_next - y|| / stepsize`` at the
        extrapolated point ``y``: ``||grad f(y)||`` without a prox, and never below the
        unit-step mapping ``||y - prox(y - s grad f(y), s)|| / s`` (``s = max(stepsize, 1)``)
        when that is checked, so a step lost to rounding does not read as zero.
      value: objective at the extrapolated point ``y``.
      aux: auxiliary output of ``fun``.
      velocity: extrapolated point ``y`` (equal to params without acceleration).
      t: momentum coefficient of the accelerated scheme.
      num_fun_eval: evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    stepsize: jax.Array
    error: jax.Array
    value: jax.Array
    aux: Any
    velocity: Any
    t: jax.Array
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class GradientDescent(IterativeSolver):
    """Gradient descent, with Nesterov/FISTA acceleration and backtracking.

    With ``acceleration`` the gradient is taken at an extrapolated point
    ``y_k = x_k + (t_{k-1} - 1) / t_k (x_k - x_{k-1})``, which gives the optimal
    ``O(1/k^2)`` rate on smooth convex problems. A step size ``<= 0`` selects
    backtracking on the sufficient-decrease condition
    ``f(x+) <= f(y) + <g, x+ - y> + ||x+ - y||^2 / (2 t)``, started from the previous
    step (so the step decreases monotonically, as in Beck and Teboulle).

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad: whether ``fun`` returns ``(value, grad)``.
      has_aux: whether ``fun`` returns ``(value, aux)``.
      stepsize: positive for a fixed step (may be traced), ``<= 0`` for
        backtracking; a callable ``iter_num -> stepsize`` is also accepted.
      maxiter: maximum iterations.
      maxls: maximum backtracking evaluations per iteration.
      tol: stop when the gradient-mapping norm is ``<= tol``. ``CONVERGED`` only when
        that norm, evaluated so that rounding cannot make it vanish (``||grad f(y)||``
        without a prox), is ``<= tol``; when the step ``x_next - y`` is lost to rounding
        (it reads ``<= tol`` while the true norm is above) the solve ends ``STALLED``.
      acceleration: use the accelerated (FISTA) scheme.
      decrease_factor: backtracking shrink factor.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns an ``OptStep(params, ProxGradState)``.

    References:
      Nesterov, "A method for solving the convex programming problem with
      convergence rate O(1/k^2)", 1983; Beck and Teboulle, "A fast iterative
      shrinkage-thresholding algorithm for linear inverse problems", 2009.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    stepsize: float | Callable = 0.0
    maxiter: int = 500
    maxls: int = 15
    tol: float = 1e-3
    acceleration: bool = True
    decrease_factor: float = 0.5

    def _static_option(self, name, value) -> bool:
        return name == "stepsize" and uses_line_search(value)

    def __post_init__(self):
        super().__post_init__()
        check_int(self.maxls, "maxls", minimum=1)
        check_positive(self.decrease_factor, "decrease_factor")

    def _line_search(self) -> bool:
        return uses_line_search(self.stepsize)

    def _prox(self, x, hyperparams_prox, scaling):
        """The proximal operator applied after the gradient step (identity here)."""
        del hyperparams_prox, scaling
        return x

    def _split_args(self, args):
        """``(hyperparams_prox, fun_args)``: plain gradient descent has no prox."""
        return None, args

    def init_state(self, init_params, *args, **kwargs) -> ProxGradState:
        """Evaluate ``fun`` at ``init_params``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`ProxGradState`.
        """
        _, fun_args = self._split_args(args)
        (value, aux), _ = self._value_and_grad_fun()(init_params, *fun_args, **kwargs)
        dtype = jnp.result_type(value)
        return ProxGradState(
            iter_num=jnp.asarray(0, jnp.int32), stepsize=jnp.asarray(1.0, dtype),
            error=jnp.asarray(jnp.inf, dtype), value=value, aux=aux, velocity=init_params,
            t=jnp.asarray(1.0, dtype), num_fun_eval=jnp.asarray(1, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: ProxGradState, *args, **kwargs) -> OptStep:
        """One (accelerated) gradient step.

        Args:
          params: current point ``x_k``.
          state: current :class:`ProxGradState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        s = self._forward_backward_step(params, state, args, kwargs)
        t_next, velocity = self._momentum(params, state, s.x_next)
        return OptStep(s.x_next, self._next_state(state, s, t_next, velocity))

    def _momentum(self, params, state, x_next):
        """FISTA's next momentum coefficient and extrapolated point (``(t, x_next)`` without
        acceleration)."""
        if not self.acceleration:
            return state.t, x_next
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t ** 2))
        return t_next, tu.tree_add_scalar_mul(x_next, (state.t - 1.0) / t_next, tu.tree_sub(x_next, params))

    def _next_state(self, state, s: _Step, t_next, velocity) -> ProxGradState:
        """The state after the step ``s``, with momentum ``t_next`` and extrapolated point ``velocity``.

        Shared with ProximalGradient, which extends it with its restart fields.
        """
        t, dtype = s.stepsize, s.dtype
        step_error, error = self._errors(s)
        # The step read as converged but the rounding-free measure is above tol (and the
        # rounding lost at least half of it): the iterate cannot move in this precision.
        stalled = (step_error <= self.tol) & (error > self.tol) & (step_error <= 0.5 * error)
        status = jnp.where(s.failed, Status.LINESEARCH_FAILED,
                           jnp.where(stalled, Status.STALLED, Status.RUNNING))
        return ProxGradState(
            iter_num=state.iter_num + 1, stepsize=jnp.where(s.failed, state.stepsize, t),
            error=error, value=s.value, aux=s.aux, velocity=velocity,
            t=jnp.asarray(t_next, dtype), num_fun_eval=state.num_fun_eval + 1 + s.num_evals,
            status=status.astype(jnp.int32),
        )

    def _prox_is_identity(self) -> bool:
        """Whether the step has no prox (then the gradient mapping is the gradient)."""
        return True

    def _errors(self, s: _Step):
        """``(step_error, error)`` of the step ``s``, both in ``s.dtype``.

        ``step_error = ||x_next - y|| / t`` is jaxopt's gradient-mapping norm; it reads 0
        once ``t grad f(y)`` is below the rounding of ``y``. ``error`` is the same quantity
        computed so that it does not vanish: ``||grad f(y)||`` without a prox; with one, the
        larger of ``step_error`` and the mapping with step ``u = max(t, 1)``,
        ``||y - prox(y - u grad f(y), u)|| / u``, which is at most the mapping with step
        ``t`` for a convex prox (so equal to ``step_error`` in exact arithmetic) and is only
        evaluated when ``step_error <= tol``.
        """
        t, dtype = s.stepsize, s.dtype
        step_error = (tu.tree_l2_norm(tu.tree_sub(s.x_next, s.y)) / jnp.where(t > 0, t, 1.0)).astype(dtype)
        if self._prox_is_identity():
            return step_error, tu.tree_l2_norm(s.grad).astype(dtype)

        def unit_step_error(_):
            u = jnp.maximum(t, 1.0).astype(dtype)
            x_u = self._prox(tu.tree_add_scalar_mul(s.y, -u, s.grad), s.hp, u)
            return (tu.tree_l2_norm(tu.tree_sub(s.y, x_u)) / u).astype(dtype)

        check = jax.lax.cond(step_error <= self.tol, unit_step_error,
                             lambda _: jnp.zeros((), dtype), None)
        return step_error, jnp.maximum(step_error, check)

    # ``update(x_k)`` evaluates ``f`` and its gradient at ``y_k`` (``x_k`` itself without
    # acceleration) and returns ``x_{k+1}`` with a state describing ``y_k``: the run loop
    # keeps the previous iterate for a NONFINITE stop and re-evaluates the state at the
    # returned params when ``maxiter`` ends the run (``_finish_run``).
    _state_at_input = True

    def _state_at(self, params, state, *args, **kwargs):
        """``state`` with ``value``, ``aux`` and ``error`` evaluated at ``params``.

        The error is the gradient-mapping norm at ``params`` with the state's step size,
        computed as in :meth:`_errors` (the gradient norm without a prox).
        """
        hp, fun_args = self._split_args(args)
        (value, aux), grad = self._value_and_grad_fun()(params, *fun_args, **kwargs)
        dtype = jnp.result_type(state.error)
        t = jnp.asarray(state.stepsize, dtype)
        x_t = self._prox(tu.tree_add_scalar_mul(params, -t, grad), hp, t)
        s = _Step(hp, params, value, grad, aux, dtype, t, x_t, 0, jnp.asarray(False), None)
        return state._replace(value=jnp.asarray(value).astype(jnp.result_type(state.value)),
                              error=self._errors(s)[1], aux=aux)

    def _finish_run(self, prev_params, params, state, *args, **kwargs):
        """The base class's end-of-run refresh, plus: with acceleration, a NONFINITE stop's
        state described the extrapolated point, not the returned iterate, so it is
        re-evaluated there (kept only where finite)."""
        params, state = super()._finish_run(prev_params, params, state, *args, **kwargs)
        if not self.acceleration:
            return params, state
        bad = state.status == Status.NONFINITE
        fresh = jax.lax.cond(bad, lambda: self._counted_state_at(params, state, *args, **kwargs),
                             lambda: state)
        ok = jnp.isfinite(fresh.error) & jnp.all(jnp.isfinite(fresh.value))
        return params, tu.tree_where(bad & ok, fresh, state)

    def _forward_backward_step(self, params, state, args, kwargs) -> _Step:
        """The (prox-)gradient step from the extrapolated point, with its step size.

        Shared by :meth:`update` here and in ProximalGradient, which adds restarts.
        """
        hp, fun_args = self._split_args(args)
        vg = self._value_and_grad_fun()
        y = state.velocity if self.acceleration else params
        (value, aux), grad = vg(y, *fun_args, **kwargs)
        dtype = jnp.result_type(value)
        step_at = lambda t: self._prox(tu.tree_add_scalar_mul(y, -t, grad), hp, t)
        if self._line_search():
            value_only = lambda x: (vg(x, *fun_args, **kwargs)[0], None)
            init_t = jnp.where(state.iter_num == 0, 1.0, state.stepsize).astype(dtype)
            ls = _linesearch.backtracking(
                value_only, y, value, grad, None, init_t, aux, maxls=self.maxls,
                decrease_factor=self.decrease_factor, step_fn=step_at,
            )
            return _Step(hp, y, value, grad, aux, dtype, ls.stepsize, ls.params, ls.num_evals,
                         ls.failed, ls.value)
        size = self.stepsize(state.iter_num) if callable(self.stepsize) else self.stepsize
        t = jnp.asarray(size, dtype)
        return _Step(hp, y, value, grad, aux, dtype, t, step_at(t), 0, jnp.asarray(False), None)
