"""Gradient-regularized Newton method with exact or approximate Hessians."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_positive
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.newton._step import NewtonSolver


class RegularizedNewtonState(NamedTuple):
    """State of :class:`RegularizedNewton`.

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      error: gradient norm.
      regularization: the last ``sqrt(hessian_lipschitz * ||g||)``.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    error: jax.Array
    regularization: jax.Array
    aux: Any
    status: jax.Array


@dataclasses.dataclass(eq=False)
class ApproxHessianNewton(NewtonSolver):
    """Base of the regularized Newton solvers: the choice of curvature ``H`` (private).

    ``H`` is the exact Hessian (``hessian="exact"``), the Gauss-Newton matrix ``J^T J`` of
    ``residual_fun`` or the empirical Fisher ``(1/n) J^T J`` of ``per_example_fun``;
    ``_matvec`` returns ``v -> H v`` at a point, and ``(H + lam I) s = g`` is solved by CG.

    Attributes:
      fun: the objective.
      hessian: ``"exact"``, ``"gauss_newton"`` or ``"fisher"`` (static).
      residual_fun: residuals for ``"gauss_newton"``.
      per_example_fun: per-example losses for ``"fisher"``.
      cg_tol: relative CG tolerance.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    hessian: str = "exact"
    residual_fun: Callable | None = None
    per_example_fun: Callable | None = None
    cg_tol: float = 1e-10

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.cg_tol, "cg_tol")
        needs = {"exact": None, "gauss_newton": "residual_fun", "fisher": "per_example_fun"}
        if self.hessian not in needs:
            raise ValueError(f"`hessian` must be one of {sorted(needs)}, got {self.hessian!r}.")
        if needs[self.hessian] is not None:
            check_callable(getattr(self, needs[self.hessian]), needs[self.hessian])

    def _matvec(self, params, args, kwargs) -> Callable:
        if self.hessian == "exact":
            grad = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)[1]
            return jax.linearize(grad, params)[1]
        f = self.residual_fun if self.hessian == "gauss_newton" else self.per_example_fun
        out, jvp = jax.linearize(lambda x: f(x, *args, **kwargs), params)
        vjp = jax.linear_transpose(jvp, params)
        n = 1 if self.hessian == "gauss_newton" else jnp.size(out)
        return lambda v: tu.tree_scalar_mul(1.0 / n, vjp(jvp(v))[0])

    def _solve_shifted(self, matvec, grad, lam):
        """``(H + lam I)^{-1} grad`` by CG."""
        return ls.solve_cg(matvec, grad, ridge=lam, tol=self.cg_tol, maxiter=self.cg_maxiter,
                           unroll=self._unrolled())


@dataclasses.dataclass(eq=False)
class RegularizedNewton(ApproxHessianNewton):
    """Newton steps regularized by the square root of the gradient norm.

    ``x+ = x - (H + sqrt(L ||g||) I)^{-1} g`` with ``L = hessian_lipschitz``
    (an estimate of the Hessian's Lipschitz constant); the system is solved
    matrix-free by CG. The regularization vanishes at a solution, so the local
    rate is superlinear (order 3/2), while the step stays globally convergent on
    convex problems without a line search. ``H`` is one of:

    - ``"exact"``: Hessian of ``fun`` (forward-over-reverse HVPs);
    - ``"gauss_newton"``: ``J^T J`` with ``J`` the Jacobian of
      ``residual_fun(params, *args, **kwargs)`` (for ``fun = 0.5 ||r||^2``);
    - ``"fisher"``: empirical Fisher ``(1/n) J^T J`` with ``J`` the Jacobian of the
      per-example losses ``per_example_fun(params, *args, **kwargs)`` (``(n,)``).

    Approximate Hessians must be positive semi-definite, as both are.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` (or ``(value, aux)`` with ``has_aux``).
      hessian: ``"exact"``, ``"gauss_newton"`` or ``"fisher"`` (static).
      residual_fun: residuals for ``"gauss_newton"``.
      per_example_fun: per-example losses for ``"fisher"``.
      hessian_lipschitz: ``L > 0`` (traced).
      cg_maxiter: CG iterations per step (static).
      cg_tol: relative CG tolerance.
      maxiter, tol, has_aux, implicit_diff, implicit_diff_solve, jit, unroll,
        verbose: see :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, RegularizedNewtonState)``.

    References:
      Mishchenko, "Regularized Newton Method with Global O(1/k^2) Convergence",
      2021 (arXiv:2112.02089); Doikov and Nesterov, "Gradient Regularization of
      Newton Method with Bregman Distances", 2021 (arXiv:2112.02952).
    """

    _state_cls = RegularizedNewtonState

    _: dataclasses.KW_ONLY
    hessian_lipschitz: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.hessian_lipschitz, "hessian_lipschitz")

    def _extra_init(self, dtype) -> dict:
        return dict(regularization=jnp.zeros([], dtype))

    def _newton_step(self, params, state: RegularizedNewtonState, args, kwargs):
        """The full step ``-(H + lam I)^{-1} g`` with ``lam = sqrt(L ||g||)`` (no line search)."""
        lam = jnp.sqrt(self.hessian_lipschitz * state.error)
        step = self._solve_shifted(self._matvec(params, args, kwargs), state.grad, lam)
        new = tu.tree_sub(params, step)
        return (new, self._value_and_grad_fun()(new, *args, **kwargs), False,
                dict(regularization=lam.astype(state.error.dtype)))
