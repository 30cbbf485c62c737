"""SGD with a stochastic Armijo line search."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import base
from jaxopt_lab import tree_util as tu
from jaxopt_lab.solvers import _linesearch


class ArmijoSGDState(NamedTuple):
    """State of :class:`ArmijoSGD`.

    Attributes:
      iter_num: iterations done.
      error: gradient norm at the last point evaluated.
      value: objective at the last point evaluated.
      aux: auxiliary output of ``fun``.
      stepsize: the last accepted step.
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
class ArmijoSGD(base.IterativeSolver):
    """SGD whose step satisfies the Armijo condition on the current mini-batch.

    Each iteration starts from the previous step (times ``increase_factor`` with
    ``reset_option="increase"``, capped at ``max_stepsize``; ``"conservative"``
    keeps it) and backtracks by
    ``decrease_factor`` until ``f_i(x - t g) <= f_i(x) - (1 - aggressiveness) t ||g||^2``
    (jaxopt's convention: larger ``aggressiveness`` accepts larger steps).

    Args:
      fun: mini-batch objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      aggressiveness: in ``(0, 1)``; the Armijo constant is ``1 - aggressiveness``.
      decrease_factor: backtracking factor in ``(0, 1)``.
      increase_factor: growth of the initial trial step between iterations.
      reset_option: ``"increase"`` (default) or ``"conservative"``.
      momentum: heavy-ball momentum in ``[0, 1)``.
      max_stepsize: largest step.
      maxls: maximum backtracking evaluations per iteration.
      pre_update: optional ``(params, state, *args, **kwargs) -> (params, state)``.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.

    Returns:
      ``run`` returns an ``OptStep(params, ArmijoSGDState)``.

    References:
      Vaswani et al., "Painless Stochastic Gradient: Interpolation, Line-Search,
      and Convergence Rates", NeurIPS 2019 (arXiv:1905.09997).
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    aggressiveness: float = 0.9
    decrease_factor: float = 0.8
    increase_factor: float = 1.5
    reset_option: str = "increase"
    momentum: float = 0.0
    max_stepsize: float = 1.0
    maxls: int = 15
    pre_update: Callable | None = None
    maxiter: int = 500
    tol: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        if self.reset_option not in ("increase", "conservative"):
            raise ValueError("`reset_option` must be 'increase' or 'conservative', "
                             f"got {self.reset_option!r}.")
        base.check_positive(self.aggressiveness, "aggressiveness")
        base.check_positive(self.decrease_factor, "decrease_factor")
        base.check_positive(self.max_stepsize, "max_stepsize")
        base.check_positive(self.momentum, "momentum", allow_zero=True)
        base.check_int(self.maxls, "maxls", minimum=1)

    def init_state(self, init_params, *args, **kwargs) -> ArmijoSGDState:
        """Initial state (one evaluation, for ``value`` and ``aux``).

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`ArmijoSGDState`.
        """
        (value, aux), _ = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return ArmijoSGDState(
            iter_num=jnp.asarray(0, jnp.int32), error=jnp.asarray(jnp.inf, dtype), value=value, aux=aux,
            stepsize=jnp.asarray(self.max_stepsize, dtype), velocity=tu.tree_zeros_like(init_params),
            num_fun_eval=jnp.asarray(1, jnp.int32), num_grad_eval=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: ArmijoSGDState, *args, **kwargs) -> base.OptStep:
        """One Armijo-SGD step on the mini-batch ``args``.

        Args:
          params: current point.
          state: current :class:`ArmijoSGDState`.
          *args, **kwargs: the mini-batch, passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        if self.pre_update is not None:
            params, state = self.pre_update(params, state, *args, **kwargs)
        vg = self._value_and_grad_fun()
        (value, aux), grad = vg(params, *args, **kwargs)
        dtype = jnp.result_type(value)
        gg = tu.tree_l2_norm(grad, squared=True)
        grow = self.increase_factor if self.reset_option == "increase" else 1.0
        t0 = jnp.minimum(state.stepsize * grow, self.max_stepsize).astype(dtype)
        value_only = lambda x: (vg(x, *args, **kwargs)[0], None)
        ls = _linesearch.backtracking(value_only, params, value, grad, tu.tree_negative(grad), t0, aux,
                                      c1=1.0 - self.aggressiveness, decrease_factor=self.decrease_factor,
                                      maxls=self.maxls, slope=-gg)
        # A failed search still moves by the smallest trial step (stochastic setting).
        t = jnp.where(ls.failed, t0 * self.decrease_factor ** self.maxls, ls.stepsize).astype(dtype)
        velocity = tu.tree_add_scalar_mul(tu.tree_scalar_mul(self.momentum, state.velocity), -t, grad)
        new_state = ArmijoSGDState(
            iter_num=state.iter_num + 1, error=jnp.sqrt(gg).astype(dtype), value=value, aux=aux, stepsize=t,
            velocity=velocity, num_fun_eval=state.num_fun_eval + 1 + ls.num_evals,
            num_grad_eval=state.num_grad_eval + 1, status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )
        return base.OptStep(tu.tree_add(params, velocity), new_state)
