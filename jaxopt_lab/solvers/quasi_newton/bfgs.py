"""BFGS with a dense inverse-Hessian approximation and a strong-Wolfe line search."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.solvers.quasi_newton._step import (
    QuasiNewtonSolver,
    QuasiNewtonState,
    curvature_pair,
    first_stepsize,
)


class BfgsApprox(NamedTuple):
    """BFGS's Hessian approximation.

    Attributes:
      H: dense inverse-Hessian approximation, shape ``(n, n)`` for ``n`` parameters.
    """

    H: jax.Array


class BfgsState(QuasiNewtonState):
    """State of :class:`BFGS`: a :class:`QuasiNewtonState` whose ``approx`` is a
    :class:`BfgsApprox` (``state.H`` reads the inverse-Hessian approximation).

    Attributes:
      iter_num, value, grad, stepsize, error, approx, aux, failed_linesearch, num_fun_eval,
      num_grad_eval, num_linesearch_iter, status, num_no_progress: as in
        :class:`QuasiNewtonState`.
    """

    __slots__ = ()


@dataclasses.dataclass(eq=False, kw_only=True)
class BFGS(QuasiNewtonSolver):
    """The Broyden-Fletcher-Goldfarb-Shanno quasi-Newton method.

    Keeps a dense inverse-Hessian approximation ``H``, steps along ``-H g`` with a
    line search and updates ``H`` by the BFGS formula
    ``H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T`` (Nocedal and Wright,
    eq. 6.17), skipping pairs with ``<s, y> <= 0``. ``H`` is scaled by
    ``<s, y> / <y, y>`` before the first update (eq. 6.20).

    Args:
      fun: objective ``fun(params, *args, **kwargs)``, real-valued; params may be complex
        (as in :class:`jaxopt_lab.LBFGS`).
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.
      stepsize, linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize: the line-search options of
        :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions` (``stepsize > 0``
        fixes the step; the first trial step is 1, the quasi-Newton step).

    Returns:
      ``run`` returns an ``OptStep(params, BfgsState)``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, Algorithm 6.1;
      Fletcher, "A new approach to variable metric algorithms", 1970.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "stepsize", "linesearch",
        "linesearch_init", "condition", "maxls", "decrease_factor", "increase_factor", "max_stepsize",
        "min_stepsize", "implicit_diff", "implicit_diff_solve", "jit", "unroll", "verbose",
    )

    maxiter: int = 500
    tol: float = 1e-3

    _state_class = BfgsState

    def _init_approx(self, x, value, grad) -> BfgsApprox:
        n = ravel_pytree(x)[0].shape[0]
        return BfgsApprox(jnp.eye(n, dtype=jnp.result_type(value)))

    def _direction(self, x, grad, state, ctx):
        g_flat, unravel = ravel_pytree(grad)
        H = state.approx.H
        d_flat = -(H @ g_flat.astype(H.dtype))
        d_flat = jnp.where(jnp.dot(d_flat, g_flat) < 0, d_flat, -g_flat)  # not descent: -g
        first = state.iter_num == 0
        init_t = jnp.where(first, first_stepsize(state.error, H.dtype), 1.0)
        return unravel(d_flat.astype(g_flat.dtype)), init_t

    def _update_approx(self, state, x, grad, direction, ls, x_new) -> BfgsApprox:
        H = state.approx.H
        dtype = H.dtype
        s, y, sy, yy, good = curvature_pair(x, x_new, grad, ls.grad, ls.failed, dtype)
        s, y = ravel_pytree(s)[0].astype(dtype), ravel_pytree(y)[0].astype(dtype)
        eye = jnp.eye(s.shape[0], dtype=dtype)
        rho = 1.0 / jnp.where(good, sy, 1.0)
        H0 = jnp.where(state.iter_num == 0, sy / jnp.where(good, yy, 1.0) * eye, H)
        V = eye - rho * jnp.outer(s, y)
        return BfgsApprox(jnp.where(good, V @ H0 @ V.T + rho * jnp.outer(s, s), H))
