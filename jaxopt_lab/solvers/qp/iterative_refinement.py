"""Iterative refinement of a linear solve, as a solver class (jaxopt's API)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls


class IterativeRefinementState(NamedTuple):
    """State of :class:`IterativeRefinement`.

    Attributes:
      iter_num: corrections done.
      error: ``||b - A x||``.
      status: a :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array


def _operator(matvec, A):
    if matvec is None:
        return lambda v: jnp.dot(A, v)
    return lambda v: matvec(A, v)


@dataclasses.dataclass(eq=False)
class IterativeRefinement(IterativeSolver):
    """Solve ``A x = b`` by corrections ``x <- x + solve(A_bar, b - A x)``.

    The inner solve may be inexact: regularized (the default is GMRES with a
    ``1e-6`` ridge), in lower precision, or with an approximation ``A_bar`` of
    ``A``; the residual is always that of ``A``, so the iterates converge to
    ``A^{-1} b`` when ``||I - A_bar^{-1} A|| < 1``. One ``update`` is one correction
    (the maths of :func:`jaxopt_lab.linalg.linear_solve.solve_iterative_refinement`).
    Derivatives of ``run`` with respect to ``A``, ``b`` (and ``A_bar``, which gets
    none) come from the optimality condition ``A x - b = 0``.

    Args:
      matvec_A: optional ``matvec_A(A, x)``; otherwise ``A`` is a matrix.
      matvec_A_bar: optional ``matvec_A_bar(A_bar, x)``; otherwise ``A_bar`` is a matrix.
      solve: inner solver ``solve(matvec, b)`` (default GMRES with ridge ``1e-6``).
      maxiter: maximum number of corrections.
      tol: tolerance on ``||b - A x||``.
      verbose, implicit_diff_solve, jit, unroll: as for every solver.

    Returns:
      ``run(init_params, A, b, A_bar=None) -> OptStep(x, IterativeRefinementState)``.

    References:
      Wilkinson, "Rounding Errors in Algebraic Processes", 1963; Higham, "Accuracy and
      Stability of Numerical Algorithms", 2002, chapter 12.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "matvec_A", "matvec_A_bar", "solve", "maxiter", "tol", "verbose", "implicit_diff_solve", "jit",
        "unroll",
    )

    matvec_A: Callable | None = None
    matvec_A_bar: Callable | None = None
    solve: Callable = functools.partial(ls.solve_gmres, ridge=1e-6)
    _: dataclasses.KW_ONLY
    maxiter: int = 10
    tol: float = 1e-7

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.solve, "solve")
        for name in ("matvec_A", "matvec_A_bar"):
            if getattr(self, name) is not None:
                check_callable(getattr(self, name), name)

    def _residual(self, params, A, b):
        return tu.tree_sub(b, _operator(self.matvec_A, A)(params))

    def init_state(self, init_params, A, b, A_bar=None) -> IterativeRefinementState:
        """Residual norm at ``init_params`` (``init_params=None`` starts from zeros)."""
        if init_params is None:
            init_params = tu.tree_zeros_like(b)
        err = tu.tree_l2_norm(self._residual(init_params, A, b))
        running = jnp.asarray(Status.RUNNING, jnp.int32)
        return IterativeRefinementState(jnp.asarray(0, jnp.int32), err, running)

    def update(self, params, state, A, b, A_bar=None) -> OptStep:
        """One correction ``x + solve(A_bar, b - A x)``."""
        inner = _operator(self.matvec_A_bar if A_bar is not None else self.matvec_A,
                          A if A_bar is None else A_bar)
        params = tu.tree_add(params, self.solve(inner, self._residual(params, A, b)))
        err = tu.tree_l2_norm(self._residual(params, A, b))
        return OptStep(params, state._replace(iter_num=state.iter_num + 1, error=err))

    def optimality_fun(self, params, A, b, A_bar=None):
        """``A x - b`` (``A_bar`` only shapes the iterations, not the solution)."""
        del A_bar
        return tu.tree_negative(self._residual(params, A, b))

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve if self.implicit_diff_solve is not None else ls.solve_gmres

    def run(self, init_params, A, b, A_bar=None) -> OptStep:
        """Refine from ``init_params`` (zeros when None).

        Args:
          init_params: initial solution, or None.
          A: the matrix (or the parameters of ``matvec_A``).
          b: the right-hand side.
          A_bar: optional approximation of ``A`` used by the inner solves.

        Returns:
          ``OptStep(x, IterativeRefinementState)``.
        """
        if init_params is None:
            init_params = tu.tree_zeros_like(b)
        if A_bar is None:
            return super().run(init_params, A, b)
        return super().run(init_params, A, b, A_bar)
