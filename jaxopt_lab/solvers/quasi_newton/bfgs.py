"""BFGS with a dense inverse-Hessian approximation and a strong-Wolfe line search."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from jaxopt_lab.solvers.quasi_newton._dense import DenseApprox, DenseQuasiNewton
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonState

BfgsApprox = DenseApprox  # BFGS's approximation (its name in earlier releases)
BfgsState = QuasiNewtonState  # BFGS's state (its name in earlier releases and in jaxopt)


@dataclasses.dataclass(eq=False, kw_only=True)
class BFGS(DenseQuasiNewton):
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
      ``run`` returns an ``OptStep(params, QuasiNewtonState)`` (``BfgsState``; ``state.H``
      is the inverse-Hessian approximation).

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

    def _inverse_update(self, H, s, y, sy):
        rho = 1.0 / sy
        V = jnp.eye(s.shape[0], dtype=H.dtype) - rho * jnp.outer(s, y)
        return V @ H @ V.T + rho * jnp.outer(s, s)
