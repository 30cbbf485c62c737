"""Line searches written for ``vmap``.

Each line search is one ``lax.while_loop`` whose body makes exactly one
value-and-gradient evaluation, with every decision taken by arithmetic
(``jnp.where``), never by ``lax.cond``. Under ``vmap`` a ``cond`` turns into a
``select`` that runs both branches, and nested data-dependent loops run every lane
until the slowest finishes; here a lane that has accepted its step only waits, and
the usual case (the first trial step accepted) costs one evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import base
from jaxopt_lab import tree_util as tu


class LineSearchResult(NamedTuple):
    """Outcome of a line search.

    Attributes:
      stepsize: accepted step ``t`` (0 when the search failed).
      params: ``x + t d``.
      value: objective at ``params``.
      grad: gradient at ``params``.
      aux: auxiliary output of ``fun`` at ``params``.
      failed: no step satisfying the conditions was found.
      num_evals: value-and-gradient evaluations made.
    """

    stepsize: jax.Array
    params: Any
    value: jax.Array
    grad: Any
    aux: Any
    failed: jax.Array
    num_evals: jax.Array


def _cubic_min(a, fa, da, b, fb, db):
    """Minimizer of the cubic interpolating (f, f') at a and b (NaN if none)."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.maximum(disc, 0.0))
    t = b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
    return jnp.where((disc >= 0) & jnp.isfinite(t), t, jnp.nan)


class _ZoomCarry(NamedTuple):
    t: Any
    lo_t: Any
    lo_f: Any
    lo_d: Any
    lo_x: Any
    lo_g: Any
    lo_aux: Any
    hi_t: Any
    hi_f: Any
    hi_d: Any
    bracketed: Any
    done: Any
    k: Any


def strong_wolfe(
    value_and_grad: Callable,
    params,
    value,
    grad,
    direction,
    init_stepsize,
    aux=None,
    c1: float = 1e-4,
    c2: float = 0.9,
    maxls: int = 30,
    max_stepsize: float = 1e10,
) -> LineSearchResult:
    """Bracketing-and-zoom search for a step satisfying the strong Wolfe conditions.

    Conditions: ``f(x + t d) <= f(x) + c1 t <g, d>`` and
    ``|<g(x + t d), d>| <= c2 |<g, d>|``. Trial steps come from safeguarded cubic
    interpolation (inside a bracket) or extrapolation (before one is found).
    Near the optimum, where ``f`` changes by less than its rounding error, the
    approximate Wolfe test of Hager and Zhang replaces sufficient decrease. If
    ``maxls`` evaluations pass without a Wolfe point, the best step with
    sufficient decrease is returned; if there is none, ``failed`` is set.

    Args:
      value_and_grad: ``x -> ((value, aux), grad)``.
      params: current point ``x``.
      value, grad: ``f(x)`` and its gradient.
      direction: a descent direction ``d``.
      init_stepsize: first trial step.
      aux: auxiliary output at ``x``.
      c1, c2: the Wolfe constants (``0 < c1 < c2 < 1``).
      maxls: maximum evaluations (static).
      max_stepsize: largest step tried.

    Returns:
      A :class:`LineSearchResult`.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, Algorithms
      3.5 and 3.6.
    """
    dtype = jnp.result_type(value)
    d0 = tu.tree_vdot(grad, direction).astype(dtype)
    f0 = jnp.asarray(value, dtype)
    zero = jnp.zeros([], dtype)

    def body(c: _ZoomCarry):
        x = tu.tree_add_scalar_mul(params, c.t, direction)
        (f, a), g = value_and_grad(x)
        f = jnp.asarray(f, dtype)
        dphi = tu.tree_vdot(g, direction).astype(dtype)
        finite = jnp.isfinite(f) & jnp.isfinite(dphi)
        # Sufficient decrease, or (Hager-Zhang's approximate Wolfe test) no increase
        # beyond rounding with the slope reduced, for steps below f's precision.
        eps = jnp.finfo(dtype).eps
        approx = (f <= f0 + 10 * eps * jnp.abs(f0)) & (dphi <= (2 * c1 - 1) * d0)
        armijo = finite & ((f <= f0 + c1 * c.t * d0) | approx)
        curvature = jnp.abs(dphi) <= c2 * jnp.abs(d0)
        accept = armijo & curvature
        # New low point: sufficient decrease and better than the current low.
        better = armijo & (f < c.lo_f)
        to_hi = ~better  # failed decrease (or no improvement): t bounds from above
        # Before a bracket exists: an improving point with positive slope closes it
        # with the old low as the upper end.
        flip = better & (dphi * (c.hi_t - c.lo_t) >= 0) & c.bracketed
        open_flip = better & (dphi >= 0) & ~c.bracketed
        new_hi_t = jnp.where(to_hi, c.t, jnp.where(flip | open_flip, c.lo_t, c.hi_t))
        new_hi_f = jnp.where(to_hi, f, jnp.where(flip | open_flip, c.lo_f, c.hi_f))
        new_hi_d = jnp.where(to_hi, dphi, jnp.where(flip | open_flip, c.lo_d, c.hi_d))
        new_hi_f = jnp.where(finite | ~to_hi, new_hi_f, jnp.inf)
        bracketed = c.bracketed | to_hi | open_flip
        lo_t = jnp.where(better, c.t, c.lo_t)
        lo_f = jnp.where(better, f, c.lo_f)
        lo_d = jnp.where(better, dphi, c.lo_d)
        lo_x = tu.tree_where(better, x, c.lo_x)
        lo_g = tu.tree_where(better, g, c.lo_g)
        lo_aux = tu.tree_where(better, a, c.lo_aux) if a is not None else c.lo_aux
        # Next trial.
        cubic = _cubic_min(lo_t, lo_f, lo_d, new_hi_t, new_hi_f, new_hi_d)
        width = new_hi_t - lo_t
        lo_b = jnp.minimum(lo_t, new_hi_t) + 0.1 * jnp.abs(width)
        hi_b = jnp.maximum(lo_t, new_hi_t) - 0.1 * jnp.abs(width)
        inside = jnp.where(
            jnp.isfinite(cubic) & jnp.isfinite(new_hi_f), jnp.clip(cubic, lo_b, hi_b),
            0.5 * (lo_t + new_hi_t),
        )
        ext = _cubic_min(c.lo_t, c.lo_f, c.lo_d, c.t, f, dphi)
        outside = jnp.where(jnp.isfinite(ext), jnp.clip(ext, 2.0 * c.t, 10.0 * c.t), 4.0 * c.t)
        next_t = jnp.where(bracketed, inside, jnp.minimum(outside, max_stepsize))
        done = accept | (~bracketed & (c.t >= max_stepsize))
        keep = lambda new, old: jnp.where(c.done, old, new)
        return _ZoomCarry(
            t=keep(jnp.where(accept, c.t, next_t), c.t),
            lo_t=keep(jnp.where(accept, c.t, lo_t), c.lo_t),
            lo_f=keep(jnp.where(accept, f, lo_f), c.lo_f),
            lo_d=keep(lo_d, c.lo_d),
            lo_x=tu.tree_where(c.done, c.lo_x, tu.tree_where(accept, x, lo_x)),
            lo_g=tu.tree_where(c.done, c.lo_g, tu.tree_where(accept, g, lo_g)),
            lo_aux=(
                lo_aux if a is None
                else tu.tree_where(c.done, c.lo_aux, tu.tree_where(accept, a, lo_aux))
            ),
            hi_t=keep(new_hi_t, c.hi_t),
            hi_f=keep(new_hi_f, c.hi_f),
            hi_d=keep(new_hi_d, c.hi_d),
            bracketed=keep(bracketed, c.bracketed),
            done=c.done | done,
            k=c.k + jnp.where(c.done, 0, 1),
        )

    init = _ZoomCarry(
        t=jnp.asarray(init_stepsize, dtype), lo_t=zero, lo_f=f0, lo_d=d0, lo_x=params,
        lo_g=grad, lo_aux=aux, hi_t=jnp.asarray(jnp.inf, dtype), hi_f=jnp.asarray(jnp.inf, dtype),
        hi_d=zero, bracketed=jnp.asarray(False), done=jnp.asarray(False), k=jnp.asarray(0),
    )
    c = jax.lax.while_loop(lambda c: ~c.done & (c.k < maxls), body, init)
    failed = c.lo_t <= 0
    return LineSearchResult(c.lo_t, c.lo_x, c.lo_f, c.lo_g, c.lo_aux, failed, c.k)


class _BtCarry(NamedTuple):
    t: Any
    x: Any
    f: Any
    g: Any
    aux: Any
    done: Any
    k: Any


def backtracking(
    value_and_grad: Callable,
    params,
    value,
    grad,
    direction,
    init_stepsize,
    aux=None,
    c1: float = 1e-4,
    decrease_factor: float = 0.5,
    maxls: int = 30,
    slope=None,
    step_fn: Callable | None = None,
) -> LineSearchResult:
    """Backtracking search for a step with sufficient decrease (Armijo).

    Tries ``t, t * decrease_factor, ...`` until
    ``f(x + t d) <= f(x) + c1 t <g, d>`` (or, with ``step_fn``, until
    ``f(y) <= f(x) + <g, y - x> + ||y - x||^2 / (2 t)`` for ``y = step_fn(t)``, the
    condition of proximal gradient methods).

    Args:
      value_and_grad: ``x -> ((value, aux), grad)``; ``grad`` may be ``None``
        when the caller does not need the gradient at the accepted point.
      params: current point.
      value, grad: value and gradient at ``params``.
      direction: search direction (ignored when ``step_fn`` is given).
      init_stepsize: first trial.
      aux: auxiliary output at ``params``.
      c1: sufficient-decrease constant.
      decrease_factor: shrink factor in ``(0, 1)``.
      maxls: maximum evaluations (static).
      slope: ``<g, d>`` if already known.
      step_fn: ``t -> y``, a trial point for step ``t`` (proximal condition).

    Returns:
      A :class:`LineSearchResult`.

    References:
      Armijo, "Minimization of functions having Lipschitz continuous first
      partial derivatives", 1966; Beck and Teboulle, "A fast iterative
      shrinkage-thresholding algorithm", 2009.
    """
    dtype = jnp.result_type(value)
    f0 = jnp.asarray(value, dtype)
    # Rounding slack: near a minimizer f changes by less than its own precision.
    slack = 10 * jnp.finfo(dtype).eps * jnp.abs(f0)
    if step_fn is None:
        d0 = tu.tree_vdot(grad, direction).astype(dtype) if slope is None else slope
        step_fn = lambda t: tu.tree_add_scalar_mul(params, t, direction)
        test = lambda t, y, f: f <= f0 + c1 * t * d0 + slack
    else:
        def test(t, y, f):
            diff = tu.tree_sub(y, params)
            model = f0 + tu.tree_vdot(grad, diff) + 0.5 / t * tu.tree_l2_norm(diff, True)
            return f <= model + slack

    def body(c: _BtCarry):
        y = step_fn(c.t)
        (f, a), g = value_and_grad(y)
        f = jnp.asarray(f, dtype)
        ok = jnp.isfinite(f) & test(c.t, y, f)
        keep = lambda new, old: tu.tree_where(c.done, old, new)
        return _BtCarry(
            t=keep(jnp.where(ok, c.t, c.t * decrease_factor), c.t),
            x=keep(y, c.x), f=keep(f, c.f), g=c.g if g is None else keep(g, c.g),
            aux=c.aux if a is None else keep(a, c.aux),
            done=c.done | ok, k=c.k + jnp.where(c.done, 0, 1),
        )

    init = _BtCarry(jnp.asarray(init_stepsize, dtype), params, f0, grad, aux,
                    jnp.asarray(False), jnp.asarray(0))
    c = jax.lax.while_loop(lambda c: ~c.done & (c.k < maxls), body, init)
    failed = ~c.done
    t = jnp.where(failed, jnp.zeros_like(c.t), c.t)
    x = tu.tree_where(failed, params, c.x)
    f = jnp.where(failed, f0, c.f)
    g = tu.tree_where(failed, grad, c.g)
    a = c.aux if aux is None else tu.tree_where(failed, aux, c.aux)
    return LineSearchResult(t, x, f, g, a, failed, c.k)


_LINESEARCHES = ("zoom", "hager-zhang", "more-thuente", "backtracking")


@dataclasses.dataclass(eq=False, kw_only=True)
class LineSearchOptions:
    """jaxopt's line-search keywords, checked and dispatched once for every solver using them.

    A mixin placed before :class:`jaxopt_lab.base.IterativeSolver` in a solver's bases
    (``class LBFGS(LineSearchOptions, base.IterativeSolver)``); a solver redeclares a
    field only to change its default. ``stepsize > 0`` (or a traced ``stepsize``) fixes
    the step; ``stepsize <= 0`` selects the line search and stays static under jit.

    Attributes:
      stepsize: fixed step if positive; ``0`` (default) means line search.
      linesearch: ``"zoom"`` (strong Wolfe; ``"hager-zhang"`` and ``"more-thuente"``
        map to it) or ``"backtracking"`` (Armijo).
      linesearch_init, condition, increase_factor, min_stepsize: accepted for jaxopt
        compatibility (the first trial step is chosen by each solver).
      maxls: maximum evaluations per line search (static).
      c1, c2: sufficient-decrease and curvature constants, ``0 < c1 < c2 < 1``.
      decrease_factor: backtracking shrink factor in ``(0, 1)`` (``None``: 0.5).
      max_stepsize: largest trial step of the strong-Wolfe search.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, chapter 3.
    """

    stepsize: float = 0.0
    linesearch: str = "zoom"
    linesearch_init: str = "increase"
    condition: str | None = None
    maxls: int = 30
    c1: float = 1e-4
    c2: float = 0.9
    decrease_factor: float | None = 0.5
    increase_factor: float = 1.5
    max_stepsize: float = 1e10
    min_stepsize: float = 1e-6

    def __post_init__(self):
        super().__post_init__()  # type: ignore[misc]
        if self.linesearch not in _LINESEARCHES:
            raise ValueError(f"`linesearch` must be 'zoom' or 'backtracking', got {self.linesearch!r}.")
        base.check_int(self.maxls, "maxls", minimum=1)
        for name in ("c1", "c2", "max_stepsize"):
            base.check_positive(getattr(self, name), name)
        base.check_positive(self.decrease_factor, "decrease_factor")
        if _concrete_scalar(self.stepsize):
            base.check_positive(self.stepsize, "stepsize", allow_zero=True)
        if _concrete_scalar(self.c1) and _concrete_scalar(self.c2) and not self.c1 < self.c2 < 1:
            raise ValueError(f"`c1` and `c2` must satisfy 0 < c1 < c2 < 1, got {self.c1} and {self.c2}.")
        if _concrete_scalar(self.decrease_factor) and not float(self.decrease_factor) < 1:
            raise ValueError(f"`decrease_factor` must be in (0, 1), got {self.decrease_factor}.")

    def _static_option(self, name: str, value) -> bool:
        if name == "stepsize" and base.IterativeSolver._nonpositive_sentinel(value):
            return True
        return super()._static_option(name, value)  # type: ignore[misc]

    def _fixed_step(self) -> bool:
        """Whether ``stepsize`` fixes the step (a traced step size does)."""
        return not base.is_concrete(self.stepsize) or float(self.stepsize) > 0

    def _line_search(self, value_and_grad: Callable, params, value, grad, direction, init_stepsize,
                     aux=None) -> LineSearchResult:
        """Step along ``direction``: fixed, backtracking or strong Wolfe, as the options say.

        Args:
          value_and_grad: ``x -> ((value, aux), grad)``.
          params, value, grad, aux: the current point and ``fun`` there.
          direction: a descent direction.
          init_stepsize: first trial step of the search.

        Returns:
          A :class:`LineSearchResult` (one evaluation for a fixed step).
        """
        if self._fixed_step():
            t = jnp.asarray(self.stepsize, jnp.result_type(value))
            new = tu.tree_add_scalar_mul(params, t, direction)
            (f, a), g = value_and_grad(new)
            return LineSearchResult(t, new, f, g, a, jnp.asarray(False), jnp.asarray(1))
        if self.linesearch == "backtracking":
            factor = 0.5 if self.decrease_factor is None else self.decrease_factor
            return backtracking(value_and_grad, params, value, grad, direction, init_stepsize, aux,
                                c1=self.c1, decrease_factor=factor, maxls=self.maxls)
        return strong_wolfe(value_and_grad, params, value, grad, direction, init_stepsize, aux,
                            c1=self.c1, c2=self.c2, maxls=self.maxls, max_stepsize=self.max_stepsize)


def _concrete_scalar(value) -> bool:
    return value is not None and base.is_concrete(value) and jnp.ndim(value) == 0
