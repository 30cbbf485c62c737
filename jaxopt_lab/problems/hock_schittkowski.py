"""A subset of the Hock-Schittkowski constrained test problems, with their published optima.

Each problem is ``min fun(x)`` subject to ``eq(x) == 0``, ``ineq(x) <= 0`` and bounds
``lower <= x <= upper`` (``-inf`` / ``inf`` where absent). Hock and Schittkowski write
inequalities as ``c(x) >= 0``; here they are negated to the ``<= 0`` convention.
Starting points and optimal values ``f_star`` are the book's. :func:`ineq_with_bounds`
turns finite bounds into extra inequality rows for solvers without bound support.

A published optimum is not always a local minimum: HS47's ``f_star = 0`` at
``(1, 1, 1, 1, 1)`` is a KKT point, but along the constraint curve through
``1 + t (-1, -1, 1, 3, 1)`` the objective is ``-8 t^3 + O(t^4)``; a feasible strict local
minimum lies nearby at ``f = -0.0267141827``. :func:`is_solved` compares with the
published value, so a solver that descends past it is scored unsolved there.

References:
  Hock and Schittkowski, "Test Examples for Nonlinear Programming Codes", Lecture
  Notes in Economics and Mathematical Systems 187, Springer, 1981.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

_INF = np.inf
_S2 = float(np.sqrt(2.0))


class Problem(NamedTuple):
    """One Hock-Schittkowski problem.

    Attributes:
      number: the problem's number in Hock and Schittkowski (1981).
      fun: objective ``fun(x) -> scalar``.
      eq: ``eq(x) -> (m_eq,)`` equality constraints (``== 0``), or ``None``.
      ineq: ``ineq(x) -> (m_ineq,)`` inequality constraints (``<= 0``), or ``None``.
      lower, upper: bounds (NumPy arrays with infinities where absent).
      x0: the published starting point.
      f_star: the published optimal value.
    """

    number: int
    fun: Callable
    eq: Callable | None
    ineq: Callable | None
    lower: np.ndarray
    upper: np.ndarray
    x0: np.ndarray
    f_star: float

    @property
    def n(self) -> int:
        """Number of variables."""
        return int(self.x0.shape[0])

    @property
    def name(self) -> str:
        """``"HS<number>"``."""
        return f"HS{self.number}"


def _v(*rows):
    return jnp.stack([jnp.asarray(r) for r in rows])


def _p(number, fun, eq, ineq, x0, f_star, lower=None, upper=None) -> Problem:
    x0 = np.asarray(x0, np.float64)
    n = x0.shape[0]
    lo = np.full(n, -_INF) if lower is None else np.asarray(lower, np.float64)
    hi = np.full(n, _INF) if upper is None else np.asarray(upper, np.float64)
    return Problem(number, fun, eq, ineq, lo, hi, x0, float(f_star))


def _hs80_cons(x):
    return _v(jnp.sum(x ** 2) - 10.0, x[1] * x[2] - 5 * x[3] * x[4], x[0] ** 3 + x[1] ** 3 + 1.0)


_B80 = ([-2.3, -2.3, -3.2, -3.2, -3.2], [2.3, 2.3, 3.2, 3.2, 3.2])

PROBLEMS: list[Problem] = [
    _p(6, lambda x: (1 - x[0]) ** 2, lambda x: _v(10 * (x[1] - x[0] ** 2)), None, [-1.2, 1.0], 0.0),
    _p(7, lambda x: jnp.log(1 + x[0] ** 2) - x[1],
       lambda x: _v((1 + x[0] ** 2) ** 2 + x[1] ** 2 - 4), None, [2.0, 2.0], -np.sqrt(3.0)),
    _p(9, lambda x: jnp.sin(jnp.pi * x[0] / 12) * jnp.cos(jnp.pi * x[1] / 16),
       lambda x: _v(4 * x[0] - 3 * x[1]), None, [0.0, 0.0], -0.5),
    _p(14, lambda x: (x[0] - 2) ** 2 + (x[1] - 1) ** 2, lambda x: _v(x[0] - 2 * x[1] + 1),
       lambda x: _v(x[0] ** 2 / 4 + x[1] ** 2 - 1), [2.0, 2.0], 9 - 2.875 * np.sqrt(7.0)),
    _p(21, lambda x: 0.01 * x[0] ** 2 + x[1] ** 2 - 100, None, lambda x: _v(-(10 * x[0] - x[1] - 10)),
       [-1.0, -1.0], -99.96, lower=[2, -50], upper=[50, 50]),
    _p(26, lambda x: (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 4,
       lambda x: _v((1 + x[1] ** 2) * x[0] + x[2] ** 4 - 3), None, [-2.6, 2.0, 2.0], 0.0),
    _p(27, lambda x: 0.01 * (x[0] - 1) ** 2 + (x[1] - x[0] ** 2) ** 2, lambda x: _v(x[0] + x[2] ** 2 + 1),
       None, [2.0, 2.0, 2.0], 0.04),
    _p(28, lambda x: (x[0] + x[1]) ** 2 + (x[1] + x[2]) ** 2, lambda x: _v(x[0] + 2 * x[1] + 3 * x[2] - 1),
       None, [-4.0, 1.0, 1.0], 0.0),
    _p(35, lambda x: (9 - 8 * x[0] - 6 * x[1] - 4 * x[2] + 2 * x[0] ** 2 + 2 * x[1] ** 2 + x[2] ** 2
                      + 2 * x[0] * x[1] + 2 * x[0] * x[2]),
       None, lambda x: _v(x[0] + x[1] + 2 * x[2] - 3), [0.5, 0.5, 0.5], 1.0 / 9.0, lower=[0, 0, 0]),
    _p(39, lambda x: -x[0], lambda x: _v(x[1] - x[0] ** 3 - x[2] ** 2, x[0] ** 2 - x[1] - x[3] ** 2),
       None, [2.0, 2.0, 2.0, 2.0], -1.0),
    _p(40, lambda x: -x[0] * x[1] * x[2] * x[3],
       lambda x: _v(x[0] ** 3 + x[1] ** 2 - 1, x[0] ** 2 * x[3] - x[2], x[3] ** 2 - x[1]),
       None, [0.8, 0.8, 0.8, 0.8], -0.25),
    _p(42, lambda x: (x[0] - 1) ** 2 + (x[1] - 2) ** 2 + (x[2] - 3) ** 2 + (x[3] - 4) ** 2,
       lambda x: _v(x[0] - 2, x[2] ** 2 + x[3] ** 2 - 2), None, [1.0, 1.0, 1.0, 1.0], 28 - 10 * _S2),
    _p(43, lambda x: (x[0] ** 2 + x[1] ** 2 + 2 * x[2] ** 2 + x[3] ** 2 - 5 * x[0] - 5 * x[1]
                      - 21 * x[2] + 7 * x[3]),
       None, lambda x: -_v(8 - x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - x[3] ** 2 - x[0] + x[1] - x[2] + x[3],
                           10 - x[0] ** 2 - 2 * x[1] ** 2 - x[2] ** 2 - 2 * x[3] ** 2 + x[0] + x[3],
                           5 - 2 * x[0] ** 2 - x[1] ** 2 - x[2] ** 2 - 2 * x[0] + x[1] + x[3]),
       [0.0, 0.0, 0.0, 0.0], -44.0),
    _p(46, lambda x: (x[0] - x[1]) ** 2 + (x[2] - 1) ** 2 + (x[3] - 1) ** 4 + (x[4] - 1) ** 6,
       lambda x: _v(x[0] ** 2 * x[3] + jnp.sin(x[3] - x[4]) - 1, x[1] + x[2] ** 4 * x[3] ** 2 - 2),
       None, [0.5 * _S2, 1.75, 0.5, 2.0, 2.0], 0.0),
    _p(47, lambda x: (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 3 + (x[2] - x[3]) ** 4 + (x[3] - x[4]) ** 4,
       lambda x: _v(x[0] + x[1] ** 2 + x[2] ** 3 - 3, x[1] - x[2] ** 2 + x[3] - 1, x[0] * x[4] - 1),
       None, [2.0, _S2, -1.0, 2 - _S2, 0.5], 0.0),
    _p(48, lambda x: (x[0] - 1) ** 2 + (x[1] - x[2]) ** 2 + (x[3] - x[4]) ** 2,
       lambda x: _v(jnp.sum(x) - 5, x[2] - 2 * (x[3] + x[4]) + 3), None, [3.0, 5.0, -3.0, 2.0, -2.0], 0.0),
    _p(49, lambda x: (x[0] - x[1]) ** 2 + (x[2] - 1) ** 2 + (x[3] - 1) ** 4 + (x[4] - 1) ** 6,
       lambda x: _v(x[0] + x[1] + x[2] + 4 * x[3] - 7, x[2] + 5 * x[4] - 6), None,
       [10.0, 7.0, 2.0, -3.0, 0.8], 0.0),
    _p(50, lambda x: (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 2 + (x[2] - x[3]) ** 4 + (x[3] - x[4]) ** 2,
       lambda x: _v(x[0] + 2 * x[1] + 3 * x[2] - 6, x[1] + 2 * x[2] + 3 * x[3] - 6,
                    x[2] + 2 * x[3] + 3 * x[4] - 6), None, [35.0, -31.0, 11.0, 5.0, -5.0], 0.0),
    _p(51, lambda x: (x[0] - x[1]) ** 2 + (x[1] + x[2] - 2) ** 2 + (x[3] - 1) ** 2 + (x[4] - 1) ** 2,
       lambda x: _v(x[0] + 3 * x[1] - 4, x[2] + x[3] - 2 * x[4], x[1] - x[4]), None,
       [2.5, 0.5, 2.0, -1.0, 0.5], 0.0),
    _p(52, lambda x: (4 * x[0] - x[1]) ** 2 + (x[1] + x[2] - 2) ** 2 + (x[3] - 1) ** 2 + (x[4] - 1) ** 2,
       lambda x: _v(x[0] + 3 * x[1], x[2] + x[3] - 2 * x[4], x[1] - x[4]), None,
       [2.0, 2.0, 2.0, 2.0, 2.0], 1859.0 / 349.0),
    _p(53, lambda x: (x[0] - x[1]) ** 2 + (x[1] + x[2] - 2) ** 2 + (x[3] - 1) ** 2 + (x[4] - 1) ** 2,
       lambda x: _v(x[0] + 3 * x[1], x[2] + x[3] - 2 * x[4], x[1] - x[4]), None,
       [2.0, 2.0, 2.0, 2.0, 2.0], 176.0 / 43.0, lower=[-10] * 5, upper=[10] * 5),
    _p(60, lambda x: (x[0] - 1) ** 2 + (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 4,
       lambda x: _v(x[0] * (1 + x[1] ** 2) + x[2] ** 4 - 4 - 3 * _S2), None, [2.0, 2.0, 2.0],
       0.0325682002, lower=[-10] * 3, upper=[10] * 3),
    _p(65, lambda x: (x[0] - x[1]) ** 2 + (x[0] + x[1] - 10) ** 2 / 9 + (x[2] - 5) ** 2,
       None, lambda x: _v(x[0] ** 2 + x[1] ** 2 + x[2] ** 2 - 48), [-5.0, 5.0, 0.0], 0.9535288567,
       lower=[-4.5, -4.5, -5], upper=[4.5, 4.5, 5]),
    _p(71, lambda x: x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2], lambda x: _v(jnp.sum(x ** 2) - 40),
       lambda x: _v(25 - jnp.prod(x)), [1.0, 5.0, 5.0, 1.0], 17.0140173, lower=[1] * 4, upper=[5] * 4),
    _p(77, lambda x: ((x[0] - 1) ** 2 + (x[0] - x[1]) ** 2 + (x[2] - 1) ** 2 + (x[3] - 1) ** 4
                      + (x[4] - 1) ** 6),
       lambda x: _v(x[0] ** 2 * x[3] + jnp.sin(x[3] - x[4]) - 2 * _S2,
                    x[1] + x[2] ** 4 * x[3] ** 2 - 8 - _S2),
       None, [2.0] * 5, 0.24150513),
    _p(78, lambda x: jnp.prod(x), _hs80_cons, None, [-2.0, 1.5, 2.0, -1.0, -1.0], -2.91970041),
    _p(79, lambda x: ((x[0] - 1) ** 2 + (x[0] - x[1]) ** 2 + (x[1] - x[2]) ** 2 + (x[2] - x[3]) ** 4
                      + (x[3] - x[4]) ** 4),
       lambda x: _v(x[0] + x[1] ** 2 + x[2] ** 3 - 2 - 3 * _S2, x[1] - x[2] ** 2 + x[3] + 2 - 2 * _S2,
                    x[0] * x[4] - 2), None, [2.0] * 5, 0.0787768209),
    _p(80, lambda x: jnp.exp(jnp.prod(x)), _hs80_cons, None, [-2.0, 2.0, 2.0, -1.0, -1.0], 0.0539498478,
       lower=_B80[0], upper=_B80[1]),
    _p(81, lambda x: jnp.exp(jnp.prod(x)) - 0.5 * (x[0] ** 3 + x[1] ** 3 + 1) ** 2, _hs80_cons, None,
       [-2.0, 2.0, 2.0, -1.0, -1.0], 0.0539498478, lower=_B80[0], upper=_B80[1]),
]


def ineq_with_bounds(problem: Problem) -> Callable | None:
    """The problem's inequalities with its finite bounds appended as ``lower - x <= 0``, ``x - upper <= 0``.

    Args:
      problem: a :class:`Problem`.

    Returns:
      ``x -> (m,)`` array, or ``None`` when the problem has neither inequalities nor bounds.
    """
    lo_idx = np.flatnonzero(np.isfinite(problem.lower))
    hi_idx = np.flatnonzero(np.isfinite(problem.upper))
    if problem.ineq is None and lo_idx.size == 0 and hi_idx.size == 0:
        return None
    lo, hi = problem.lower[lo_idx], problem.upper[hi_idx]

    def ineq(x):
        parts = [] if problem.ineq is None else [problem.ineq(x)]
        if lo_idx.size:
            parts.append(jnp.asarray(lo, x.dtype) - x[lo_idx])
        if hi_idx.size:
            parts.append(x[hi_idx] - jnp.asarray(hi, x.dtype))
        return jnp.concatenate(parts)

    return ineq


def violation(problem: Problem, x) -> float:
    """Largest constraint violation at ``x`` (equalities, inequalities and bounds), in float64.

    Args:
      problem: a :class:`Problem`.
      x: a point.

    Returns:
      ``max(|eq(x)|, max(ineq(x), 0), lower - x, x - upper, 0)``.
    """
    x = np.asarray(x, np.float64)
    parts = [np.zeros(1), np.maximum(problem.lower - x, 0), np.maximum(x - problem.upper, 0)]
    if problem.eq is not None:
        parts.append(np.abs(np.asarray(problem.eq(jnp.asarray(x)), np.float64)))
    if problem.ineq is not None:
        parts.append(np.maximum(np.asarray(problem.ineq(jnp.asarray(x)), np.float64), 0))
    return float(max(np.max(p) for p in parts))


def is_solved(problem: Problem, x, viol_tol: float = 1e-6, rel_tol: float = 1e-5) -> bool:
    """Whether ``x`` is feasible to ``viol_tol`` and within ``rel_tol`` of the published optimum.

    Args:
      problem: a :class:`Problem`.
      x: a point.
      viol_tol: largest constraint violation accepted.
      rel_tol: objective tolerance relative to ``max(1, |f_star|)``.

    Returns:
      ``True`` when both hold.
    """
    if not np.all(np.isfinite(np.asarray(x, np.float64))):
        return False
    f = float(problem.fun(jnp.asarray(x, jnp.float64)))
    close = abs(f - problem.f_star) <= rel_tol * max(1.0, abs(problem.f_star))
    return violation(problem, x) <= viol_tol and close
