"""DFP: the Davidon-Fletcher-Powell inverse-Hessian update on the dense quasi-Newton step."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_lab.solvers.quasi_newton._dense import DenseQuasiNewton


@dataclasses.dataclass(eq=False, kw_only=True)
class DFP(DenseQuasiNewton):
    """The Davidon-Fletcher-Powell quasi-Newton method.

    Keeps a dense inverse-Hessian approximation ``H``, steps along ``-H g`` with a line
    search and updates ``H`` by the DFP formula
    ``H+ = H + s s^T / <s, y> - H y y^T H / <y, H y>`` (Nocedal and Wright, eq. 6.15),
    the dual of BFGS's update, skipping pairs with ``<s, y> <= eps <y, y>``. ``H`` is
    scaled by ``<s, y> / <y, y>`` before the first update (eq. 6.20). With exact line
    searches on a strictly convex quadratic it ends at the minimizer in at most ``n``
    iterations, as BFGS does; with inexact searches it corrects a too-large ``H`` more
    slowly than BFGS (Nocedal and Wright, section 6.1), so its line search is stricter.

    Args:
      fun: objective ``fun(params, *args, **kwargs)``, real-valued (params may be complex).
      value_and_grad, has_aux, maxiter, tol: as in :class:`jaxopt_lab.BFGS` (stop when the
        gradient norm is ``<= tol``).
      c2: the strong-Wolfe curvature constant (0.1; with BFGS's 0.9, DFP has not solved the
        4-d Rosenbrock problem after 2,000 iterations; with 0.1 it takes 35).
      stepsize, linesearch, linesearch_init, condition, maxls, c1, decrease_factor,
        increase_factor, max_stepsize, min_stepsize, implicit_diff, implicit_diff_solve, jit,
        unroll, verbose: as in :class:`jaxopt_lab.BFGS`.

    Returns:
      ``run`` returns an ``OptStep(params, QuasiNewtonState)``; ``state.H`` is the
      inverse-Hessian approximation.

    References:
      Fletcher, "Practical Methods of Optimization", 2nd ed., Wiley, 1987, chapter 3;
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, section 6.1.
    """

    c2: float = 0.1

    def _inverse_update(self, H: jax.Array, s: jax.Array, y: jax.Array, sy: jax.Array) -> jax.Array:
        Hy = H @ y
        yHy = jnp.dot(y, Hy)
        ok = yHy > 0  # true for H positive definite and y != 0; H is kept if rounding says otherwise
        new = H + jnp.outer(s, s) / sy - jnp.outer(Hy, Hy) / jnp.where(ok, yHy, 1.0)
        return jnp.where(ok, new, H)
