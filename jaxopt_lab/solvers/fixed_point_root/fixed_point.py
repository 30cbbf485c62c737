"""Plain fixed-point iteration ``x_{k+1} = T(x_k)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.fixed_point_root._step import (
    FixedPointSolver,
    params_dtype,
    rounding_limited,
    split_aux,
)

__all__ = ["FixedPointIteration", "FixedPointState", "params_dtype", "split_aux"]


class FixedPointState(NamedTuple):
    """State of :class:`FixedPointIteration`.

    Attributes:
      iter_num: iterations done.
      error: ``||T(x_prev) - x_prev||`` for the last map evaluation.
      aux: auxiliary output of ``fixed_point_fun``.
      num_fun_eval: evaluations of the map so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    aux: Any
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class FixedPointIteration(FixedPointSolver):
    """Iterate a map ``T`` until ``||T(x) - x|| <= tol``.

    Converges linearly when ``T`` is a contraction (Banach). The implicit
    derivatives of the fixed point solve ``(I - dT/dx) dx = dT/dtheta``; since
    ``dT/dx`` is not symmetric in general, the default linear solver is
    :func:`jaxopt_lab.linalg.linear_solve.solve_normal_cg`.

    Args:
      fixed_point_fun: ``T(params, *args, **kwargs)`` returning a pytree like
        ``params`` (or ``(params, aux)`` with ``has_aux``).
      maxiter: maximum iterations.
      tol: stop when ``||T(x) - x|| <= tol``. ``CONVERGED`` needs ``tol`` above the
        rounding of the iterate, ``eps * ||T(x)||`` (``eps`` of the params' dtype): below
        it a residual read as ``<= tol`` (typically 0 once ``T(x)`` rounds to ``x``)
        cannot tell a fixed point from a step lost to rounding, and the solve ends
        ``STALLED``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, FixedPointState)``.

    References:
      Banach, "Sur les operations dans les ensembles abstraits et leur application
      aux equations integrales", 1922; Blondel et al., "Efficient and Modular Implicit
      Differentiation", 2021 (arXiv:2105.15183).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fixed_point_fun", "maxiter", "tol", "has_aux", "verbose", "implicit_diff",
        "implicit_diff_solve", "jit", "unroll",
    )

    fixed_point_fun: Callable
    _: dataclasses.KW_ONLY

    def init_state(self, init_params, *args, **kwargs) -> FixedPointState:
        """A state with infinite error (nothing evaluated yet).

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fixed_point_fun`` (used for the aux shape).

        Returns:
          A :class:`FixedPointState`.
        """
        aux = None
        if self.has_aux:
            aux = jax.eval_shape(lambda p: self.fixed_point_fun(p, *args, **kwargs)[1], init_params)
            aux = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), aux)
        return FixedPointState(
            iter_num=jnp.asarray(0, jnp.int32),
            error=jnp.asarray(jnp.inf, params_dtype(init_params)), aux=aux,
            num_fun_eval=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: FixedPointState, *args, **kwargs) -> OptStep:
        """One application of the map.

        Args:
          params: current point.
          state: current :class:`FixedPointState`.
          *args, **kwargs: passed to ``fixed_point_fun``.

        Returns:
          ``OptStep(T(params), state)``.
        """
        new_params, aux = self._map(params, args, kwargs)
        dtype = state.error.dtype
        error = tu.tree_l2_norm(tu.tree_sub(new_params, params)).astype(dtype)
        status = jnp.where(rounding_limited(error, self.tol, new_params), Status.STALLED,
                           state.status).astype(jnp.int32)
        new_state = FixedPointState(state.iter_num + 1, error, aux, state.num_fun_eval + 1, status)
        return OptStep(new_params, new_state)
