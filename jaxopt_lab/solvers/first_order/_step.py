"""The first-order family's step skeleton (states in ``_state.py``, the family base
:class:`FirstOrderSolver` in ``_base.py``, the step-growth rule in ``_growth.py``):
:class:`ProxGradSolver`, the step ``x+ = prox(y - t grad f(y), hp, t)`` of
GradientDescent, ProximalGradient and ProjectedGradient (FISTA momentum, restart hook, fixed
step or backtracking that grows the step where ``f`` validates it, ``STALLED`` when the step is
lost to rounding)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import uses_line_search
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.first_order._base import FirstOrderSolver
from jaxopt_lab.solvers.first_order._growth import next_first_trial
from jaxopt_lab.solvers.first_order._state import FirstOrderState, _Step
from jaxopt_lab.solvers.linesearch import functions as _linesearch


@dataclasses.dataclass(eq=False, kw_only=True)
class ProxGradSolver(FirstOrderSolver):
    """The (accelerated) proximal-gradient step (private). Options (``stepsize``, ``maxls``,
    ``decrease_factor``, ``acceleration``, ``tol``) are GradientDescent's fields."""

    _state_cls = FirstOrderState

    def _prox(self, x, hyperparams, scaling):
        """The operator applied after the gradient step (identity: gradient descent)."""
        del hyperparams, scaling
        return x

    def _prox_is_identity(self) -> bool:
        return True

    def _unit_step(self, x, g, hp):
        return self._prox(tu.tree_sub(x, g), hp, 1.0)

    def _line_search(self) -> bool:
        return uses_line_search(self.stepsize)  # type: ignore[attr-defined]

    def _objective(self, f_value, x, hp):
        """``F(x)`` kept in the state for a function restart (``inf``: not tracked)."""
        del x, hp
        return jnp.asarray(jnp.inf, jnp.result_type(f_value))

    def _restart(self, params, state, s: _Step):
        """``(objective, reset)``: the new ``state.objective`` and whether to reset momentum."""
        del params, s
        return state.objective, jnp.asarray(False)

    def init_state(self, init_params, *args, **kwargs):
        """Evaluate ``fun`` at ``init_params``.

        Args:
          init_params: initial point.
          *args, **kwargs: as in ``run``.

        Returns:
          The solver's state (a :class:`FirstOrderState`).
        """
        hp, fun_args = self._split_args(args)
        (value, aux), _ = self._value_and_grad_fun()(init_params, *fun_args, **kwargs)
        dtype = jnp.result_type(value)
        one, zero = jnp.asarray(1.0, dtype), jnp.asarray(0, jnp.int32)
        return self._state_cls(
            iter_num=zero, stepsize=one, next_stepsize=one, can_grow=jnp.asarray(True),
            error=jnp.asarray(jnp.inf, dtype),
            value=value, aux=aux,
            velocity=init_params, t=one, num_fun_eval=zero + 1, status=zero + Status.RUNNING,
            objective=self._objective(value, init_params, hp), num_restarts=zero)

    def update(self, params, state, *args, **kwargs) -> OptStep:
        """One (accelerated) proximal-gradient step.

        Args:
          params: current iterate ``x_k``.
          state: current state.
          *args, **kwargs: as in ``run``.

        Returns:
          ``OptStep(x_{k+1}, state)``; the state describes the extrapolated point ``y_k``.
        """
        s = self._forward_backward_step(params, state, args, kwargs)
        x_next, t, velocity = s.x_next, state.t, s.x_next
        objective, reset = state.objective, jnp.asarray(False)
        # A grown first trial that the search rejected; with momentum this stops growth.
        grow_failed = self._grown(state) & (s.stepsize < state.next_stepsize)
        can_grow = state.can_grow & ~(grow_failed & self.acceleration)  # type: ignore[attr-defined]
        next_stepsize = jnp.where(can_grow, self._next_stepsize(s), s.stepsize)
        if self.acceleration:  # type: ignore[attr-defined]
            # t_{k+1}^2 - t_{k+1} = (s_k / s0_{k+1}) t_k^2 with s0_{k+1} the next search's first
            # trial: every step s_{k+1} <= s0_{k+1} it accepts keeps the FISTA estimate
            # s_{k+1} (t_{k+1}^2 - t_{k+1}) <= s_k t_k^2 (Scheinberg, Goldfarb and Bai 2014).
            theta = s.stepsize / jnp.where(next_stepsize > 0, next_stepsize, s.stepsize)
            t = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * theta * state.t ** 2))
            velocity = tu.tree_add_scalar_mul(x_next, (state.t - 1.0) / t, tu.tree_sub(x_next, params))
            objective, reset = self._restart(params, state, s)
            t = jnp.where(reset, 1.0, t)
            can_grow = can_grow | reset
            velocity = tu.tree_where(reset, x_next, velocity)
        step_error, error = self._errors(s)
        # The step read as converged but the rounding-free measure is above tol (and the
        # rounding lost at least half of it): the iterate cannot move in this precision.
        stalled = (step_error <= self.tol) & (error > self.tol) & (step_error <= 0.5 * error)
        status = jnp.where(s.failed, Status.LINESEARCH_FAILED,
                           jnp.where(stalled, Status.STALLED, Status.RUNNING))
        return OptStep(x_next, self._state_cls(
            iter_num=state.iter_num + 1, stepsize=jnp.where(s.failed, state.stepsize, s.stepsize),
            next_stepsize=jnp.where(s.failed, state.next_stepsize, next_stepsize).astype(s.dtype),
            can_grow=can_grow,
            error=error, value=s.value, aux=s.aux, velocity=velocity, t=jnp.asarray(t, s.dtype),
            num_fun_eval=state.num_fun_eval + 1 + s.num_evals, status=status.astype(jnp.int32),
            objective=jnp.asarray(objective, s.dtype),
            num_restarts=state.num_restarts + reset.astype(jnp.int32)))

    @staticmethod
    def _grown(state):
        """Whether this step's first trial is larger than the last accepted step."""
        return (state.iter_num > 0) & (state.next_stepsize > state.stepsize)

    def _next_stepsize(self, s: _Step):
        """The next search's first trial (:func:`next_first_trial`; ``t`` with a fixed step)."""
        if not self._line_search():
            return s.stepsize
        return next_first_trial(s, self.decrease_factor)  # type: ignore[attr-defined]

    def _errors(self, s: _Step):
        """``(step_error, error)``: jaxopt's ``||x_next - y|| / t``, which reads 0 once ``t grad
        f(y)`` is below the rounding of ``y``, and the same measure made rounding-proof:
        ``||grad f(y)||`` without a prox; with one, at least the unit-step mapping
        ``||y - prox(y - u grad f(y), u)|| / u`` (``u = max(t, 1)``; equal in exact arithmetic
        for a convex prox), evaluated only when ``step_error <= tol``."""
        t, dtype = s.stepsize, s.dtype
        step_error = (tu.tree_l2_norm(tu.tree_sub(s.x_next, s.y)) / jnp.where(t > 0, t, 1.0)).astype(dtype)
        if self._prox_is_identity():
            return step_error, tu.tree_l2_norm(s.grad).astype(dtype)

        def unit_step_error(_):
            u = jnp.maximum(t, 1.0).astype(dtype)
            x_u = self._prox(tu.tree_add_scalar_mul(s.y, -u, s.grad), s.hp, u)
            return (tu.tree_l2_norm(tu.tree_sub(s.y, x_u)) / u).astype(dtype)

        check = jax.lax.cond(step_error <= self.tol, unit_step_error, lambda _: jnp.zeros((), dtype), None)
        return step_error, jnp.maximum(step_error, check)

    # ``update(x_k)`` evaluates ``f`` at ``y_k`` and returns ``x_{k+1}`` with a state describing
    # ``y_k``: the run loop keeps the previous iterate for a NONFINITE stop and re-evaluates
    # the state at the returned params when ``maxiter`` ends the run.
    _state_at_input = True

    def _state_at(self, params, state, *args, **kwargs):
        """``state`` with ``value``, ``aux`` and ``error`` (as in :meth:`_errors`, with the
        state's step size) evaluated at ``params``."""
        hp, fun_args = self._split_args(args)
        (value, aux), grad = self._value_and_grad_fun()(params, *fun_args, **kwargs)
        dtype = jnp.result_type(state.error)
        t = jnp.asarray(state.stepsize, dtype)
        x_t = self._prox(tu.tree_add_scalar_mul(params, -t, grad), hp, t)
        s = _Step(hp, params, value, grad, aux, dtype, t, x_t, 0, jnp.asarray(False), None)
        return state._replace(value=jnp.asarray(value).astype(jnp.result_type(state.value)),
                              error=self._errors(s)[1], aux=aux)

    def _finish_run(self, prev_params, params, state, *args, **kwargs):
        """The base refresh, plus: with acceleration a NONFINITE stop's state described the
        extrapolated point, so it is re-evaluated at the returned iterate (kept if finite)."""
        params, state = super()._finish_run(prev_params, params, state, *args, **kwargs)
        if not self.acceleration:  # type: ignore[attr-defined]
            return params, state
        bad = state.status == Status.NONFINITE
        fresh = jax.lax.cond(bad, lambda: self._counted_state_at(params, state, *args, **kwargs),
                             lambda: state)
        ok = jnp.isfinite(fresh.error) & jnp.all(jnp.isfinite(fresh.value))
        return params, tu.tree_where(bad & ok, fresh, state)

    def _forward_backward_step(self, params, state, args, kwargs) -> _Step:
        """The (prox-)gradient step from the extrapolated point, with its step size."""
        hp, fun_args = self._split_args(args)
        vg = self._value_and_grad_fun()
        y = state.velocity if self.acceleration else params  # type: ignore[attr-defined]
        (value, aux), grad = vg(y, *fun_args, **kwargs)
        dtype = jnp.result_type(value)
        step_at = lambda t: self._prox(tu.tree_add_scalar_mul(y, -t, grad), hp, t)
        if self._line_search():
            value_only = lambda x: (vg(x, *fun_args, **kwargs)[0], None)
            init_t = jnp.where(state.iter_num == 0, 1.0, state.next_stepsize).astype(dtype)
            # A grown first trial must pass the test on its own, not on rounding slack.
            ls_ = _linesearch.backtracking(
                value_only, y, value, grad, None, init_t, aux, maxls=self.maxls,  # type: ignore[attr-defined]
                decrease_factor=self.decrease_factor, step_fn=step_at,  # type: ignore[attr-defined]
                unroll=self._unrolled(), strict_first=self._grown(state))  # type: ignore[attr-defined]
            return _Step(hp, y, value, grad, aux, dtype, ls_.stepsize, ls_.params, ls_.num_evals,
                         ls_.failed, ls_.value)
        size = self.stepsize(state.iter_num) if callable(self.stepsize) else self.stepsize  # type: ignore
        t = jnp.asarray(size, dtype)
        return _Step(hp, y, value, grad, aux, dtype, t, step_at(t), 0, jnp.asarray(False), None)
