"""Mirror descent with a user mirror step (e.g. exponentiated gradient on the simplex)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_positive
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.solvers.first_order._base import FirstOrderSolver
from jaxopt_lab.solvers.first_order._state import CompositeState


class MirrorDescentState(CompositeState):
    """State of :class:`MirrorDescent`.

    Attributes:
      iter_num: iterations done.
      error: ``||x+ - x|| / stepsize`` of the last step.
      value: ``f`` at the point the last gradient was taken.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    __slots__ = ()


def projection_grad_simplex_kl(x: jax.Array, grad: jax.Array, stepsize: Any, value: Any = None) -> jax.Array:
    """Entropic mirror step onto the simplex ``{x >= 0, sum x = value}`` (exponentiated gradient).

    The mirror map is ``grad h(x) = log x`` (negative entropy); the KL projection of
    ``exp(log x - stepsize * grad)`` onto the simplex is a rescaling, so the step is
    ``value * softmax(log x - stepsize * grad)``.

    Args:
      x: current point, entries > 0.
      grad: gradient of the objective at ``x``.
      stepsize: step size.
      value: total mass of the simplex (``None`` means 1).

    Returns:
      The next point, on the simplex.

    References:
      Beck and Teboulle, "Mirror descent and nonlinear projected subgradient methods for
      convex optimization", Oper. Res. Lett., 2003.
    """
    value = 1.0 if value is None else value
    return value * jax.nn.softmax(jnp.log(x) - stepsize * grad, axis=-1)


@dataclasses.dataclass(eq=False)
class MirrorDescent(FirstOrderSolver):
    """Mirror descent ``x+ = projection_grad(x, grad f(x), stepsize, hyperparams_proj)``.

    ``projection_grad`` is the whole mirror step: map ``x`` to the dual space with the
    mirror map ``grad h``, take the gradient step there and come back through the Bregman
    projection onto the feasible set, ``x+ = argmin_{z in C} D_h(z, (grad h)^{-1}(grad h(x)
    - stepsize * g))``. :meth:`make_projection_grad` builds it from a projection and a mirror
    map; :func:`projection_grad_simplex_kl` is the entropic step on the simplex.

    Args:
      fun: smooth objective ``fun(params, *args, **kwargs)``.
      projection_grad: ``projection_grad(x, g, stepsize, hyperparams_proj)``.
      stepsize: positive step (may be traced) or a callable ``iter_num -> stepsize``.
      maxiter: maximum iterations.
      tol: stop when ``||x+ - x|| / stepsize <= tol``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default: normal CG on the
        fixed point ``x = projection_grad(x, grad f(x), 1, hyperparams_proj)``).

    Returns:
      ``run(init_params, hyperparams_proj, *args, **kwargs)`` returns
      ``OptStep(params, MirrorDescentState)``.

    References:
      Nemirovski and Yudin, "Problem complexity and method efficiency in optimization",
      1983; Beck and Teboulle, "Mirror descent and nonlinear projected subgradient methods
      for convex optimization", Oper. Res. Lett., 2003.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "projection_grad", "stepsize", "maxiter", "tol", "verbose", "implicit_diff",
        "implicit_diff_solve", "has_aux", "jit", "unroll",
    )
    # jaxopt's named leading run arguments (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("hyperparams_proj",)

    _state_cls = MirrorDescentState
    _hyperparams_name = "hyperparams_proj"

    fun: Callable
    projection_grad: Callable
    stepsize: float | jax.Array | Callable
    _: dataclasses.KW_ONLY
    maxiter: int = 500
    tol: float = 1e-2

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.projection_grad, "projection_grad")
        if not callable(self.stepsize):
            check_positive(self.stepsize, "stepsize")

    @staticmethod
    def make_projection_grad(projection: Callable, mapping_fun: Callable) -> Callable:
        """A mirror step from a projection and a mirror map.

        Args:
          projection: ``projection(y, hyperparams_proj)``, the Bregman projection of the
            dual point ``y`` back onto the feasible set.
          mapping_fun: the mirror map ``grad h``.

        Returns:
          ``projection_grad(x, g, stepsize, hyperparams_proj) =
          projection(mapping_fun(x) - stepsize * g, hyperparams_proj)``.

        References:
          Beck and Teboulle, 2003 (see the class docstring).
        """
        def projection_grad(x, g, stepsize, hyperparams_proj):
            return projection(tu.tree_add_scalar_mul(mapping_fun(x), -stepsize, g), hyperparams_proj)
        return projection_grad

    def init_state(self, init_params, hyperparams_proj, *args, **kwargs) -> MirrorDescentState:
        """Evaluate ``fun`` at ``init_params``.

        Args:
          init_params: initial (feasible) point.
          hyperparams_proj: hyperparameters of ``projection_grad`` (unused here).
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`MirrorDescentState`.
        """
        del hyperparams_proj
        (value, aux), _ = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return self._state(jnp.asarray(0, jnp.int32), jnp.inf, value, aux, dtype)

    def update(self, params, state: MirrorDescentState, hyperparams_proj, *args, **kwargs) -> OptStep:
        """One mirror step.

        Args:
          params: current point.
          state: current :class:`MirrorDescentState`.
          hyperparams_proj: hyperparameters of ``projection_grad``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        dtype = jnp.result_type(value)
        size = self.stepsize(state.iter_num) if callable(self.stepsize) else self.stepsize
        t = jnp.asarray(size, dtype)
        x_next = self.projection_grad(params, grad, t, hyperparams_proj)
        error = tu.tree_l2_norm(tu.tree_sub(x_next, params)) / t
        return OptStep(x_next, self._state(state.iter_num + 1, error, value, aux, dtype))

    def _unit_step(self, x, g, hp):
        return self.projection_grad(x, g, 1.0, hp)
