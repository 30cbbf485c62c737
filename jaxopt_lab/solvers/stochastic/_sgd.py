"""What ArmijoSGD and PolyakSGD share: the state, the options, the first evaluation and the
heavy-ball step. Each solver only chooses its step size."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_positive
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.stochastic._step import StochasticSolver


class SGDState(NamedTuple):
    """State of the step-size-adaptive SGD solvers (subclassed per solver for its docs).

    Attributes:
      iter_num: iterations done.
      error: gradient norm at the last point evaluated (the returned params once stopped).
      value: objective at the last point evaluated.
      aux: auxiliary output of ``fun``.
      stepsize: the last step size.
      velocity: heavy-ball momentum buffer.
      num_fun_eval, num_grad_eval: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    value: jax.Array
    aux: Any
    stepsize: jax.Array
    velocity: Any
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False, kw_only=True)
class StepSizeSGD(StochasticSolver):
    """Base of SGD solvers that pick a step size per mini-batch (private).

    Subclasses declare ``fun`` and their own options, set ``_state_cls`` and write
    ``update`` as: ``params, state, value, aux, grad, gg = self._evaluate(...)``, choose
    ``t``, then ``return self._momentum_step(params, state, value, aux, grad, gg, t, n)``.
    """

    _state_cls = SGDState
    _state_at_input = True  # update evaluates at its input (the mini-batch of this call)

    value_and_grad: bool = False
    has_aux: bool = False
    momentum: float = 0.0
    max_stepsize: float = 1.0
    pre_update: Callable | None = None
    maxiter: int = 500
    tol: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.momentum, bool):  # jaxopt's own tests pass momentum=False (no momentum)
            self.momentum = float(self.momentum)
        check_positive(self.max_stepsize, "max_stepsize")
        check_positive(self.momentum, "momentum", allow_zero=True)

    def init_state(self, init_params, *args, **kwargs):
        """Initial state (one evaluation, for ``value``, ``error`` and ``aux``).

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state (an :class:`SGDState` subclass).
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return self._state_cls(
            iter_num=jnp.asarray(0, jnp.int32), error=tu.tree_l2_norm(grad).astype(dtype), value=value,
            aux=aux, stepsize=jnp.asarray(self.max_stepsize, dtype), velocity=tu.tree_zeros_like(init_params),
            num_fun_eval=jnp.asarray(1, jnp.int32), num_grad_eval=jnp.asarray(1, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def _evaluate(self, params, state, args, kwargs):
        """``pre_update``, then value and gradient: ``(params, state, value, aux, grad, ||grad||^2)``."""
        if self.pre_update is not None:
            params, state = self.pre_update(params, state, *args, **kwargs)
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        return params, state, value, aux, grad, tu.tree_l2_norm(grad, squared=True)

    def _momentum_step(self, params, state, value, aux, grad, gg, t, num_fun_eval) -> OptStep:
        """Heavy ball ``v = momentum v - t g``, ``x += v``, and the new state.

        The state's ``value`` and ``error`` are those of the input ``params``; when that error
        is already ``<= tol`` no step is taken (params and velocity unchanged), so a
        ``CONVERGED`` state describes the params returned with it.
        """
        dtype = jnp.result_type(value)
        error = jnp.sqrt(gg).astype(dtype)
        done = error <= self.tol
        velocity = tu.tree_add_scalar_mul(tu.tree_scalar_mul(self.momentum, state.velocity), -t, grad)
        velocity = tu.tree_where(done, state.velocity, velocity)
        new_state = self._state_cls(
            iter_num=state.iter_num + jnp.where(done, 0, 1).astype(jnp.int32), error=error, value=value,
            aux=aux, stepsize=t, velocity=velocity, num_fun_eval=state.num_fun_eval + num_fun_eval,
            num_grad_eval=state.num_grad_eval + 1, status=jnp.asarray(Status.RUNNING, jnp.int32),
        )
        return OptStep(tu.tree_where(done, params, tu.tree_add(params, velocity)), new_state)
