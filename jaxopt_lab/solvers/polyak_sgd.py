"""SGD with Polyak step sizes (SPS_max)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import base
from jaxopt_lab import tree_util as tu


class PolyakSGDState(NamedTuple):
    """State of :class:`PolyakSGD`.

    Attributes:
      iter_num: iterations done.
      error: gradient norm at the last point evaluated.
      value: objective at the last point evaluated.
      aux: auxiliary output of ``fun``.
      stepsize: the last Polyak step.
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


@dataclasses.dataclass(eq=False)
class PolyakSGD(base.IterativeSolver):
    """Stochastic gradient descent with the stochastic Polyak step ``SPS_max``.

    ``t = min((f_i(x) - f_i^*) / (||grad f_i(x)||^2 + delta), max_stepsize)`` with
    ``f_i^* =`` ``fun_min`` (0 under interpolation), then ``v = momentum v - t g``, ``x += v``. ``args``
    passed to ``update`` are the current mini-batch.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` (a mini-batch loss).
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      max_stepsize: cap on the step.
      delta: added to the squared gradient norm (avoids division by zero).
      momentum: heavy-ball momentum in ``[0, 1)``.
      fun_min: the optimal value ``f_i^*`` of each sample loss (0 under interpolation).
      variant: ``"SPS_max"`` (the capped step above) or ``"SPS+"`` (uncapped,
        ``max(f_i(x) - f_i^*, 0) / ||g||^2``).
      pre_update: optional ``(params, state, *args, **kwargs) -> (params, state)``.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.

    Returns:
      ``run`` returns an ``OptStep(params, PolyakSGDState)``.

    References:
      Loizou, Vaswani, Laradji and Lacoste-Julien, "Stochastic Polyak Step-size for
      SGD: An Adaptive Learning Rate for Fast Convergence", AISTATS 2021 (arXiv:2002.10542).
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    max_stepsize: float = 1.0
    delta: float = 0.0
    momentum: float = 0.0
    fun_min: float = 0.0
    variant: str = "SPS_max"
    pre_update: Callable | None = None
    maxiter: int = 500
    tol: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        base.check_positive(self.max_stepsize, "max_stepsize")
        base.check_positive(self.delta, "delta", allow_zero=True)
        base.check_positive(self.momentum, "momentum", allow_zero=True)
        if self.variant not in ("SPS_max", "SPS+"):
            raise ValueError(f"`variant` must be 'SPS_max' or 'SPS+', got {self.variant!r}.")

    def init_state(self, init_params, *args, **kwargs) -> PolyakSGDState:
        """Initial state (one evaluation, for ``value`` and ``aux``).

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`PolyakSGDState`.
        """
        (value, aux), _ = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return PolyakSGDState(
            iter_num=jnp.asarray(0, jnp.int32), error=jnp.asarray(jnp.inf, dtype), value=value, aux=aux,
            stepsize=jnp.asarray(self.max_stepsize, dtype), velocity=tu.tree_zeros_like(init_params),
            num_fun_eval=jnp.asarray(1, jnp.int32), num_grad_eval=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: PolyakSGDState, *args, **kwargs) -> base.OptStep:
        """One SPS step on the mini-batch ``args``.

        Args:
          params: current point.
          state: current :class:`PolyakSGDState`.
          *args, **kwargs: the mini-batch, passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        if self.pre_update is not None:
            params, state = self.pre_update(params, state, *args, **kwargs)
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        dtype = jnp.result_type(value)
        gg = tu.tree_l2_norm(grad, squared=True)
        t = jnp.maximum(value - self.fun_min, 0.0) / jnp.maximum(gg + self.delta, jnp.finfo(dtype).tiny)
        if self.variant == "SPS_max":
            t = jnp.minimum(t, self.max_stepsize)
        t = t.astype(dtype)
        velocity = tu.tree_add_scalar_mul(tu.tree_scalar_mul(self.momentum, state.velocity), -t, grad)
        new_state = PolyakSGDState(
            iter_num=state.iter_num + 1, error=jnp.sqrt(gg).astype(dtype), value=value, aux=aux, stepsize=t,
            velocity=velocity, num_fun_eval=state.num_fun_eval + 1, num_grad_eval=state.num_grad_eval + 1,
            status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )
        return base.OptStep(tu.tree_add(params, velocity), new_state)
