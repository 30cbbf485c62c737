"""Result types shared by every solver: :class:`Status`, :class:`OptStep`, :class:`KKTSolution`.

The bottom of the stack: nothing here imports another ``jaxopt_lab`` module.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import jax
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
    """A dense matrix wrapped as an operator (jaxopt's ``base.LinearOperator``), a pytree.

    Besides products with ``A`` and ``A^T`` it offers the single-entry products and
    updates that coordinate-descent solvers use.

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

    def matvec_element(self, x, idx):
        """``(A x)[idx]``, from row ``idx`` only."""
        return self.A[idx] @ x

    def rmatvec(self, x):
        """``A^T x``."""
        return self.A.T @ x

    def rmatvec_element(self, x, idx):
        """``(A^T x)[idx]``, from column ``idx`` only."""
        return self.A[:, idx] @ x

    def update_matvec(self, Ax, delta, idx):
        """``A x`` after ``x[idx] += delta``, given ``Ax`` (a vector, or a matrix with one
        column per right-hand side and ``delta`` a vector).

        Raises:
          ValueError: ``Ax`` is not 1-D or 2-D.
        """
        if Ax.ndim == 1:
            return Ax + delta * self.A[:, idx]
        if Ax.ndim == 2:
            return Ax + jnp.outer(self.A[:, idx], delta)
        raise ValueError(f"`Ax` must be a vector or a matrix, got shape {Ax.shape}.")

    def update_rmatvec(self, ATx, delta, idx):
        """``A^T x`` after ``x[idx] += delta``, given the vector ``ATx``.

        Raises:
          ValueError: ``ATx`` is not 1-D.
        """
        if ATx.ndim == 1:
            return ATx + delta * self.A[idx]
        raise ValueError(f"`ATx` must be a vector, got shape {ATx.shape}.")

    def column_l2_norms(self, squared=False):
        """Euclidean norms of the columns of ``A`` (squared with ``squared=True``)."""
        sq = jnp.sum(self.A * self.A, axis=0)
        return sq if squared else jnp.sqrt(sq)

    def __call__(self, x):
        return self.matvec(x)


def _unflatten_linear_operator(_, children):
    op = object.__new__(LinearOperator)  # no conversion: leaves may be tracers or placeholders
    op.A = children[0]
    return op


jax.tree_util.register_pytree_node(LinearOperator, lambda op: ((op.A,), None), _unflatten_linear_operator)
