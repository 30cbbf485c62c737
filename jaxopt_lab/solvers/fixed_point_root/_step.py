"""What the solvers iterating a map ``x = T(x)`` share (FixedPointIteration,
AndersonAcceleration): options, argument checks, the implicit solve and the residual."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.linalg import linear_solve as ls


def split_aux(out, has_aux: bool):
    """``(value, aux)`` from a function output, ``aux=None`` without ``has_aux``.

    Args:
      out: the function's output: ``(value, aux)`` with ``has_aux``, else the value.
      has_aux: whether ``out`` carries auxiliary data.

    Returns:
      The pair ``(value, aux)``.
    """
    return out if has_aux else (out, None)


def params_dtype(params):
    """Floating dtype shared by the leaves of ``params`` (float32 for integer leaves).

    Args:
      params: a pytree of arrays with at least one leaf.

    Returns:
      ``jnp.result_type`` of all leaves when it is inexact (floating or complex), else
      ``jnp.float32``.
    """
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.float32


def rounding_limited(error, tol, new_params) -> jax.Array:
    """Whether a residual ``error = ||T(x) - x|| <= tol`` is below what rounding resolves.

    ``T(x)`` is stored with a rounding error up to ``eps ||T(x)||`` (``eps`` of its dtype),
    so when ``tol`` is below that the residual read (often exactly 0: ``T(x)`` rounded to
    ``x``) does not certify ``||T(x) - x|| <= tol``; the solver reports ``STALLED``.

    Args:
      error: the residual norm read, a scalar.
      tol: the tolerance.
      new_params: ``T(x)``, a pytree of arrays.

    Returns:
      A boolean scalar array.
    """
    eps = jnp.finfo(params_dtype(new_params)).eps
    floor = eps * tu.tree_l2_norm(new_params).astype(error.dtype)
    return (error <= tol) & (tol < floor)


@dataclasses.dataclass(eq=False, kw_only=True)
class FixedPointSolver(IterativeSolver):
    """Base of solvers of ``x = T(x)`` with ``T = fixed_point_fun`` (private).

    Subclasses declare ``fixed_point_fun`` and write ``init_state``/``update``; the
    residual ``T(x) - x``, its non-symmetric implicit solve (normal-equation CG) and the
    shared defaults live here.
    """

    maxiter: int = 100
    tol: float = 1e-5
    has_aux: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.fixed_point_fun, "fixed_point_fun")  # type: ignore[attr-defined]

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or ls.solve_normal_cg

    def _map(self, params, args, kwargs):
        """``(T(params), aux)``."""
        return split_aux(self.fixed_point_fun(params, *args, **kwargs), self.has_aux)  # type: ignore

    def optimality_fun(self, params, *args, **kwargs):
        """``T(params) - params``, zero at a fixed point.

        Args:
          params: a point.
          *args, **kwargs: passed to ``fixed_point_fun``.

        Returns:
          A pytree like ``params``.
        """
        return tu.tree_sub(self._map(params, args, kwargs)[0], params)
