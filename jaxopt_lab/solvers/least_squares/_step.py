"""The least-squares family's skeleton (GaussNewton, LevenbergMarquardt): the residual
function and its linearization, ``J^T r`` as the optimality function, the state's value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.core.solver import IterativeSolver


def residual_and_linearization(residual_fun: Callable, has_aux: bool, params, args, kwargs):
    """``(r, aux, jvp, vjp)`` of a residual function at ``params``.

    Args:
      residual_fun: ``r(params, *args, **kwargs)`` (or ``(r, aux)`` with ``has_aux``).
      has_aux: whether ``residual_fun`` returns auxiliary output.
      params: the point.
      args, kwargs: extra arguments of ``residual_fun``.

    Returns:
      The residual, the auxiliary output (or None), ``v -> J v`` and ``u -> J^T u``.
    """
    f = lambda p: residual_fun(p, *args, **kwargs)
    if has_aux:
        r, jvp, aux = jax.linearize(f, params, has_aux=True)
    else:
        (r, jvp), aux = jax.linearize(f, params), None
    vjp = jax.linear_transpose(jvp, params)
    return r, aux, jvp, lambda u: vjp(u)[0]


def normal_gradient(residual_fun: Callable, has_aux: bool, params, args, kwargs):
    """``J(params)^T r(params)``, the gradient of ``0.5 ||r||^2`` (zero at a solution).

    Args:
      residual_fun: ``r(params, *args, **kwargs)`` returning a pytree of residuals (or
        ``(residuals, aux)`` with ``has_aux``).
      has_aux: whether ``residual_fun`` also returns auxiliary data (discarded).
      params: the point, a pytree.
      args: positional arguments passed to ``residual_fun`` after ``params``.
      kwargs: keyword arguments passed to ``residual_fun``.

    Returns:
      A pytree like ``params``, computed with one VJP.
    """
    f = (lambda p: residual_fun(p, *args, **kwargs)[0]) if has_aux else (
        lambda p: residual_fun(p, *args, **kwargs))
    r, vjp = jax.vjp(f, params)
    return vjp(r)[0]


def half_squared_norm(r, dtype) -> jax.Array:
    """``0.5 ||r||^2`` of a residual pytree, in ``dtype``."""
    return (0.5 * tu.tree_l2_norm(r, squared=True)).astype(dtype)


@dataclasses.dataclass(eq=False)
class LeastSquaresSolver(IterativeSolver):
    """Base of the solvers of ``min 0.5 ||r(x)||^2`` (private).

    Holds ``residual_fun`` (checked callable) and the optimality function ``J^T r`` used
    by the implicit derivatives; subclasses write ``init_state`` and ``update``.
    """

    residual_fun: Callable
    _: dataclasses.KW_ONLY
    has_aux: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.residual_fun, "residual_fun")

    def _linearize(self, params, args, kwargs):
        """``(r, aux, jvp, vjp)`` of ``residual_fun`` at ``params``."""
        return residual_and_linearization(self.residual_fun, self.has_aux, params, args, kwargs)

    def optimality_fun(self, params, *args, **kwargs):
        """``J^T r``, the gradient of ``0.5 ||r||^2``.

        Args:
          params: a point.
          *args, **kwargs: passed to ``residual_fun``.

        Returns:
          A pytree like ``params``.
        """
        return normal_gradient(self.residual_fun, self.has_aux, params, args, kwargs)
