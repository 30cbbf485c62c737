"""Gauss-Newton for nonlinear least squares ``min 0.5 ||r(x)||^2``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.least_squares._step import (
    LeastSquaresSolver,
    half_squared_norm,
)


class GaussNewtonState(NamedTuple):
    """State of :class:`GaussNewton`.

    Attributes:
      iter_num: iterations done.
      value: ``0.5 ||r(params)||^2``.
      error: norm of the gradient ``J^T r`` at ``params``.
      residual: ``r(params)``.
      delta: last step taken.
      gradient: ``J^T r`` at ``params``.
      aux: auxiliary output of ``residual_fun``.
      num_fun_eval: residual evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    residual: Any
    delta: Any
    gradient: Any
    aux: Any
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class GaussNewton(LeastSquaresSolver):
    """Gauss-Newton: each step solves the linearized problem ``min ||r + J d||``.

    The step solves the normal equations ``J^T J d = -J^T r`` matrix-free by
    conjugate gradients (one JVP and one VJP per CG iteration), so parameters and
    residuals may be any pytrees. There is no globalization: use
    :class:`LevenbergMarquardt` when far from a solution or when ``J`` is rank
    deficient.

    Args:
      residual_fun: ``r(params, *args, **kwargs)`` returning a pytree of residuals
        (or ``(residuals, aux)`` with ``has_aux``).
      maxiter: maximum iterations.
      tol: stop when ``||J^T r|| <= tol``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, GaussNewtonState)``. Its implicit derivatives
      come from the optimality condition ``J^T r = 0``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, section 10.3;
      Bjorck, "Numerical Methods for Least Squares Problems", 1996.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "residual_fun", "maxiter", "tol", "implicit_diff", "implicit_diff_solve", "has_aux", "verbose",
        "jit", "unroll",
    )

    _: dataclasses.KW_ONLY
    maxiter: int = 30
    tol: float = 1e-5

    def _state(self, params, r, aux, g, delta, iter_num, nfev):
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(r))
        return GaussNewtonState(
            iter_num=jnp.asarray(iter_num, jnp.int32),
            value=half_squared_norm(r, dtype),
            error=tu.tree_l2_norm(g).astype(dtype), residual=r, delta=delta, gradient=g,
            aux=aux, num_fun_eval=jnp.asarray(nfev, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def init_state(self, init_params, *args, **kwargs) -> GaussNewtonState:
        """Evaluate the residual and ``J^T r`` at ``init_params``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``residual_fun``.

        Returns:
          A :class:`GaussNewtonState`.
        """
        r, aux, _, vjp = self._linearize(init_params, args, kwargs)
        return self._state(init_params, r, aux, vjp(r), tu.tree_zeros_like(init_params), 0, 1)

    def update(self, params, state: GaussNewtonState, *args, **kwargs) -> OptStep:
        """One Gauss-Newton step.

        Args:
          params: current point.
          state: current :class:`GaussNewtonState`.
          *args, **kwargs: passed to ``residual_fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        _, _, jvp, vjp = self._linearize(params, args, kwargs)
        delta = ls.solve_cg(lambda v: vjp(jvp(v)), tu.tree_negative(state.gradient),
                            unroll=self._unrolled())
        new_params = tu.tree_add(params, delta)
        r, aux, _, vjp = self._linearize(new_params, args, kwargs)
        new_state = self._state(new_params, r, aux, vjp(r), delta, state.iter_num + 1,
                                state.num_fun_eval + 1)
        return OptStep(new_params, new_state)
