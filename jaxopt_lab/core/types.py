"""Result types shared by every solver: :class:`Status`, :class:`OptStep`, :class:`KKTSolution`.

The bottom of the stack: nothing here imports another ``jaxopt_lab`` module.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import jax.numpy as jnp

PyTree = Any


class Status(enum.IntEnum):
    """Per-instance outcome of a solve, stored as ``state.status`` (int32).

    Attributes:
      RUNNING: the solve has not stopped yet.
      CONVERGED: ``state.error <= tol``.
      MAX_ITER: stopped at ``maxiter`` without reaching ``tol``.
      NONFINITE: a value, gradient or error became NaN or infinite; the last
        finite iterate is returned.
      LINESEARCH_FAILED: the line search found no acceptable step.
      INFEASIBLE: the problem was detected infeasible (constrained solvers).
      STALLED: no progress possible in floating point before ``tol``.
      UNBOUNDED: the objective is unbounded below on the feasible set (a feasible
        direction of negative curvature was found, e.g. a QP whose ``Q`` is indefinite on
        the constraints' null space); the point returned is a saddle, not a minimizer.
    """

    RUNNING = 0
    CONVERGED = 1
    MAX_ITER = 2
    NONFINITE = 3
    LINESEARCH_FAILED = 4
    INFEASIBLE = 5
    STALLED = 6
    UNBOUNDED = 7


def status_name(code) -> str:
    """Name of a status code (``int`` or scalar array).

    Args:
      code: a status value.

    Returns:
      The :class:`Status` member name, e.g. ``"CONVERGED"``.
    """
    return Status(int(code)).name


class OptStep(NamedTuple):
    """Result of ``update`` and ``run``: the parameters and the solver state.

    Attributes:
      params: the current (after ``run``, the final) parameters, a pytree.
      state: the solver's state after the step (a solver-specific ``NamedTuple``).
    """

    params: Any
    state: Any


class KKTSolution(NamedTuple):
    """Primal and dual variables of a constrained problem (jaxopt name).

    Attributes:
      primal: the primal solution, a pytree.
      dual_eq: the multipliers of the equality constraints (``None`` when absent).
      dual_ineq: the multipliers of the inequality constraints (``None`` when absent).
    """

    primal: Any
    dual_eq: Any = None
    dual_ineq: Any = None


class LinearOperator:
    """A dense matrix wrapped as an operator (jaxopt compatibility helper).

    Args:
      A: a 2-D array.
    """

    def __init__(self, A):
        self.A = jnp.asarray(A)

    def shape(self):
        """Shape of the matrix."""
        return self.A.shape

    def matvec(self, x):
        """``A x``."""
        return self.A @ x

    def rmatvec(self, x):
        """``A^T x``."""
        return self.A.T @ x

    def __call__(self, x):
        return self.matvec(x)
