"""The bilevel problem: an outer objective, an inner objective, inner constraints.

``min_x F(x, y*(x), data)`` with ``y*(x) = argmin_y G(x, y, data)`` (optionally
subject to ``g(x, y, data) <= 0``). ``x`` and ``y`` are pytrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxopt_lab.core.checks import check_callable, check_params_tree

PyTree = Any


class BilevelParams(NamedTuple):
    """Parameters of a bilevel solver.

    Attributes:
      x: outer variables (a pytree).
      y: inner variables (a pytree).
    """

    x: Any
    y: Any


@dataclasses.dataclass(frozen=True, eq=False)
class BilevelProblem:
    """A bilevel problem ``min_x F(x, y*(x))``, ``y*(x) in argmin_y G(x, y)``.

    Instances are hashable by identity, so they can be static arguments of jitted
    functions and fields of solvers.

    Args:
      outer_fun: ``F(x, y, data) -> scalar``.
      inner_fun: ``G(x, y, data) -> scalar`` (strongly convex in ``y`` for the
        implicit methods).
      inner_constraints: optional ``g(x, y, data) -> array``; the inner feasible
        set is ``g <= 0`` (used by :class:`jaxopt_lab.bilevel.LVHBA`).

    Returns:
      A problem object with the derivative oracles the bilevel methods use.

    References:
      Colson, Marcotte and Savard, "An overview of bilevel optimization", 2007;
      Ghadimi and Wang, "Approximation Methods for Bilevel Programming", 2018
      (arXiv:1802.02246).
    """

    outer_fun: Callable
    inner_fun: Callable
    inner_constraints: Callable | None = None

    def __post_init__(self):
        check_callable(self.outer_fun, "outer_fun")
        check_callable(self.inner_fun, "inner_fun")
        if self.inner_constraints is not None:
            check_callable(self.inner_constraints, "inner_constraints")

    # -- argument checks (before tracing) ---------------------------------------
    def check_args(self, x: PyTree, y: PyTree, data: Any, x_name: str = "x", y_name: str = "y") -> None:
        """Raise a clear error when ``x``/``y`` do not fit the objectives.

        Args:
          x: outer variables.
          y: inner variables.
          data: the data passed to the objectives.
          x_name, y_name: argument names used in messages.
        """
        check_params_tree(x, x_name)
        check_params_tree(y, y_name)
        for fname in ("outer_fun", "inner_fun"):
            fun = getattr(self, fname)
            try:
                out = jax.eval_shape(fun, x, y, data)
            except Exception as e:  # noqa: BLE001 - re-raised with the argument names
                raise ValueError(
                    f"`{x_name}`/`{y_name}` do not match the pytree structure or shapes expected by "
                    f"`{fname}`: {type(e).__name__}: {e}"
                ) from e
            if not hasattr(out, "shape") or out.shape != ():
                shape = getattr(out, "shape", type(out).__name__)
                raise ValueError(f"`{fname}` must return a scalar, got shape {shape}.")
        if self.inner_constraints is not None:
            try:
                out = jax.eval_shape(self.inner_constraints, x, y, data)
            except Exception as e:  # noqa: BLE001
                raise ValueError(
                    f"`{x_name}`/`{y_name}` do not fit `inner_constraints`: {type(e).__name__}: {e}"
                ) from e
            if not hasattr(out, "shape") or len(out.shape) > 1:
                raise ValueError("`inner_constraints` must return a scalar or a 1-D array.")

    # -- oracles -----------------------------------------------------------------
    def inner_objective(self, y: PyTree, x: PyTree, data: Any) -> jax.Array:
        """``G(x, y, data)`` with ``y`` first (the order solvers expect)."""
        return self.inner_fun(x, y, data)

    def penalized_inner(self, y: PyTree, x: PyTree, data: Any, sigma) -> jax.Array:
        """``sigma * F(x, y) + G(x, y)`` with ``y`` first (penalty methods)."""
        return sigma * self.outer_fun(x, y, data) + self.inner_fun(x, y, data)

    def inner_grad(self, x: PyTree, y: PyTree, data: Any) -> PyTree:
        """``grad_y G(x, y, data)``."""
        return jax.grad(self.inner_fun, argnums=1)(x, y, data)

    def inner_grads(self, x: PyTree, y: PyTree, data: Any) -> tuple[PyTree, PyTree]:
        """``(grad_x G, grad_y G)`` at ``(x, y)``."""
        return jax.grad(self.inner_fun, argnums=(0, 1))(x, y, data)

    def outer_grads(self, x: PyTree, y: PyTree, data: Any) -> tuple[jax.Array, PyTree, PyTree]:
        """``(F, grad_x F, grad_y F)`` at ``(x, y)``."""
        value, (gx, gy) = jax.value_and_grad(self.outer_fun, argnums=(0, 1))(x, y, data)
        return value, gx, gy

    def inner_hvp(self, x: PyTree, y: PyTree, data: Any, v: PyTree) -> PyTree:
        """``grad^2_yy G(x, y) v`` (forward-over-reverse)."""
        return jax.jvp(lambda yy: self.inner_grad(x, yy, data), (y,), (v,))[1]

    def inner_cross_vjp(self, x: PyTree, y: PyTree, data: Any, v: PyTree) -> PyTree:
        """``grad^2_xy G(x, y) v``: the derivative of ``<grad_y G(x, y), v>`` in ``x``."""
        return jax.vjp(lambda xx: self.inner_grad(xx, y, data), x)[1](v)[0]

    def hypergrad_from_adjoint(self, x: PyTree, y: PyTree, data: Any, v: PyTree) -> PyTree:
        """``grad_x F(x, y) - grad^2_xy G(x, y) v`` for an adjoint ``v``."""
        _, gx, _ = self.outer_grads(x, y, data)
        cross = self.inner_cross_vjp(x, y, data, v)
        return jax.tree_util.tree_map(lambda a, b: a - b, gx, cross)

