"""Public line-search classes with jaxopt's ``run`` signature."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive, check_tolerance
from jaxopt_lab.core.solver import JaxoptPositional
from jaxopt_lab.core.types import Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class LineSearchState(NamedTuple):
    """State returned by a line search's ``run``.

    Attributes:
      iter_num: evaluations made.
      params: ``x + t d`` at the accepted step.
      value, grad, aux: ``fun`` at ``params``.
      failed: no acceptable step was found (``stepsize`` is then 0).
      error: 0 when accepted, 1 when failed.
      num_fun_eval, num_grad_eval: evaluation counts.
      status: :class:`jaxopt_lab.Status` (``CONVERGED`` or ``LINESEARCH_FAILED``).
    """

    iter_num: jax.Array
    params: Any
    value: jax.Array
    grad: Any
    aux: Any
    failed: jax.Array
    error: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    status: jax.Array


class LineSearchStep(NamedTuple):
    """What a line search's ``run`` / ``update`` returns, as in jaxopt.

    Attributes:
      stepsize: the accepted step size.
      state: a :class:`LineSearchState`.
    """

    stepsize: Any
    state: LineSearchState

    @property
    def params(self):
        """The step size (``OptStep``'s field name, kept for earlier code)."""
        return self.stepsize


@dataclasses.dataclass(eq=False)
class _LineSearch(JaxoptPositional):
    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 30
    tol: float = 0.0
    c1: float = 1e-4
    c2: float = 0.9
    max_stepsize: float = 1.0
    verbose: bool = False
    jit: bool = True
    unroll: bool | str = "auto"

    def __post_init__(self):
        check_callable(self.fun, "fun")
        check_int(self.maxiter, "maxiter", minimum=1)
        check_tolerance(self.tol, "tol")
        check_positive(self.c1, "c1")
        check_positive(self.c2, "c2")
        check_positive(self.max_stepsize, "max_stepsize")

    def _solver_options(self) -> dict:
        """The options a solver given ``linesearch=<this instance>`` takes from it."""
        return {"linesearch": "zoom", "c1": self.c1, "c2": self.c2, "maxls": self.maxiter,
                "max_stepsize": self.max_stepsize}

    def _vg(self, fun_args, fun_kwargs):
        """``x -> ((value, aux), grad)`` whatever ``fun`` returns."""
        f = lambda x: self.fun(x, *fun_args, **fun_kwargs)
        if self.value_and_grad:
            def vg(x):
                out, g = f(x)
                return (out if self.has_aux else (out, None)), g
            return vg
        if self.has_aux:
            return jax.value_and_grad(f, has_aux=True)
        return lambda x: (lambda r: ((r[0], None), r[1]))(jax.value_and_grad(f)(x))

    def _search(self, vg, params, value, grad, direction, t0, aux):
        # The search functions take conj(jax.grad) (the steepest ascent for complex params);
        # the result's gradient goes back to jax.grad's convention.
        conj_vg = lambda x: (lambda r: (r[0], tu.tree_conj(r[1])))(vg(x))
        r = _linesearch.strong_wolfe(conj_vg, params, value, tu.tree_conj(grad), direction, t0, aux,
                                     c1=self.c1, c2=self.c2, maxls=self.maxiter,
                                     max_stepsize=self.max_stepsize)
        return r._replace(grad=tu.tree_conj(r.grad))

    def run(self, init_stepsize, params, value=None, grad=None, descent_direction=None,
            fun_args: tuple | list = (), fun_kwargs: dict | None = None) -> LineSearchStep:
        """Search along ``descent_direction`` (default ``-conj(grad)``: ``-grad`` for real params).

        Args:
          init_stepsize: first trial step.
          params: current point.
          value, grad: ``fun`` and its gradient at ``params`` (computed if None).
          descent_direction: search direction.
          fun_args, fun_kwargs: extra arguments of ``fun``.

        Returns:
          ``LineSearchStep(stepsize, LineSearchState)``.
        """
        vg = self._vg(tuple(fun_args), dict(fun_kwargs or {}))
        aux = None
        if value is None or grad is None:
            (value, aux), grad = vg(params)
        # Default: steepest descent, -conj(grad) for complex params (jaxopt's convention).
        direction = tu.tree_negative(tu.tree_conj(grad)) if descent_direction is None else descent_direction
        t0 = jnp.minimum(jnp.asarray(init_stepsize, jnp.result_type(value)), self.max_stepsize)
        r = self._search(vg, params, value, grad, direction, t0, aux)
        status = jnp.where(r.failed, Status.LINESEARCH_FAILED, Status.CONVERGED).astype(jnp.int32)
        state = LineSearchState(
            iter_num=jnp.asarray(r.num_evals, jnp.int32), params=r.params, value=r.value, grad=r.grad,
            aux=r.aux, failed=r.failed, error=r.failed.astype(jnp.result_type(value)),
            num_fun_eval=jnp.asarray(r.num_evals, jnp.int32),
            num_grad_eval=jnp.asarray(r.num_evals, jnp.int32), status=status,
        )
        return LineSearchStep(r.stepsize, state)

    def init_state(self, init_stepsize, params, value=None, grad=None, descent_direction=None,
                   fun_args: tuple | list = (), fun_kwargs: dict | None = None) -> LineSearchState:
        """The state before the search: ``fun`` at ``params``, nothing accepted yet.

        Args:
          init_stepsize, params, value, grad, descent_direction, fun_args, fun_kwargs: as in
            :meth:`run`.

        Returns:
          A :class:`LineSearchState` with ``iter_num = 0``.
        """
        del init_stepsize, descent_direction
        vg = self._vg(tuple(fun_args), dict(fun_kwargs or {}))
        aux = None
        if value is None or grad is None:
            (value, aux), grad = vg(params)
        zero = jnp.asarray(0, jnp.int32)
        return LineSearchState(iter_num=zero, params=params, value=value, grad=grad, aux=aux,
                               failed=jnp.asarray(False), error=jnp.asarray(jnp.inf, jnp.result_type(value)),
                               num_fun_eval=zero, num_grad_eval=zero,
                               status=jnp.asarray(Status.RUNNING, jnp.int32))

    def update(self, stepsize, state: LineSearchState, params, value=None, grad=None,
               descent_direction=None, fun_args: tuple | list = (),
               fun_kwargs: dict | None = None) -> LineSearchStep:
        """The whole search from ``stepsize`` (one call does what jaxopt's update loop does).

        Args:
          stepsize: first trial step.
          state: from :meth:`init_state` (its evaluation counts are carried on).
          params, value, grad, descent_direction, fun_args, fun_kwargs: as in :meth:`run`.

        Returns:
          ``LineSearchStep(stepsize, LineSearchState)``.
        """
        out = self.run(stepsize, params, value, grad, descent_direction, fun_args, fun_kwargs)
        st = out.state._replace(num_fun_eval=out.state.num_fun_eval + state.num_fun_eval,
                                num_grad_eval=out.state.num_grad_eval + state.num_grad_eval)
        return LineSearchStep(out.stepsize, st)


@dataclasses.dataclass(eq=False)
class BacktrackingLineSearch(_LineSearch):
    """Backtracking: ``t, t * decrease_factor, ...`` until ``condition`` holds.

    With ``phi(t) = f(x + t d)`` and slope ``phi'(0) = Re<g, d>``: ``"armijo"``
    accepts ``phi(t) <= phi(0) + c1 t phi'(0)``; ``"goldstein"`` adds
    ``phi(t) >= phi(0) + (1 - c1) t phi'(0)``; ``"wolfe"`` adds
    ``phi'(t) >= c2 phi'(0)``; ``"strong-wolfe"`` (jaxopt's default) adds
    ``|phi'(t)| <= c2 |phi'(0)|``. The ``maxiter`` trials are evaluated as one batch
    (``vmap``) and the first accepted one is returned, the step jaxopt's loop finds;
    when none is accepted, ``failed`` is set and the last trial is returned, as jaxopt does.

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      condition: ``"armijo"``, ``"goldstein"``, ``"wolfe"`` or ``"strong-wolfe"``.
      tol: tolerance on the condition's violation (0: exact).
      c1, c2: sufficient-decrease and curvature constants.
      decrease_factor: shrink factor in ``(0, 1)``.
      max_stepsize: largest step.

    Returns:
      ``run`` and ``update`` return ``LineSearchStep(stepsize, LineSearchState)``.

    References:
      Armijo, "Minimization of functions having Lipschitz continuous first
      partial derivatives", Pacific J. Math., 1966.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "condition", "c1", "c2",
        "decrease_factor", "max_stepsize", "verbose", "jit", "unroll",
    )

    condition: str = "strong-wolfe"
    decrease_factor: float = 0.8

    def __post_init__(self):
        super().__post_init__()
        if self.condition not in _CONDITIONS:
            raise ValueError(f"`condition` must be one of {_CONDITIONS}, got {self.condition!r}.")

    def _solver_options(self) -> dict:
        # Armijo / Goldstein: the solvers' backtracking (Armijo); the Wolfe conditions: the
        # solvers' zoom, whose strong-Wolfe step satisfies both.
        if self.condition in ("armijo", "goldstein"):
            return {"linesearch": "backtracking", "c1": self.c1, "maxls": self.maxiter,
                    "decrease_factor": self.decrease_factor}
        return super()._solver_options()

    def _search(self, vg, params, value, grad, direction, t0, aux):
        # The trials t0, t0 * factor, ... are evaluated as one batch; the first that meets
        # the condition (violation <= tol) is accepted, as jaxopt's loop would.
        n = self.maxiter
        dtype = jnp.result_type(value)
        ts = t0 * jnp.asarray(self.decrease_factor, dtype) ** jnp.arange(n, dtype=dtype)
        slope = tu.tree_vdot_real(tu.tree_conj(grad), direction)

        def trial(t):
            x = tu.tree_add_scalar_mul(params, t, direction)
            (f, a), g = vg(x)
            new_slope = tu.tree_vdot_real(tu.tree_conj(g), direction)
            viol = _violation(self.condition, value, slope, f, new_slope, t, self.c1, self.c2)
            return x, f, g, a, viol

        xs, fs, gs, auxs, viol = jax.vmap(trial)(ts)
        ok = viol <= self.tol
        found = jnp.any(ok)
        k = jnp.where(found, jnp.argmax(ok), n - 1)
        pick = lambda tree: jax.tree_util.tree_map(lambda a: a[k], tree)
        nonfinite = ~jnp.isfinite(fs[k])
        return _linesearch.LineSearchResult(stepsize=ts[k], params=pick(xs), value=fs[k], grad=pick(gs),
                                            aux=pick(auxs), failed=~found,
                                            num_evals=(k + 1).astype(jnp.int32),
                                            nonfinite=~found & nonfinite)


_CONDITIONS = ("armijo", "goldstein", "strong-wolfe", "wolfe")


def _violation(condition, value, slope, new_value, new_slope, t, c1, c2):
    """How much a trial step violates ``condition`` (0 when it meets it; inf for NaN)."""

    def pos(d):
        return jnp.maximum(jnp.where(jnp.isnan(d), jnp.inf, d), 0.0)

    armijo = pos(new_value - (value + c1 * t * slope))  # Nocedal-Wright (3.6a)
    if condition == "armijo":
        return armijo
    if condition == "goldstein":
        return jnp.maximum(armijo, pos(value + (1 - c1) * t * slope - new_value))
    if condition == "strong-wolfe":
        return jnp.maximum(armijo, pos(jnp.abs(new_slope) - c2 * jnp.abs(slope)))  # (3.7b)
    return jnp.maximum(armijo, pos(c2 * slope - new_slope))  # (3.6b)


@dataclasses.dataclass(eq=False)
class ZoomLineSearch(_LineSearch):
    """Bracketing-and-zoom search for the strong Wolfe conditions.

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      c1, c2: Wolfe constants ``0 < c1 < c2 < 1``.
      max_stepsize: largest step (``None``, the default: ``2 ** maxiter``, as in jaxopt,
        so the search may extrapolate beyond the first trial).
      c3, rel_tol_cubic, rel_tol_quad, interval_threshold, increase_factor: jaxopt's
        tuning constants of its own interpolation, accepted (and range-checked) for
        drop-in use. They do not change which steps are acceptable (``c1``, ``c2`` do):
        this search uses its own safeguarded interpolation and extrapolation
        (:func:`jaxopt_lab.solvers.linesearch.functions.strong_wolfe`), and its approximate
        Wolfe test applies only where ``f`` changes by its rounding error (stricter than
        jaxopt's ``c3 |f|`` switch for any ``c3 >= 1e-12``).

    Returns:
      ``run`` and ``update`` return ``LineSearchStep(stepsize, LineSearchState)``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2006, Algorithms 3.5-3.6.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "c1", "c2", "c3", "rel_tol_cubic", "rel_tol_quad",
        "interval_threshold", "increase_factor", "tol", "maxiter", "max_stepsize", "verbose", "jit",
        "unroll",
    )

    c3: float = 1e-6
    rel_tol_cubic: float = 0.2
    rel_tol_quad: float = 0.1
    interval_threshold: float = 1e-6
    increase_factor: float = 2.0
    max_stepsize: float | None = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.max_stepsize is None:
            check_int(self.maxiter, "maxiter", minimum=1)
            self.max_stepsize = float(2 ** self.maxiter)
        super().__post_init__()
        check_positive(self.c3, "c3", allow_zero=True)
        _check_between(self.rel_tol_cubic, "rel_tol_cubic", 0.0, 0.5)
        _check_between(self.rel_tol_quad, "rel_tol_quad", 0.0, 0.5)
        check_positive(self.interval_threshold, "interval_threshold", allow_zero=True)
        _check_between(self.increase_factor, "increase_factor", 1.0, None)


@dataclasses.dataclass(eq=False)
class HagerZhangLineSearch(_LineSearch):
    """Line search with Hager and Zhang's approximate Wolfe conditions.

    Accepts a step satisfying the Wolfe conditions or, where ``f`` changes by less
    than its rounding error, the approximate Wolfe test
    ``(2 c1 - 1) phi'(0) >= phi'(t) >= c2 phi'(0)``. Trial steps come from the same
    bracketing and safeguarded cubic interpolation as :class:`ZoomLineSearch`
    (not Hager-Zhang's secant updates).

    Args:
      fun: objective ``fun(params, *fun_args, **fun_kwargs)``.
      value_and_grad, has_aux: as in the solvers.
      maxiter: maximum evaluations.
      c1, c2: constants (jaxopt's defaults ``0.1`` and ``0.9``).
      max_stepsize: largest step.
      expansion_factor, shrinkage_factor: jaxopt's constants of Hager and Zhang's
        bracket expansion and secant shrinking, accepted (and range-checked:
        ``expansion_factor > 1``, ``0 < shrinkage_factor < 1``) for drop-in use; the
        search here brackets and interpolates as :class:`ZoomLineSearch` does, so they
        do not change the steps (which meet the same conditions).

    Returns:
      ``run`` and ``update`` return ``LineSearchStep(stepsize, LineSearchState)``.

    References:
      Hager and Zhang, "A new conjugate gradient method with guaranteed descent
      and an efficient line search", SIAM J. Optim., 2005.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "c1", "c2", "expansion_factor",
        "shrinkage_factor", "max_stepsize", "verbose", "jit", "unroll",
    )

    c1: float = 0.1
    expansion_factor: float = 5.0
    shrinkage_factor: float = 0.66

    def __post_init__(self):
        super().__post_init__()
        _check_between(self.expansion_factor, "expansion_factor", 1.0, None)
        _check_between(self.shrinkage_factor, "shrinkage_factor", 0.0, 1.0)


def _check_between(value, name: str, low: float, high: float | None) -> None:
    """Raise ``ValueError`` unless a concrete ``value`` lies in ``(low, high)`` (``high``
    ``None``: no upper end); traced values are not checked."""
    check_positive(value, name, allow_zero=True)
    if isinstance(value, jax.core.Tracer):
        return
    v = float(value)
    if not (v > low and (high is None or v < high)):
        rule = f"> {low}" if high is None else f"in ({low}, {high})"
        raise ValueError(f"`{name}` must be {rule}, got {value!r}.")
