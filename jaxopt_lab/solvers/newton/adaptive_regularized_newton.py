"""Gradient-regularized Newton with an adaptive, universal regularization (no constant needed)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.control import bounded_while_loop
from jaxopt_lab.solvers.newton.regularized_newton import ApproxHessianNewton


class AdaptiveRegularizedNewtonState(NamedTuple):
    """State of :class:`AdaptiveRegularizedNewton`.

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      error: gradient norm.
      regularization: ``lam = ||g|| / gamma`` of the last accepted step.
      gamma: the current estimate of the gradient-normalized smoothness (the radius
        the next step starts its search from).
      num_fun_eval: trial points evaluated so far (one ``fun`` and gradient each).
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    error: jax.Array
    regularization: jax.Array
    gamma: jax.Array
    num_fun_eval: jax.Array
    aux: Any
    status: jax.Array


def accept_step(value, new_value, new_grad_sqnorm, lam):
    """The acceptance test of the adaptive search: ``f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lam)``.

    Args:
      value: ``f(x)``.
      new_value: ``f(x+)``.
      new_grad_sqnorm: ``||grad f(x+)||^2``.
      lam: the regularization ``||grad f(x)|| / gamma`` the step was computed with.

    Returns:
      A boolean (False for non-finite trial values). The decrease is credited with the
      rounding error of the two values (``4 eps max(|f(x)|, |f(x+)|)``), so that in
      float32 the search does not fail once ``f`` stops resolving progress.

    References:
      Semenov, Jaggi and Doikov, "Gradient-Normalized Smoothness for Optimization with
      Approximate Hessians", 2025 (arXiv:2506.13710), Algorithm 1.
    """
    eps = jnp.finfo(jnp.result_type(new_value)).eps
    slack = 4 * eps * jnp.maximum(jnp.abs(value), jnp.abs(new_value))
    return (value - new_value + slack) * (8.0 * lam) >= new_grad_sqnorm


@dataclasses.dataclass(eq=False)
class AdaptiveRegularizedNewton(ApproxHessianNewton):
    """Gradient-regularized Newton steps with an adaptive search on the regularization.

    ``x+ = x - (H + lam I)^{-1} g`` with ``lam = ||g|| / gamma``, where ``gamma`` estimates
    the *gradient-normalized smoothness* at ``x``: the radius of the ball on which
    ``H`` linearizes the gradient field well relative to ``||g||``. Each iteration tries
    ``gamma`` (starting from twice the last accepted value) and halves it until the
    trial point passes :func:`accept_step`, ``f(x) - f(x+) >= ||grad f(x+)||^2 / (8 lam)``.
    No Lipschitz constant is needed: the same method adapts to Hessians that are
    Lipschitz or Hölder continuous, quasi-self-concordant or merely bounded, and to
    approximate curvature (Gauss-Newton, Fisher), where :class:`RegularizedNewton` needs
    a user-supplied ``L`` and is slow when it is conservative. ``H`` and the CG solve are
    as in :class:`RegularizedNewton`.

    A step whose search exhausts ``max_search`` trials is not taken and the state gets
    ``Status.LINESEARCH_FAILED``.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` (or ``(value, aux)`` with ``has_aux``).
      hessian: ``"exact"``, ``"gauss_newton"`` or ``"fisher"`` (static).
      residual_fun: residuals for ``"gauss_newton"``.
      per_example_fun: per-example losses for ``"fisher"``.
      gamma_init: first ``gamma > 0`` tried (traced).
      max_search: trials per iteration (static).
      cg_maxiter: CG iterations per trial (static).
      cg_tol: relative CG tolerance.
      maxiter, tol, has_aux, implicit_diff, implicit_diff_solve, jit, unroll,
        verbose: see :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, AdaptiveRegularizedNewtonState)``.

    References:
      Semenov, Jaggi and Doikov, "Gradient-Normalized Smoothness for Optimization with
      Approximate Hessians", 2025 (arXiv:2506.13710), Algorithm 1; Doikov and Nesterov,
      "Gradient Regularization of Newton Method with Bregman Distances", 2021
      (arXiv:2112.02952).
    """

    _state_cls = AdaptiveRegularizedNewtonState

    _: dataclasses.KW_ONLY
    gamma_init: float = 1.0
    max_search: int = 40

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.gamma_init, "gamma_init")
        check_int(self.max_search, "max_search", minimum=1)

    def _extra_init(self, dtype) -> dict:
        return dict(regularization=jnp.zeros([], dtype), gamma=jnp.asarray(self.gamma_init, dtype),
                    num_fun_eval=jnp.asarray(1, jnp.int32))

    def _newton_step(self, params, state: AdaptiveRegularizedNewtonState, args, kwargs):
        """Search ``gamma, gamma/2, gamma/4, ...`` until :func:`accept_step` holds."""
        matvec = self._matvec(params, args, kwargs)  # linearized once, shared by the trials
        vg = self._value_and_grad_fun()
        dtype = state.error.dtype

        def trial(c):
            gamma, k, _, _, _, _, _ = c
            lam = state.error / gamma
            new = tu.tree_sub(params, self._solve_shifted(matvec, state.grad, lam))
            (value, aux), grad = vg(new, *args, **kwargs)
            ok = accept_step(state.value, value, tu.tree_l2_norm(grad, squared=True), lam)
            # Accepted: the next iteration starts from 2 gamma; rejected: retry with gamma / 2.
            gamma = jnp.where(ok, 2.0 * gamma, 0.5 * gamma).astype(dtype)
            return gamma, k + 1, ok, new, (value, aux), grad, lam.astype(dtype)

        keep = lambda c: (c[1] < self.max_search) & ~c[2]
        c0 = (state.gamma, jnp.asarray(0, jnp.int32), jnp.asarray(False), params,
              (state.value, state.aux), state.grad, state.regularization)
        gamma, k, ok, new, value_aux, grad, lam = bounded_while_loop(keep, trial, c0, self.max_search,
                                                                     unroll=self._unrolled())
        # All trials rejected: stay at params (with its value and gradient) and report it.
        pick = lambda a, b: jax.tree_util.tree_map(lambda u, v: jnp.where(ok, u, v), a, b)
        new = pick(new, params)
        value_aux, grad = pick((value_aux, grad), ((state.value, state.aux), state.grad))
        gamma = jnp.where(ok, gamma, state.gamma)
        return new, (value_aux, grad), ~ok, dict(regularization=lam, gamma=gamma,
                                                   num_fun_eval=state.num_fun_eval + k)
