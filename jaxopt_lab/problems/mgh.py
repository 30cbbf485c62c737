"""The 18 unconstrained minimization problems of Moré, Garbow and Hillstrom (1981).

Every problem is a sum of squares ``f(x) = sum_i r_i(x)^2`` (MGH's convention, no
factor 1/2), so each comes with its residual ``r`` for Gauss-Newton and
Levenberg-Marquardt and with ``fun = sum r^2`` for general minimizers. The
numbering, dimensions, starting points and optimal values follow the paper's
"unconstrained minimization" list (its problems 7, 18, 9, 3, 12, 25, 20, 23, 24,
4, 16, 11, 26, 21, 22, 5, 14, 35). Starting points ``x0``, ``10 x0`` and ``100 x0``
are the paper's three standard starts.

Bound-constrained variants (:func:`bounded`) are this module's own construction,
not the paper's: for problems with a published minimizer ``x*``, every other
coordinate is bounded at the midpoint between ``x0`` and ``x*`` on the side of
``x*``, so the box contains ``x0`` and excludes ``x*`` (the bounds are active).

References:
  Moré, Garbow and Hillstrom, "Testing unconstrained optimization software",
  ACM Transactions on Mathematical Software 7(1), 1981, pp. 17-41.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Problem(NamedTuple):
    """One MGH problem.

    Attributes:
      name: short name (e.g. ``"rosenbrock"``).
      number: the problem's number in Moré, Garbow and Hillstrom (1981).
      n: number of variables.
      m: number of residuals.
      residual: ``residual(x) -> (m,)`` array.
      x0: the standard starting point (float64 NumPy array).
      f_star: published optimal value (``None`` if not published).
      x_star: published minimizer (``None`` if not published or not unique).
      lower, upper: bounds (``None`` for the unconstrained problems).
    """

    name: str
    number: int
    n: int
    m: int
    residual: Callable[[jax.Array], jax.Array]
    x0: np.ndarray
    f_star: float | None = None
    x_star: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    def fun(self, x: jax.Array) -> jax.Array:
        """The objective ``sum_i r_i(x)^2``.

        Args:
          x: a point of shape ``(n,)``.

        Returns:
          A scalar.
        """
        r = self.residual(x)
        return jnp.sum(r * r)

    def start(self, scale: float = 1.0) -> np.ndarray:
        """The standard start times ``scale`` (MGH use 1, 10 and 100).

        Args:
          scale: multiplier of ``x0``.

        Returns:
          A float64 array of shape ``(n,)``.
        """
        return np.asarray(self.x0, np.float64) * scale


def _helical_valley(x):
    x1, x2, x3 = x[0], x[1], x[2]
    safe = jnp.where(x1 == 0, 1.0, x1)
    theta = jnp.arctan(x2 / safe) / (2 * jnp.pi) + jnp.where(x1 < 0, 0.5, 0.0)
    theta = jnp.where(x1 == 0, jnp.sign(x2) * 0.25, theta)
    return jnp.stack([10 * (x3 - 10 * theta), 10 * (jnp.sqrt(x1**2 + x2**2) - 1), x3])


def _biggs_exp6(x, m=13):
    t = 0.1 * jnp.arange(1, m + 1)
    y = jnp.exp(-t) - 5 * jnp.exp(-10 * t) + 3 * jnp.exp(-4 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


_GAUSS_Y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
                     0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])


def _gaussian(x):
    t = (8.0 - jnp.arange(1, 16)) / 2.0
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2) - _GAUSS_Y


def _powell_badly_scaled(x):
    return jnp.stack([1e4 * x[0] * x[1] - 1, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def _box3d(x, m=10):
    t = 0.1 * jnp.arange(1, m + 1)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10 * t))


def _variably_dimensioned(x):
    n = x.shape[0]
    s = jnp.sum(jnp.arange(1, n + 1) * (x - 1))
    return jnp.concatenate([x - 1, jnp.stack([s, s * s])])


def _watson(x):
    n = x.shape[0]
    t = jnp.arange(1, 30) / 29.0
    j = jnp.arange(n)
    powers = t[:, None] ** j[None, :]  # t^(j) for j = 0..n-1
    s1 = powers[:, : n - 1] @ (j[1:] * x[1:])  # sum_{j>=2} (j-1) x_j t^(j-2)
    s2 = powers @ x
    return jnp.concatenate([s1 - s2**2 - 1, jnp.stack([x[0], x[1] - x[0] ** 2 - 1])])


def _penalty1(x, a=1e-5):
    return jnp.concatenate([jnp.sqrt(a) * (x - 1), jnp.stack([jnp.sum(x * x) - 0.25])])


def _penalty2(x, a=1e-5):
    n = x.shape[0]
    i = jnp.arange(2, n + 1)
    y = jnp.exp(i / 10) + jnp.exp((i - 1) / 10)
    mid = jnp.sqrt(a) * (jnp.exp(x[1:] / 10) + jnp.exp(x[:-1] / 10) - y)
    tail = jnp.sqrt(a) * (jnp.exp(x[1:] / 10) - jnp.exp(-0.1))
    last = jnp.sum((n - jnp.arange(n)) * x * x) - 1
    return jnp.concatenate([jnp.stack([x[0] - 0.2]), mid, tail, jnp.stack([last])])


def _brown_badly_scaled(x):
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def _brown_dennis(x, m=20):
    t = jnp.arange(1, m + 1) / 5.0
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


def _gulf(x, m=99):
    t = jnp.arange(1, m + 1) / 100.0
    y = 25 + (-50 * jnp.log(t)) ** (2.0 / 3.0)
    return jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t


def _trigonometric(x):
    n = x.shape[0]
    i = jnp.arange(1, n + 1)
    return n - jnp.sum(jnp.cos(x)) + i * (1 - jnp.cos(x)) - jnp.sin(x)


def _extended_rosenbrock(x):
    odd, even = x[0::2], x[1::2]
    return jnp.stack([10 * (even - odd**2), 1 - odd], axis=1).reshape(-1)


def _extended_powell(x):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return jnp.stack([a + 10 * b, jnp.sqrt(5.0) * (c - d), (b - 2 * c) ** 2,
                      jnp.sqrt(10.0) * (a - d) ** 2], axis=1).reshape(-1)


def _beale(x):
    y = jnp.array([1.5, 2.25, 2.625])
    i = jnp.arange(1, 4)
    return y - x[0] * (1 - x[1] ** i)


def _wood(x):
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    return jnp.stack([10 * (x2 - x1**2), 1 - x1, jnp.sqrt(90.0) * (x4 - x3**2), 1 - x3,
                      jnp.sqrt(10.0) * (x2 + x4 - 2), (x2 - x4) / jnp.sqrt(10.0)])


def _chebyquad(x):
    n = x.shape[0]
    u = 2 * x - 1  # shifted Chebyshev polynomials T_i(2x - 1) on [0, 1]
    rows, t_prev, t_cur = [], jnp.ones_like(u), u
    for i in range(1, n + 1):
        target = -1.0 / (i * i - 1) if i % 2 == 0 else 0.0
        rows.append(jnp.mean(t_cur) - target)
        t_prev, t_cur = t_cur, 2 * u * t_cur - t_prev
    return jnp.stack(rows)


def _problems() -> list[Problem]:
    f64 = lambda v: np.asarray(v, np.float64)
    n_var = 10
    return [
        Problem("helical_valley", 7, 3, 3, _helical_valley, f64([-1, 0, 0]), 0.0, f64([1, 0, 0])),
        Problem("biggs_exp6", 18, 6, 13, _biggs_exp6, f64([1, 2, 1, 1, 1, 1]), 0.0,
                f64([1, 10, 1, 5, 4, 3])),
        Problem("gaussian", 9, 3, 15, _gaussian, f64([0.4, 1, 0]), 1.12793e-8),
        Problem("powell_badly_scaled", 3, 2, 2, _powell_badly_scaled, f64([0, 1]), 0.0,
                f64([1.098159e-5, 9.106146])),
        Problem("box_3d", 12, 3, 10, _box3d, f64([0, 10, 20]), 0.0, f64([1, 10, 1])),
        Problem("variably_dimensioned", 25, n_var, n_var + 2, _variably_dimensioned,
                1 - np.arange(1, n_var + 1) / n_var, 0.0, np.ones(n_var)),
        Problem("watson", 20, 9, 31, _watson, np.zeros(9), 1.39976e-6),
        Problem("penalty_1", 23, n_var, n_var + 1, _penalty1, f64(np.arange(1, n_var + 1)), 7.08765e-5),
        Problem("penalty_2", 24, n_var, 2 * n_var, _penalty2, np.full(n_var, 0.5), 2.93660e-4),
        Problem("brown_badly_scaled", 4, 2, 3, _brown_badly_scaled, f64([1, 1]), 0.0, f64([1e6, 2e-6])),
        Problem("brown_dennis", 16, 4, 20, _brown_dennis, f64([25, 5, -5, -1]), 85822.2),
        Problem("gulf", 11, 3, 99, _gulf, f64([5, 2.5, 0.15]), 0.0, f64([50, 25, 1.5])),
        Problem("trigonometric", 26, n_var, n_var, _trigonometric, np.full(n_var, 1.0 / n_var), 0.0),
        Problem("extended_rosenbrock", 21, n_var, n_var, _extended_rosenbrock,
                f64(np.tile([-1.2, 1.0], n_var // 2)), 0.0, np.ones(n_var)),
        Problem("extended_powell_singular", 22, 12, 12, _extended_powell,
                f64(np.tile([3.0, -1.0, 0.0, 1.0], 3)), 0.0, np.zeros(12)),
        Problem("beale", 5, 2, 3, _beale, f64([1, 1]), 0.0, f64([3, 0.5])),
        Problem("wood", 14, 4, 6, _wood, f64([-3, -1, -3, -1]), 0.0, np.ones(4)),
        Problem("chebyquad", 35, 8, 8, _chebyquad, np.arange(1, 9) / 9.0, 3.51687e-3),
    ]


PROBLEMS: list[Problem] = _problems()
"""The 18 problems, in the order of MGH's unconstrained-minimization list."""

SCALES: tuple[float, ...] = (1.0, 10.0, 100.0)
"""The paper's three starting points: ``x0``, ``10 x0`` and ``100 x0``."""


def get(name: str) -> Problem:
    """The problem called ``name``.

    Args:
      name: one of ``[p.name for p in PROBLEMS]``.

    Returns:
      A :class:`Problem`.
    """
    for p in PROBLEMS:
        if p.name == name:
            return p
    raise ValueError(f"`name` must be one of {[p.name for p in PROBLEMS]}, got {name!r}.")


def bounded(problem: Problem) -> Problem:
    """A bound-constrained variant whose box excludes the published minimizer.

    Coordinates ``0, 2, 4, ...`` are bounded at the midpoint of ``x0`` and ``x*`` on the
    side of ``x*`` (an upper bound if ``x* > x0``, a lower bound otherwise); the other
    coordinates are free (infinite bounds). ``x0`` is feasible. This construction is
    this module's, not the paper's.

    Args:
      problem: a problem with a published ``x_star``.

    Returns:
      The problem with ``lower``/``upper`` set, ``f_star``/``x_star`` cleared and
      ``name`` suffixed with ``"_bounded"``.
    """
    if problem.x_star is None:
        raise ValueError(f"`problem` {problem.name!r} has no published minimizer to exclude.")
    x0, xs = problem.start(), np.asarray(problem.x_star, np.float64)
    lower, upper = np.full(problem.n, -np.inf), np.full(problem.n, np.inf)
    mid = 0.5 * (x0 + xs)
    for i in range(0, problem.n, 2):
        if xs[i] > x0[i]:
            upper[i] = mid[i]
        elif xs[i] < x0[i]:
            lower[i] = mid[i]
    return problem._replace(name=problem.name + "_bounded", f_star=None, x_star=None,
                            lower=lower, upper=upper)


BOUNDED: list[Problem] = [bounded(p) for p in PROBLEMS if p.x_star is not None]
"""Bound-constrained variants of the problems with a published minimizer."""


_GRADS: dict = {}


def _grad(problem: Problem) -> Callable:
    key = (problem.name, problem.lower is not None)
    if key not in _GRADS:
        _GRADS[key] = jax.jit(jax.value_and_grad(problem.fun))
    return _GRADS[key]


def projected_gradient_norm(problem: Problem, x) -> float:
    """Norm of the projected gradient ``x - P(x - grad f(x))`` (the gradient if unbounded).

    Args:
      problem: the problem.
      x: a point.

    Returns:
      A Python float (``inf`` when not finite).
    """
    x = np.asarray(x, np.float64)
    g = np.asarray(_grad(problem)(jnp.asarray(x))[1])
    if problem.lower is not None:
        g = x - np.clip(x - g, problem.lower, problem.upper)
    out = float(np.linalg.norm(g))
    return out if np.isfinite(out) else float("inf")


def is_solved(problem: Problem, x, gtol: float = 1e-6) -> bool:
    """Whether ``x`` solves ``problem``.

    Solved means: finite, inside the bounds, and either the (projected) gradient norm
    is at most ``gtol * max(1, |f(x)|)`` (a stationary point, as MGH count it), or the
    published optimal value is reached (``f(x) - f* <= 1e-8 + 1e-5 |f*|``; the paper
    gives six digits). A solver stopped by ``||grad f|| <= gtol`` therefore solves it.

    Args:
      problem: the problem.
      x: the candidate point.
      gtol: relative gradient tolerance.

    Returns:
      A Python bool.
    """
    x = np.asarray(x, np.float64)
    if x.shape != (problem.n,) or not np.all(np.isfinite(x)):
        return False
    lo, hi = problem.lower, problem.upper
    if lo is not None and hi is not None and (np.any(x < lo - 1e-12) or np.any(x > hi + 1e-12)):
        return False
    f = float(_grad(problem)(jnp.asarray(x))[0])
    if not np.isfinite(f):
        return False
    if projected_gradient_norm(problem, x) <= gtol * max(1.0, abs(f)):
        return True
    return problem.f_star is not None and f - problem.f_star <= 1e-8 + 1e-5 * abs(problem.f_star)
