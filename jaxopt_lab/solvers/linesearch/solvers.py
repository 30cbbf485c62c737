"""Public line-search classes with jaxopt's ``run`` signature."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive
from jaxopt_lab.core.solver import JaxoptPositional
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class LineSearchState(NamedTuple):
    """State returned by a line search's ``run``.

    Attributes:
      iter_num: evaluations made.
      params: ``x + t d`` at the accepted step.
      value, grad, aux: ``fun`` at ``params``.
      failed: no acceptable step was found (``stepsize`` is then 0).
      error: 0 when accepted, 1 when failed.
      num_fun_eval, num_grad_eval: evaluation counts.
      status: :class:`jaxopt_lab.Status` (``CONVERGED`` or ``LINESEARCH_FAILED``).
    """

    iter_num: jax.Array
    params: Any
    value: jax.Array
    grad: Any
    aux: Any
    failed: jax.Array
    error: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class _LineSearch(JaxoptPositional):
    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 30
    tol: float = 0.0
    c1: float = 1e-4
    c2: float = 0.9
    max_stepsize: float = 1.0
    verbose: bool = False
    jit: bool = True
    unroll: bool | str = "auto"

    def __post_init__(self):
        check_callable(self.fun, "fun")
        check_int(self.maxiter, "maxiter", minimum=1)
        check_positive(self.c1, "c1")
        check_positive(self.c2, "c2")
        check_positive(self.max_stepsize, "max_stepsize")

    def _vg(self, fun_args, fun_kwargs):
        """``x -> ((value, aux), grad)`` whatever ``fun`` returns."""
        f = lambda x: self.fun(x, *fun_args, **fun_kwargs)
        if self.value_and_grad:
            def vg(x):
                out, g = f(x)
                return (out if self.has_aux else (out, None)), g
            return vg
        if self.has_aux:
            return jax.value_and_grad(f, has_aux=True)
        return lambda x: (lambda r: ((r[0], None), r[1]))(jax.value_and_grad(f)(x))

    def _search(self, vg, params, value, grad, direction, t0, aux):
        return _linesearch.strong_wolfe(vg, params, value, grad, direction, t0, aux, c1=self.c1, c2=self.c2,
                                        maxls=self.maxiter, max_stepsize=self.max_stepsize)

    def run(self, init_stepsize, params, value=None, grad=None, descent_direction=None,
            fun_args: tuple | list = (), fun_kwargs: dict | None = None) -> OptStep:
        """Search along ``descent_direction`` (default ``-grad``) from ``params``.

        Args:
          init_stepsize: first trial step.
          params: current point.
          value, grad: ``fun`` and its gradient at ``params`` (computed if None).
          descent_direction: search direction.
          fun_args, fun_kwargs: extra arguments of ``fun``.

        Returns:
          ``OptStep(stepsize, LineSearchState)``.
        """
        vg = self._vg(tuple(fun_args), dict(fun_kwargs or {}))
        aux = None
        if value is None or grad is None:
            (value, aux), grad = vg(params)
        direction = tu.tree_negative(grad) if descent_direction is None else descent_direction
        t0 = jnp.minimum(jnp.asarray(init_stepsize, jnp.result_type(value)), self.max_stepsize)
        r = self._search(vg, params, value, grad, direction, t0, aux)
        status = jnp.where(r.failed, Status.LINESEARCH_FAILED, Status.CONVERGED).astype(jnp.int32)
        state = LineSearchState(
            iter_num=jnp.asarray(r.num_evals, jnp.int32), params=r.params, value=r.value, grad=r.grad,
            aux=r.aux, failed=r.failed, error=r.failed.astype(jnp.result_type(value)),
            num_fun_eval=jnp.asarray(r.num_evals, jnp.int32),
            num_grad_eval=jnp.asarray(r.num_evals, jnp.int32), status=status,
        )
        return OptStep(r.stepsize, state)


@dataclasses.dataclass(eq=False)
class BacktrackingLineSearch(_LineSearch):
    """Backtracking: ``t, t * decrease_factor, ...`` until sufficient decrease (Armijo).

    ``condition="armijo"`` accepts on
    ``f(x + t d) <= f(x) + c1 t <g, d>``; the Wolfe variants (``"wolfe"``,
    ``"strong-wolfe"``, jaxopt's default) use the bracketing zoom of
    :class:`ZoomLineSearch` instead, so the accepted step satisfies them.

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      condition: ``"armijo"``, ``"wolfe"`` or ``"strong-wolfe"``.
      c1, c2: sufficient-decrease and curvature constants.
      decrease_factor: shrink factor in ``(0, 1)``.
      max_stepsize: largest step.

    Returns:
      ``run`` returns ``OptStep(stepsize, LineSearchState)``.

    References:
      Armijo, "Minimization of functions having Lipschitz continuous first
      partial derivatives", Pacific J. Math., 1966.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "condition", "c1", "c2",
        "decrease_factor", "max_stepsize", "verbose", "jit", "unroll",
    )

    condition: str = "strong-wolfe"
    decrease_factor: float = 0.8

    def __post_init__(self):
        super().__post_init__()
        if self.condition not in ("armijo", "wolfe", "strong-wolfe"):
            raise ValueError("`condition` must be 'armijo', 'wolfe' or 'strong-wolfe', "
                             f"got {self.condition!r}.")

    def _search(self, vg, params, value, grad, direction, t0, aux):
        if self.condition == "armijo":
            return _linesearch.backtracking(vg, params, value, grad, direction, t0, aux, c1=self.c1,
                                            decrease_factor=self.decrease_factor, maxls=self.maxiter)
        return super()._search(vg, params, value, grad, direction, t0, aux)


@dataclasses.dataclass(eq=False)
class ZoomLineSearch(_LineSearch):
    """Bracketing-and-zoom search for the strong Wolfe conditions.

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      c1, c2: Wolfe constants ``0 < c1 < c2 < 1``.
      max_stepsize: largest step.

    Returns:
      ``run`` returns ``OptStep(stepsize, LineSearchState)``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2006, Algorithms 3.5-3.6.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "c1", "c2", "c3", "rel_tol_cubic", "rel_tol_quad",
        "interval_threshold", "increase_factor", "tol", "maxiter", "max_stepsize", "verbose", "jit",
        "unroll",
    )


@dataclasses.dataclass(eq=False)
class HagerZhangLineSearch(_LineSearch):
    """Line search with Hager and Zhang's approximate Wolfe conditions.

    Accepts a step satisfying the Wolfe conditions or, where ``f`` changes by less
    than its rounding error, the approximate Wolfe test
    ``(2 c1 - 1) phi'(0) >= phi'(t) >= c2 phi'(0)``. Trial steps come from the same
    bracketing and safeguarded cubic interpolation as :class:`ZoomLineSearch`
    (not Hager-Zhang's secant updates).

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      c1, c2: constants (jaxopt's defaults ``0.1`` and ``0.9``).
      max_stepsize: largest step.

    Returns:
      ``run`` returns ``OptStep(stepsize, LineSearchState)``.

    References:
      Hager and Zhang, "A new conjugate gradient method with guaranteed descent
      and an efficient line search", SIAM J. Optim., 2005.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "c1", "c2", "expansion_factor",
        "shrinkage_factor", "max_stepsize", "verbose", "jit", "unroll",
    )

    c1: float = 0.1
