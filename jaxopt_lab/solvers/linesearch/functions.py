"""Line searches written for ``vmap``.

Each line search is one ``lax.while_loop`` (a masked ``lax.scan`` of ``maxls`` steps when
the solver differentiates by unrolling) whose body makes exactly one
value-and-gradient evaluation, with every decision taken by arithmetic
(``jnp.where``). Under ``vmap`` a ``cond`` turns into a ``select`` that runs both
branches, and nested data-dependent loops run every lane until the slowest finishes;
here a lane that has accepted its step only waits, and the usual case (the first
trial step accepted) costs one evaluation. The one ``lax.cond`` (the zoom search's
planning of its next trial, skipped once it stops) costs nothing extra under
``vmap`` and saves that arithmetic on a single problem.

Complex params work with jaxopt's convention: ``grad`` is the conjugate of what
``jax.grad`` returns (the steepest-ascent direction) and slopes are ``Re <g, d>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive, is_concrete, uses_line_search
from jaxopt_lab.core.control import bounded_while_loop
from jaxopt_lab.core.types import OptStep, Status


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
      stalled: the search failed along a descent direction because no decrease of
        ``f`` is representable in the dtype (steps below the rounding of ``f`` or
        of the params); solvers report it as ``STALLED``.
      nonfinite: the search failed and some trial had a finite value but a
        non-finite gradient; solvers report it as ``NONFINITE``.
    """

    stepsize: jax.Array
    params: Any
    value: jax.Array
    grad: Any
    aux: Any
    failed: jax.Array
    num_evals: jax.Array
    stalled: Any = False
    nonfinite: Any = False


def _cubic_min(a, fa, da, b, fb, db):
    """Minimizer of the cubic interpolating (f, f') at a and b (NaN if none).

    Divisions and the square root see safe operands where their result is discarded,
    so that reverse-mode derivatives of an unrolled search stay finite.
    """
    safe = lambda v: jnp.where(v != 0, v, 1.0)
    d1 = da + db - 3.0 * (fa - fb) / safe(a - b)
    disc = d1 * d1 - da * db
    root = jnp.where(disc > 0, jnp.sqrt(jnp.where(disc > 0, disc, 1.0)), 0.0)
    d2 = jnp.sign(b - a) * root
    den = db - da + 2.0 * d2
    t = b - (b - a) * (db + d2 - d1) / safe(den)
    return jnp.where((disc >= 0) & (a != b) & (den != 0) & jnp.isfinite(t), t, jnp.nan)


class _ZoomCarry(NamedTuple):
    t: Any
    lo_t: Any
    lo_f: Any
    lo_d: Any
    best_x: Any
    best_g: Any
    best_aux: Any
    hi_t: Any
    hi_f: Any
    hi_d: Any
    lo_ok: Any
    spread: Any
    nan_grad: Any
    done: Any
    k: Any


def _rounding_scale(f0, dtype):
    """Size of the rounding error of ``f`` near ``f0``: ``10 eps |f0|`` (plus a tiny floor)."""
    info = jnp.finfo(dtype)
    return 10 * info.eps * jnp.abs(f0) + info.tiny


def _step_below_ulp(params, direction, t, dtype):
    """Whether ``|t d|`` is below the spacing of floats at ``params`` for every entry."""
    amax = lambda tree: jnp.max(jnp.stack([jnp.zeros([], dtype)] + [
        jnp.max(jnp.abs(v)).astype(dtype) for v in jax.tree_util.tree_leaves(tree)]))
    xmax, dmax = amax(params), amax(direction)
    return t * dmax <= jnp.finfo(dtype).eps * xmax


def _start_done(done) -> jax.Array:
    """``done`` as a boolean array (``False`` when not given)."""
    return jnp.asarray(False) if done is None else jnp.asarray(done, bool)


def _search_loop(body: Callable, init, maxls: int, unroll: bool):
    """Run ``body`` (one evaluation each) until the carry is ``done`` or ``maxls`` are made.

    The loop carries the scalar fields of the carry (steps, values, slopes, flags and the
    count) as one vector (:class:`_ScalarPack`): each separately carried scalar is a buffer
    of its own that XLA:CPU copies and updates by an operation of its own, and a search has
    a dozen of them. One vector measured 0.54-0.72x the time of the MGH L-BFGS solves of
    10-12 params, whose memory buffers exceed 512 bytes (XLA:CPU then runs independent
    operations of a loop body on its thread pool); the others 0.95-1.11x (watson, 9 params,
    the 1.11x).
    """
    pack = _ScalarPack(init)
    more = lambda c: ~c.done & (c.k < maxls)
    out = bounded_while_loop(lambda p: more(pack.unpack(p)), lambda p: pack.pack(body(pack.unpack(p))),
                             pack.pack(init), maxls, unroll=unroll)
    return pack.unpack(out)


class _ScalarPack:
    """A ``NamedTuple`` carry whose scalar array fields travel as one vector.

    The floating scalars (all of one dtype, the search's) keep their values exactly;
    booleans travel as 0 and 1, integers (counts up to ``maxls``) as whole numbers, exact
    below ``2**24`` in float32. Other fields (points, gradients, aux, ``None``) stay as they are.

    Args:
      like: a carry (its field values give the slots and their dtypes).
    """

    def __init__(self, like):
        scalars = {name: value for name, value in like._asdict().items() if _is_scalar(value)}
        floats = [v for v in scalars.values() if jnp.issubdtype(jnp.result_type(v), jnp.floating)]
        self._type = type(like)
        self._dtype = jnp.result_type(*floats)
        self._slots = {name: jnp.result_type(value) for name, value in scalars.items()}

    def pack(self, carry):
        """``(vector of the scalar fields, dict of the other fields)``."""
        vec = jnp.stack([jnp.asarray(getattr(carry, n)).astype(self._dtype) for n in self._slots])
        return vec, {n: v for n, v in carry._asdict().items() if n not in self._slots}

    def unpack(self, packed):
        """The carry back from :meth:`pack`'s output."""
        vec, rest = packed
        fields = {n: (vec[i] != 0 if dt == jnp.bool_ else vec[i].astype(dt))
                  for i, (n, dt) in enumerate(self._slots.items())}
        return self._type(**fields, **rest)


def _is_scalar(value) -> bool:
    """Whether a carry field is one scalar array (not a pytree, not ``None``)."""
    leaves = jax.tree_util.tree_leaves(value)
    return len(leaves) == 1 and leaves[0] is value and jnp.ndim(value) == 0


def _fall_back(failed, start_point, point):
    """``point = (t, x, f, g, aux)``, or the starting point with ``t = 0`` where ``failed``.

    ``aux`` is kept as is when the start has none (``fun`` without auxiliary output).
    """
    t, x, f, g, a = point
    _, x0, f0, g0, a0 = start_point
    return (jnp.where(failed, jnp.zeros_like(t), t), tu.tree_where(failed, x0, x),
            jnp.where(failed, f0, f), tu.tree_where(failed, g0, g),
            a if a0 is None else tu.tree_where(failed, a0, a))


class _WolfeStart(NamedTuple):
    """What the strong-Wolfe searches measure at ``x``: the dtype, ``f(x)``, the slope
    ``<g, d>`` and the rounding error of ``f`` (see :func:`_rounding_scale`)."""

    dtype: Any
    f0: jax.Array
    d0: jax.Array
    fnoise: jax.Array

    @classmethod
    def at(cls, value, grad, direction) -> _WolfeStart:
        dtype = jnp.result_type(value)
        f0 = jnp.asarray(value, dtype)
        d0 = jnp.real(tu.tree_vdot(grad, direction)).astype(dtype)
        return cls(dtype, f0, d0, _rounding_scale(f0, dtype))

    def in_noise(self, t):
        """Whether the predicted change ``t |<g, d>|`` is within a hundred rounding errors of ``f``."""
        return t * jnp.abs(self.d0) <= 100 * self.fnoise

    def trial(self, value_and_grad: Callable, params, direction, t):
        """``(x, f, aux, g, slope, finite)`` at ``x = params + t d`` (one evaluation)."""
        x = tu.tree_add_scalar_mul(params, t, direction)
        (f, a), g = value_and_grad(x)
        f = jnp.asarray(f, self.dtype)
        slope = jnp.real(tu.tree_vdot(g, direction)).astype(self.dtype)
        return x, f, a, g, slope, jnp.isfinite(f) & jnp.isfinite(slope)

    def accept(self, t, f, slope, finite, suff, c1, c2):
        """The strong Wolfe test, with Hager and Zhang's approximate one in the rounding regime."""
        approx = self.in_noise(t) & (f <= self.f0 + self.fnoise) & (slope <= (2 * c1 - 1) * self.d0)
        return finite & (suff | approx) & (jnp.abs(slope) <= c2 * jnp.abs(self.d0))

    def tally(self, c, take, x, g, a, f, slope, finite, stop) -> dict:
        """The carry fields both searches update alike after a trial: the best point
        (replaced where ``take``), the spread of values seen, NaN gradients, ``done`` and ``k``.
        A lane already ``done`` keeps them."""
        skip = c.done | ~take
        spread = jnp.maximum(c.spread, jnp.where(finite, jnp.abs(f - self.f0), jnp.inf))
        return dict(
            best_x=tu.tree_where(skip, c.best_x, x),
            best_g=tu.tree_where(skip, c.best_g, g),
            best_aux=c.best_aux if a is None else tu.tree_where(skip, c.best_aux, a),
            spread=jnp.where(c.done, c.spread, spread),
            nan_grad=c.nan_grad | (~c.done & jnp.isfinite(f) & ~jnp.isfinite(slope)),
            done=c.done | stop,
            k=c.k + jnp.where(c.done, 0, 1),
        )

    def result(self, c, failed, t, f, start_point, direction, hi_t, unrepresentable) -> LineSearchResult:
        """The search's result from its final carry: the best point, or the start where
        ``failed``; ``stalled`` where no decrease is representable (all values within
        rounding, ``unrepresentable`` as the search sees it, or no step up to ``hi_t``
        moves an entry of ``x``) along a descent direction; ``nonfinite`` after a NaN gradient."""
        point = _fall_back(failed, start_point, (t, c.best_x, f, c.best_g, c.best_aux))
        params = start_point[1]
        unrepresentable = ((c.spread <= 10 * self.fnoise) | unrepresentable
                           | _step_below_ulp(params, direction, hi_t, self.dtype))
        nonfinite = failed & c.nan_grad
        stalled = failed & ~nonfinite & (c.k > 0) & (self.d0 < 0) & unrepresentable
        step, x, value, grad, aux = point
        return LineSearchResult(step, x, value, grad, aux, failed, c.k, stalled, nonfinite)


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
    done=None,
    unroll: bool = False,
) -> LineSearchResult:
    """Bracketing-and-zoom search for a step satisfying the strong Wolfe conditions.

    Conditions: ``f(x + t d) <= f(x) + c1 t <g, d>`` and
    ``|<g(x + t d), d>| <= c2 |<g, d>|``. The search keeps a low end (a step with
    sufficient decrease and a negative slope) and, once found, a high end (a step
    with too large a value or a non-negative slope); trial steps come from
    safeguarded cubic interpolation between them, or extrapolation before the high
    end exists. Where the predicted change ``t |<g, d>|`` is within a hundred times
    the rounding error of ``f`` (about ``10 eps |f|``), values cannot be compared:
    ``f`` may rise by its rounding error, steps are interpolated from the slopes
    alone (a secant, exact on quadratics) and the approximate Wolfe test of Hager
    and Zhang, ``(2 c1 - 1) <g, d> >= <g(x + t d), d>``, replaces sufficient
    decrease. If ``maxls`` evaluations pass without a Wolfe point, the low end is
    returned; if there is none, ``failed`` is set, and ``stalled`` too when the
    direction is a descent one but no decrease is representable (every step tried
    changes ``f`` by its rounding error only, or moves no entry of ``x``).

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
      done: optional boolean; when true the search makes no evaluation (a stopped
        lane under ``vmap``) and returns ``failed``.
      unroll: run the loop as a masked ``lax.scan`` of ``maxls`` steps (same result,
        reverse-mode differentiable; for solvers that differentiate by unrolling).

    Returns:
      A :class:`LineSearchResult`.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, Algorithms
      3.5 and 3.6; Hager and Zhang, "A new conjugate gradient method with
      guaranteed descent and an efficient line search", SIAM J. Optim., 2005.
    """
    w = _WolfeStart.at(value, grad, direction)
    dtype, f0, d0, fnoise, in_noise = w.dtype, w.f0, w.d0, w.fnoise, w.in_noise
    zero = jnp.zeros([], dtype)
    inf = jnp.asarray(jnp.inf, dtype)

    def interpolate(lo_t, lo_f, lo_d, hi_t, hi_f, hi_d):
        # Cubic on (f, f') at both ends; in the rounding regime a secant on f' alone.
        # Without a (finite) high end the result is discarded: finite stand-ins keep the
        # reverse-mode derivatives of an unrolled search free of NaN.
        hi_t = jnp.where(jnp.isfinite(hi_t), hi_t, lo_t + 1.0)
        finite_hi = jnp.isfinite(hi_f) & jnp.isfinite(hi_d)
        hi_f_s, hi_d_s = jnp.where(finite_hi, hi_f, lo_f), jnp.where(finite_hi, hi_d, lo_d + 1.0)
        width = hi_t - lo_t
        cubic = _cubic_min(lo_t, lo_f, lo_d, hi_t, hi_f_s, hi_d_s)
        cubic = jnp.where(finite_hi, cubic, jnp.nan)
        secant = lo_t - lo_d * width / jnp.where(hi_d_s != lo_d, hi_d_s - lo_d, 1.0)
        secant = jnp.where((hi_d > lo_d) & jnp.isfinite(hi_d), secant, jnp.nan)
        trial = jnp.where(in_noise(jnp.abs(width)) | ~jnp.isfinite(cubic), secant, cubic)
        trial = jnp.where(jnp.isfinite(hi_f) | in_noise(jnp.abs(width)), trial, jnp.nan)
        margin = 0.05 * jnp.abs(width)
        safe = jnp.clip(trial, jnp.minimum(lo_t, hi_t) + margin, jnp.maximum(lo_t, hi_t) - margin)
        return jnp.where(jnp.isfinite(trial), safe, lo_t + 0.5 * width)

    def body(c: _ZoomCarry):
        x, f, a, g, dphi, finite = w.trial(value_and_grad, params, direction, c.t)
        noise = in_noise(c.t)
        slack = jnp.where(noise, fnoise, zero)
        suff = f <= f0 + c1 * c.t * d0
        accept = w.accept(c.t, f, dphi, finite, suff, c1, c2)
        # A new low end: (nearly) sufficient decrease, no worse than the low end, slope < 0.
        to_lo = finite & (suff | (f <= f0 + slack)) & (f <= c.lo_f + slack) & (dphi < 0)
        hi_t = jnp.where(to_lo, c.hi_t, c.t)
        hi_f = jnp.where(to_lo, c.hi_f, jnp.where(finite, f, inf))
        hi_d = jnp.where(to_lo, c.hi_d, jnp.where(finite, dphi, inf))
        lo_t = jnp.where(to_lo, c.t, c.lo_t)
        lo_f = jnp.where(to_lo, f, c.lo_f)
        lo_d = jnp.where(to_lo, dphi, c.lo_d)
        bracketed = jnp.isfinite(hi_t)

        def plan():
            # Next trial: inside the bracket, or beyond t (cubic or secant through the old
            # low end and t, between 1.1 t and 10 t).
            inside = interpolate(lo_t, lo_f, lo_d, hi_t, hi_f, hi_d)
            secant = c.t - dphi * (c.t - c.lo_t) / jnp.where(dphi > c.lo_d, dphi - c.lo_d, 1.0)
            ext = jnp.where(noise, secant, _cubic_min(c.lo_t, c.lo_f, c.lo_d, c.t, f, dphi))
            ext = jnp.where(jnp.isfinite(ext) & (dphi > c.lo_d), ext, 4.0 * c.t)
            outside = jnp.minimum(jnp.clip(ext, 1.1 * c.t, 10.0 * c.t), max_stepsize)
            return jnp.where(bracketed, inside, outside).astype(dtype)

        # Stop: accepted; at the largest step with the slope still negative; or the
        # bracket has shrunk below the spacing of floats.
        collapsed = bracketed & (jnp.abs(hi_t - lo_t) <= 2 * jnp.finfo(dtype).eps * jnp.abs(hi_t))
        stop = accept | (~bracketed & (c.t >= max_stepsize)) | collapsed
        # The next trial is only planned when the search goes on: on one problem the
        # accepted first trial (the usual case) skips the interpolation; under vmap the
        # cond is a select (both sides run), as every other decision here.
        next_t = jax.lax.cond(stop | c.done, lambda: c.t, plan)
        keep = lambda new, old: jnp.where(c.done, old, new)
        take = accept | to_lo
        return _ZoomCarry(
            t=keep(jnp.where(accept, c.t, next_t), c.t),
            lo_t=keep(jnp.where(accept, c.t, lo_t), c.lo_t),
            lo_f=keep(jnp.where(accept, f, lo_f), c.lo_f),
            lo_d=keep(jnp.where(accept, dphi, lo_d), c.lo_d),
            hi_t=keep(hi_t, c.hi_t),
            hi_f=keep(hi_f, c.hi_f),
            hi_d=keep(hi_d, c.hi_d),
            lo_ok=keep(jnp.where(take, accept | suff, c.lo_ok), c.lo_ok),
            **w.tally(c, take, x, g, a, f, dphi, finite, stop),
        )

    init = _ZoomCarry(
        t=jnp.asarray(init_stepsize, dtype), lo_t=zero, lo_f=f0, lo_d=d0, best_x=params,
        best_g=grad, best_aux=aux, hi_t=inf, hi_f=inf, hi_d=inf, lo_ok=jnp.asarray(False),
        spread=zero, nan_grad=jnp.asarray(False), done=_start_done(done), k=jnp.asarray(0, jnp.int32),
    )
    c = _search_loop(body, init, maxls, unroll)
    # Out of evaluations, the low end is returned only if it has sufficient decrease.
    failed = (c.lo_t <= 0) | ~c.lo_ok
    # No representable decrease also where the bracket lies in the rounding regime with a
    # non-negative slope at its top (a function consistent with its gradient).
    return w.result(c, failed, c.lo_t, c.lo_f, (zero, params, f0, grad, aux), direction, c.hi_t,
                    in_noise(c.hi_t) & (c.hi_d >= 0))


# A grown step is trusted only when the test's allowance exceeds this many eps |f|
# (ten times the rounding slack): then it passes or fails on f, not on rounding.
GROWTH_MARGIN = 100.0


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
    done=None,
    unroll: bool = False,
    strict_first=False,
) -> LineSearchResult:
    """Backtracking search for a step with sufficient decrease (Armijo).

    Tries ``t, t * decrease_factor, ...`` until
    ``f(x + t d) <= f(x) + c1 t <g, d>`` (or, with ``step_fn``, until
    ``f(y) <= f(x) + <g, y - x> + ||y - x||^2 / (2 t)`` for ``y = step_fn(t)``, the
    condition of proximal gradient methods). Near a minimizer ``f`` changes by less
    than its rounding, so the test allows a slack of ``10 eps |f(x)|``.

    The slack would accept an arbitrarily long step once every change of ``f`` is
    rounding noise, so a step grown beyond the last accepted one (``strict_first``)
    must pass on its own: its first trial is accepted only when the test holds
    without slack and the allowance the verdict hinges on (``||y - x||^2 / (2 t)``
    with ``step_fn``, ``-c1 t <g, d>`` otherwise) exceeds ``GROWTH_MARGIN eps |f(x)|``.
    Otherwise the search goes on to ``t * decrease_factor`` under the usual test.

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
      done: optional boolean; when true the search makes no evaluation (a stopped
        lane under ``vmap``) and returns ``failed``.
      unroll: run the loop as a masked ``lax.scan`` of ``maxls`` steps (same result,
        reverse-mode differentiable; for solvers that differentiate by unrolling).
      strict_first: boolean (may be traced): the first trial is a grown step, judged
        by the strict test above.

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
    slope_known = step_fn is None
    strict_first = jnp.asarray(strict_first, bool)
    # A grown first trial: no slack, and an allowance well above f's rounding.
    margin_floor = GROWTH_MARGIN * jnp.finfo(dtype).eps * jnp.abs(f0)

    def judge(f, bound, allowance, strict):
        lenient = f <= bound + slack
        return jnp.where(strict, (f <= bound) & (allowance > margin_floor), lenient)

    if step_fn is None:
        d0 = jnp.real(tu.tree_vdot(grad, direction)).astype(dtype) if slope is None else slope
        step_fn = lambda t: tu.tree_add_scalar_mul(params, t, direction)
        test = lambda t, y, f, strict: judge(f, f0 + c1 * t * d0, -c1 * t * d0, strict)
    else:
        def test(t, y, f, strict):
            diff = tu.tree_sub(y, params)
            prox_term = 0.5 / t * tu.tree_l2_norm(diff, True)
            return judge(f, f0 + jnp.real(tu.tree_vdot(grad, diff)) + prox_term, prox_term, strict)

    def body(c: _BtCarry):
        y = step_fn(c.t)
        (f, a), g = value_and_grad(y)
        f = jnp.asarray(f, dtype)
        ok = jnp.isfinite(f) & test(c.t, y, f, strict_first & (c.k == 0))
        keep = lambda new, old: tu.tree_where(c.done, old, new)
        return _BtCarry(
            t=keep(jnp.where(ok, c.t, c.t * decrease_factor), c.t),
            x=keep(y, c.x), f=keep(f, c.f), g=c.g if g is None else keep(g, c.g),
            aux=c.aux if a is None else keep(a, c.aux),
            done=c.done | ok, k=c.k + jnp.where(c.done, 0, 1),
        )

    start_done = _start_done(done)
    init = _BtCarry(jnp.asarray(init_stepsize, dtype), params, f0, grad, aux, start_done,
                    jnp.asarray(0, jnp.int32))
    c = _search_loop(body, init, maxls, unroll)
    failed = ~c.done | start_done
    t, x, f, g, a = _fall_back(failed, (None, params, f0, grad, aux), (c.t, c.x, c.f, c.g, c.aux))
    stalled = jnp.asarray(False)
    if direction is not None and slope_known:
        # The last trial step (twice the step now in c.t) was below f's rounding or x's.
        t_last = c.t / decrease_factor
        stalled = (failed & ~start_done & (d0 < 0)
                   & ((t_last * jnp.abs(d0) <= 100 * _rounding_scale(f0, dtype))
                      | _step_below_ulp(params, direction, t_last, dtype)))
    return LineSearchResult(t, x, f, g, a, failed, c.k, stalled)


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """One safeguarded step of Moré and Thuente's interval update (their section 4).

    ``(stx, fx, dx)`` is the best point so far, ``(sty, fy, dy)`` the other end of the
    interval, ``(stp, fp, dp)`` the trial. Every case is computed and the right one
    selected by arithmetic (no branch), so that the step is cheap under ``vmap``.

    Returns:
      ``(stx, fx, dx, sty, fy, dy, brackt, next_step)``.
    """
    sgnd = dp * jnp.sign(dx)

    def cubic_gamma(theta, a, b):
        s = jnp.maximum(jnp.maximum(jnp.abs(theta), jnp.abs(a)), jnp.abs(b))
        s = jnp.where(s > 0, s, 1.0)
        return s * jnp.sqrt(jnp.maximum((theta / s) ** 2 - (a / s) * (b / s), 0.0))

    safe = lambda v: jnp.where(v != 0, v, 1.0)
    theta = 3.0 * (fx - fp) / safe(stp - stx) + dx + dp
    gamma = cubic_gamma(theta, dx, dp)
    # Case 1: a higher value. The minimizer is bracketed; the cubic step if it is closer
    # to stx than the quadratic one (on f and dx), else their mean.
    g1 = jnp.where(stp < stx, -gamma, gamma)
    r1 = ((g1 - dx) + theta) / safe(((g1 - dx) + g1) + dp)
    stpc1 = stx + r1 * (stp - stx)
    stpq1 = stx + ((dx / safe((fx - fp) / safe(stp - stx) + dx)) / 2.0) * (stp - stx)
    stpf1 = jnp.where(jnp.abs(stpc1 - stx) < jnp.abs(stpq1 - stx), stpc1, stpc1 + (stpq1 - stpc1) / 2.0)
    # Cases 2 and 3 share the cubic through both points seen from stp.
    g23 = jnp.where(stp > stx, -gamma, gamma)
    stpq = stp + (dp / safe(dp - dx)) * (stx - stp)  # secant on the derivatives
    # Case 2: derivatives of opposite signs: bracketed; the step farther from stp.
    r2 = ((g23 - dp) + theta) / safe(((g23 - dp) + g23) + dx)
    stpc2 = stp + r2 * (stx - stp)
    stpf2 = jnp.where(jnp.abs(stpc2 - stp) > jnp.abs(stpq - stp), stpc2, stpq)
    # Case 3: the derivative's magnitude decreases: the cubic step only if it goes the
    # right way, else the interval's end; inside a bracket no farther than 0.66 of it.
    r3 = ((g23 - dp) + theta) / safe((g23 + (dx - dp)) + g23)
    stpc3 = jnp.where((r3 < 0) & (g23 != 0), stp + r3 * (stx - stp), jnp.where(stp > stx, stpmax, stpmin))
    near = jnp.where(jnp.abs(stpc3 - stp) < jnp.abs(stpq - stp), stpc3, stpq)
    far = jnp.where(jnp.abs(stpc3 - stp) > jnp.abs(stpq - stp), stpc3, stpq)
    cap = stp + 0.66 * (sty - stp)
    stpf3 = jnp.where(brackt, jnp.where(stp > stx, jnp.minimum(cap, near), jnp.maximum(cap, near)),
                      jnp.clip(far, stpmin, stpmax))
    # Case 4: no decrease of the derivative's magnitude: the cubic through stp and sty
    # inside a bracket, else the interval's end.
    theta4 = 3.0 * (fp - fy) / safe(sty - stp) + dy + dp
    g4 = cubic_gamma(theta4, dy, dp)
    g4 = jnp.where(stp > sty, -g4, g4)
    r4 = ((g4 - dp) + theta4) / safe(((g4 - dp) + g4) + dy)
    stpf4 = jnp.where(brackt, stp + r4 * (sty - stp), jnp.where(stp > stx, stpmax, stpmin))

    case1, case2 = fp > fx, sgnd < 0
    case3 = jnp.abs(dp) < jnp.abs(dx)
    stpf = jnp.where(case1, stpf1, jnp.where(case2, stpf2, jnp.where(case3, stpf3, stpf4)))
    brackt = brackt | case1 | case2
    # The new interval: the trial replaces the end that keeps the minimizer inside.
    to_y = case1
    swap = ~case1 & case2
    sty_n = jnp.where(to_y, stp, jnp.where(swap, stx, sty))
    fy_n = jnp.where(to_y, fp, jnp.where(swap, fx, fy))
    dy_n = jnp.where(to_y, dp, jnp.where(swap, dx, dy))
    stx_n = jnp.where(to_y, stx, stp)
    fx_n = jnp.where(to_y, fx, fp)
    dx_n = jnp.where(to_y, dx, dp)
    return stx_n, fx_n, dx_n, sty_n, fy_n, dy_n, brackt, stpf


class _MTCarry(NamedTuple):
    t: Any
    stx: Any
    fx: Any
    dx: Any
    sty: Any
    fy: Any
    dy: Any
    brackt: Any
    stage2: Any
    stmin: Any
    stmax: Any
    width: Any
    width1: Any
    best_x: Any
    best_g: Any
    best_aux: Any
    accepted: Any
    spread: Any
    nan_grad: Any
    done: Any
    k: Any


def more_thuente(
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
    done=None,
    unroll: bool = False,
) -> LineSearchResult:
    """Moré and Thuente's line search for a step satisfying the strong Wolfe conditions.

    Keeps an interval ``[stx, sty]`` (``stx`` the best step so far) and picks each trial
    by safeguarded cubic and quadratic interpolation in four cases (a higher value;
    derivatives of opposite signs; a derivative decreasing in magnitude; one that does
    not), extrapolating between ``1.1`` and ``4`` times the step before the minimizer
    is bracketed and bisecting when the interval does not shrink by a third. Until a
    step with ``psi(t) = f(x + t d) - f(x) - c1 t <g, d> <= 0`` and a non-negative
    slope is seen, the steps are chosen on ``psi`` rather than ``f`` (the first stage),
    which is what guarantees a step with sufficient decrease. In the rounding regime of
    ``f`` (a predicted change within a hundred times its rounding error) the
    approximate Wolfe test of Hager and Zhang replaces sufficient decrease, as in
    :func:`strong_wolfe`. If ``maxls`` evaluations pass without a Wolfe point, the best
    step is returned if it has sufficient decrease; otherwise ``failed`` is set (with
    ``stalled`` or ``nonfinite`` as in :func:`strong_wolfe`). One evaluation per loop
    iteration and no ``lax.cond``.

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
      done: optional boolean; when true the search makes no evaluation (a stopped
        lane under ``vmap``) and returns ``failed``.
      unroll: run the loop as a masked ``lax.scan`` of ``maxls`` steps (same result,
        reverse-mode differentiable; for solvers that differentiate by unrolling).

    Returns:
      A :class:`LineSearchResult`.

    References:
      Moré and Thuente, "Line search algorithms with guaranteed sufficient decrease",
      ACM Trans. Math. Software 20(3), 1994.
    """
    w = _WolfeStart.at(value, grad, direction)
    dtype, f0, d0 = w.dtype, w.f0, w.d0
    zero = jnp.zeros([], dtype)
    gtest = c1 * d0
    xtol = 10 * jnp.finfo(dtype).eps
    stpmax = jnp.asarray(max_stepsize, dtype)

    def body(c: _MTCarry):
        x, f, a, g, dp, finite = w.trial(value_and_grad, params, direction, c.t)
        suff = f <= f0 + c.t * gtest
        accept = w.accept(c.t, f, dp, finite, suff, c1, c2)
        stage2 = c.stage2 | (finite & suff & (dp >= 0))
        # First stage: steps chosen on psi (f shifted by the sufficient-decrease line)
        # while f is lower than at stx but the decrease is not sufficient.
        shift = ~stage2 & (f <= c.fx) & ~suff
        lin_f = lambda v, t: jnp.where(shift, v - t * gtest, v)
        lin_d = lambda v: jnp.where(shift, v - gtest, v)
        stx, fx, dx, sty, fy, dy, brackt, nxt = _dcstep(
            c.stx, lin_f(c.fx, c.stx), lin_d(c.dx), c.sty, lin_f(c.fy, c.sty), lin_d(c.dy),
            c.t, lin_f(f, c.t), lin_d(dp), c.brackt, c.stmin, c.stmax)
        unlin_f = lambda v, t: jnp.where(shift, v + t * gtest, v)
        unlin_d = lambda v: jnp.where(shift, v + gtest, v)
        fx, fy, dx, dy = unlin_f(fx, stx), unlin_f(fy, sty), unlin_d(dx), unlin_d(dy)
        # A non-finite trial: the far end of a bracket, and bisect back towards stx.
        stx, fx, dx = [jnp.where(finite, new, old) for new, old in ((stx, c.stx), (fx, c.fx), (dx, c.dx))]
        sty = jnp.where(finite, sty, c.t)
        fy = jnp.where(finite, fy, jnp.inf)
        dy = jnp.where(finite, dy, jnp.inf)
        brackt = brackt | ~finite
        nxt = jnp.where(finite & jnp.isfinite(nxt), nxt, stx + 0.5 * (sty - stx))
        # Bisect when the bracket did not shrink enough over two steps.
        halve = brackt & (jnp.abs(sty - stx) >= 0.66 * c.width1)
        nxt = jnp.where(halve, stx + 0.5 * (sty - stx), nxt)
        width1 = jnp.where(brackt, c.width, c.width1)
        width = jnp.where(brackt, jnp.abs(sty - stx), c.width)
        stmin = jnp.where(brackt, jnp.minimum(stx, sty), nxt + 1.1 * (nxt - stx))
        stmax = jnp.where(brackt, jnp.maximum(stx, sty), nxt + 4.0 * (nxt - stx))
        nxt = jnp.clip(nxt, 0.0, stpmax)
        # Stop: accepted; at the largest step with sufficient decrease and a negative
        # slope; or the bracket has shrunk to rounding (the best point is returned).
        at_max = (c.t >= stpmax) & finite & suff & (dp <= gtest)
        collapsed = brackt & ((stmax - stmin <= xtol * stmax) | (nxt <= stmin) | (nxt >= stmax))
        took = accept | at_max
        best = took | (finite & (stx == c.t))
        keep = lambda new, old: jnp.where(c.done, old, new)
        return _MTCarry(
            t=keep(jnp.where(took, c.t, nxt), c.t),
            stx=keep(jnp.where(took, c.t, stx), c.stx), fx=keep(jnp.where(took, f, fx), c.fx),
            dx=keep(jnp.where(took, dp, dx), c.dx), sty=keep(sty, c.sty), fy=keep(fy, c.fy),
            dy=keep(dy, c.dy), brackt=keep(brackt, c.brackt), stage2=keep(stage2, c.stage2),
            stmin=keep(stmin, c.stmin), stmax=keep(stmax, c.stmax), width=keep(width, c.width),
            width1=keep(width1, c.width1), accepted=c.accepted | (~c.done & took),
            **w.tally(c, best, x, g, a, f, dp, finite, took | collapsed),
        )

    start_done = _start_done(done)
    t0 = jnp.minimum(jnp.asarray(init_stepsize, dtype), stpmax)
    width = stpmax
    init = _MTCarry(
        t=t0, stx=zero, fx=f0, dx=d0, sty=zero, fy=f0, dy=d0, brackt=jnp.asarray(False),
        stage2=jnp.asarray(False), stmin=zero, stmax=t0 + 4.0 * t0, width=width, width1=2 * width,
        best_x=params, best_g=grad, best_aux=aux, accepted=jnp.asarray(False), spread=zero,
        nan_grad=jnp.asarray(False), done=start_done, k=jnp.asarray(0, jnp.int32),
    )
    c = _search_loop(body, init, maxls, unroll)
    # Out of evaluations, the best step is returned only if it has sufficient decrease.
    ok = c.accepted | ((c.stx > 0) & (c.fx <= f0 + c.stx * gtest))
    failed = ~ok | start_done
    return w.result(c, failed, c.stx, c.fx, (zero, params, f0, grad, aux), direction,
                    jnp.maximum(c.sty, c.t), False)


def stopped(status) -> jax.Array:
    """Whether a solver state with this status has stopped (not running, not at ``maxiter``).

    A stopped lane's update makes no evaluation and returns its state unchanged; a
    lane at ``MAX_ITER`` still iterates when ``update`` is called by hand.

    Args:
      status: a :class:`jaxopt_lab.Status` code (array).

    Returns:
      A boolean array.
    """
    return (status != Status.RUNNING) & (status != Status.MAX_ITER)


def select_result(pred, on_true: LineSearchResult, on_false: LineSearchResult) -> LineSearchResult:
    """``on_true`` where ``pred`` holds, else ``on_false``, field by field.

    Args:
      pred: boolean scalar.
      on_true, on_false: two results of searches from the same point.

    Returns:
      A :class:`LineSearchResult`.
    """
    fields = [None if a is None else tu.tree_where(pred, a, b)
              for a, b in zip(on_true, on_false, strict=True)]
    return LineSearchResult._make(fields)


def failure_status(ls: LineSearchResult) -> jax.Array:
    """The status a quasi-Newton or CG step takes from its line search.

    Args:
      ls: the search's result.

    Returns:
      ``RUNNING`` if it succeeded; otherwise ``NONFINITE`` (NaN gradient where ``f``
      was finite), ``STALLED`` (no representable decrease) or ``LINESEARCH_FAILED``.
    """
    failure = jnp.where(ls.nonfinite, Status.NONFINITE,
                        jnp.where(ls.stalled, Status.STALLED, Status.LINESEARCH_FAILED))
    return jnp.where(ls.failed, failure, Status.RUNNING).astype(jnp.int32)


def error_after(ls: LineSearchResult, dtype) -> jax.Array:
    """Gradient norm at the search's point; NaN when the search met a NaN gradient and failed.

    Args:
      ls: the search's result.
      dtype: dtype of the error.

    Returns:
      A scalar.
    """
    error = tu.tree_l2_norm(ls.grad).astype(dtype)
    return jnp.where(ls.failed & ls.nonfinite, jnp.nan, error)


def keep_if_stopped(stop, params, state, new_params, new_state):
    """``OptStep(params, state)`` unchanged for a stopped lane, else the new one.

    Args:
      stop: boolean scalar (see :func:`stopped`).
      params, state: the step's inputs.
      new_params, new_state: the step's outputs.

    Returns:
      An ``OptStep``.
    """
    return OptStep(tu.tree_where(stop, params, new_params), tu.tree_where(stop, state, new_state))


_LINESEARCHES = ("zoom", "hager-zhang", "more-thuente", "backtracking")


@dataclasses.dataclass(eq=False, kw_only=True)
class LineSearchOptions:
    """jaxopt's line-search keywords, checked and dispatched once for every solver using them.

    A mixin placed before :class:`jaxopt_lab.IterativeSolver` in a solver's bases
    (``class LBFGS(LineSearchOptions, IterativeSolver)``); a solver redeclares a
    field only to change its default. ``stepsize > 0`` (or a traced ``stepsize``) fixes
    the step; ``stepsize <= 0`` selects the line search and stays static under jit.

    Attributes:
      stepsize: fixed step if positive; ``<= 0`` (default ``0``) means line search.
      linesearch: ``"zoom"`` (strong Wolfe, :func:`strong_wolfe`; ``"hager-zhang"`` maps
        to it), ``"more-thuente"`` (strong Wolfe, :func:`more_thuente`) or
        ``"backtracking"`` (Armijo); or, as in jaxopt, a line-search instance
        (``BacktrackingLineSearch``, ``ZoomLineSearch``, ``HagerZhangLineSearch``) whose
        options it takes.
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
    linesearch: Any = "zoom"
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
        # jaxopt style: a line-search instance (BacktrackingLineSearch(...), ...) sets the options.
        solver_options = getattr(self.linesearch, "_solver_options", None)
        if callable(solver_options):
            for name, value in solver_options().items():
                object.__setattr__(self, name, value)
        if self.linesearch not in _LINESEARCHES:
            raise ValueError(f"`linesearch` must be 'zoom' or 'backtracking', got {self.linesearch!r}.")
        check_int(self.maxls, "maxls", minimum=1)
        for name in ("c1", "c2", "max_stepsize"):
            check_positive(getattr(self, name), name)
        check_positive(self.decrease_factor, "decrease_factor")
        if _concrete_scalar(self.c1) and _concrete_scalar(self.c2) and not self.c1 < self.c2 < 1:
            raise ValueError(f"`c1` and `c2` must satisfy 0 < c1 < c2 < 1, got {self.c1} and {self.c2}.")
        if _concrete_scalar(self.decrease_factor) and not float(self.decrease_factor) < 1:
            raise ValueError(f"`decrease_factor` must be in (0, 1), got {self.decrease_factor}.")

    def _static_option(self, name: str, value) -> bool:
        if name == "stepsize" and uses_line_search(value):
            return True
        return super()._static_option(name, value)  # type: ignore[misc]

    def _fixed_step(self) -> bool:
        """Whether ``stepsize`` fixes the step (a traced step size does)."""
        return not uses_line_search(self.stepsize)

    def _line_search(self, value_and_grad: Callable, params, value, grad, direction, init_stepsize,
                     aux=None, done=None) -> LineSearchResult:
        """Step along ``direction``: fixed, backtracking or strong Wolfe, as the options say.

        Args:
          value_and_grad: ``x -> ((value, aux), grad)``.
          params, value, grad, aux: the current point and ``fun`` there.
          direction: a descent direction.
          init_stepsize: first trial step of the search.
          done: optional boolean; true makes the search a no-op (a stopped lane).

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
                                c1=self.c1, decrease_factor=factor, maxls=self.maxls, done=done,
                                unroll=self._unrolled())  # type: ignore[attr-defined]
        search = more_thuente if self.linesearch == "more-thuente" else strong_wolfe
        return search(value_and_grad, params, value, grad, direction, init_stepsize, aux,
                      c1=self.c1, c2=self.c2, maxls=self.maxls, max_stepsize=self.max_stepsize, done=done,
                      unroll=self._unrolled())  # type: ignore[attr-defined]


def _concrete_scalar(value) -> bool:
    return value is not None and is_concrete(value) and jnp.ndim(value) == 0
