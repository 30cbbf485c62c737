"""SGD with Polyak step sizes (SPS_max)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp

from jaxopt_lab.core.checks import check_positive
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.solvers.stochastic._sgd import SGDState, StepSizeSGD


class PolyakSGDState(SGDState):
    """State of :class:`PolyakSGD`.

    Attributes:
      iter_num: iterations done.
      error: gradient norm at the last point evaluated (the returned params once stopped).
      value: objective at the last point evaluated.
      aux: auxiliary output of ``fun``.
      stepsize: the last Polyak step.
      velocity: heavy-ball momentum buffer.
      num_fun_eval, num_grad_eval: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    __slots__ = ()


@dataclasses.dataclass(eq=False)
class PolyakSGD(StepSizeSGD):
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
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "fun_min", "variant", "max_stepsize", "delta", "momentum",
        "pre_update", "maxiter", "tol", "verbose", "implicit_diff", "implicit_diff_solve", "jit",
        "unroll",
    )

    _state_cls = PolyakSGDState

    fun: Callable
    _: dataclasses.KW_ONLY
    delta: float = 0.0
    fun_min: float = 0.0
    variant: str = "SPS_max"

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.delta, "delta", allow_zero=True)
        if self.variant not in ("SPS_max", "SPS+"):
            raise ValueError(f"`variant` must be 'SPS_max' or 'SPS+', got {self.variant!r}.")

    def update(self, params, state: PolyakSGDState, *args, **kwargs) -> OptStep:
        """One SPS step on the mini-batch ``args``.

        Args:
          params: current point.
          state: current :class:`PolyakSGDState`.
          *args, **kwargs: the mini-batch, passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        params, state, value, aux, grad, gg = self._evaluate(params, state, args, kwargs)
        dtype = jnp.result_type(value)
        t = jnp.maximum(value - self.fun_min, 0.0) / jnp.maximum(gg + self.delta, jnp.finfo(dtype).tiny)
        if self.variant == "SPS_max":
            t = jnp.minimum(t, self.max_stepsize)
        return self._momentum_step(params, state, value, aux, grad, gg, t.astype(dtype), 1)
