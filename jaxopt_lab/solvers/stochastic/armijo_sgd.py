"""SGD with a stochastic Armijo line search."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.solvers.linesearch import functions as _linesearch
from jaxopt_lab.solvers.stochastic._sgd import SGDState, StepSizeSGD


class ArmijoSGDState(SGDState):
    """State of :class:`ArmijoSGD`.

    Attributes:
      iter_num: iterations done.
      error: gradient norm at the last point evaluated (the returned params once stopped).
      value: objective at the last point evaluated.
      aux: auxiliary output of ``fun``.
      stepsize: the last accepted step.
      velocity: heavy-ball momentum buffer.
      num_fun_eval, num_grad_eval: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    __slots__ = ()


@dataclasses.dataclass(eq=False)
class ArmijoSGD(StepSizeSGD):
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
      ``run`` returns an ``OptStep(params, ArmijoSGDState)``. float16 / bfloat16 params
      are rejected (``TypeError``): the Armijo test cannot be resolved in 16-bit floats.

    References:
      Vaswani et al., "Painless Stochastic Gradient: Interpolation, Line-Search,
      and Convergence Rates", NeurIPS 2019 (arXiv:1905.09997).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "aggressiveness", "decrease_factor", "increase_factor",
        "reset_option", "momentum", "max_stepsize", "pre_update", "maxiter", "maxls", "tol", "verbose",
        "implicit_diff", "implicit_diff_solve", "jit", "unroll",
    )

    _state_cls = ArmijoSGDState
    # The Armijo test compares f(x - t g) with f(x) - c t ||g||^2: with 16-bit floats the
    # decrease is below the rounding of f and the search backtracks to its smallest step.
    _supports_half = False

    fun: Callable
    _: dataclasses.KW_ONLY
    aggressiveness: float = 0.9
    decrease_factor: float = 0.8
    increase_factor: float = 1.5
    reset_option: str = "increase"
    maxls: int = 15

    def __post_init__(self):
        super().__post_init__()
        if self.reset_option not in ("increase", "conservative"):
            raise ValueError("`reset_option` must be 'increase' or 'conservative', "
                             f"got {self.reset_option!r}.")
        check_positive(self.aggressiveness, "aggressiveness")
        check_positive(self.decrease_factor, "decrease_factor")
        check_int(self.maxls, "maxls", minimum=1)

    def update(self, params, state: ArmijoSGDState, *args, **kwargs) -> OptStep:
        """One Armijo-SGD step on the mini-batch ``args``.

        Args:
          params: current point.
          state: current :class:`ArmijoSGDState`.
          *args, **kwargs: the mini-batch, passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        params, state, value, aux, grad, gg = self._evaluate(params, state, args, kwargs)
        dtype = jnp.result_type(value)
        grow = self.increase_factor if self.reset_option == "increase" else 1.0
        t0 = jnp.minimum(state.stepsize * grow, self.max_stepsize).astype(dtype)
        vg = self._value_and_grad_fun()
        value_only = lambda x: (vg(x, *args, **kwargs)[0], None)
        ls = _linesearch.backtracking(value_only, params, value, grad, tu.tree_negative(grad), t0, aux,
                                      c1=1.0 - self.aggressiveness, decrease_factor=self.decrease_factor,
                                      maxls=self.maxls, slope=-gg)
        # A failed search still moves by the smallest trial step (stochastic setting).
        t = jnp.where(ls.failed, t0 * self.decrease_factor ** self.maxls, ls.stepsize).astype(dtype)
        return self._momentum_step(params, state, value, aux, grad, gg, t, 1 + ls.num_evals)
