"""Frank-Wolfe (conditional gradient) over a set given by its linear minimization oracle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import loop as _loop
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.ops.lmo import polytope_of

_VARIANTS = ("vanilla", "away", "pairwise")
_STEPSIZES = ("short", "backtracking", "open_loop")
# Backtracking (Pedregosa et al. 2020): each step tries the smoothness estimates
# _ETA * L * _TAU**j, j < _CANDIDATES, all evaluated in one vmap, and keeps the first accepted.
_ETA, _TAU, _CANDIDATES = 0.9, 2.0, 4
# Unrolled runs scan over chunks of this many steps; a chunk after the stop is skipped.
_CHUNK = 16


class FrankWolfeState(NamedTuple):
    """State of :class:`FrankWolfe` and :class:`StochasticFrankWolfe`.

    Attributes:
      iter_num: iterations done.
      value: ``fun`` at the current params.
      error: Frank-Wolfe gap ``<grad, x - lmo(grad)>`` at the current params (an upper bound
        on ``f(x) - min f`` for convex ``f``; with :class:`StochasticFrankWolfe`, computed
        with the averaged gradient).
      grad: gradient at the current params (the averaged gradient for the stochastic variant).
      vertex: ``lmo(grad, hyperparams_lmo)``, the next Frank-Wolfe vertex.
      lipschitz: smoothness constant used by the step (estimated by backtracking).
      weights: convex weights of the current point over the polytope's vertices (away and
        pairwise variants), else ``None``.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    grad: Any
    vertex: Any
    lipschitz: jax.Array
    weights: jax.Array | None
    aux: Any
    status: jax.Array


def _check_lmo(lmo, params, hyperparams_lmo) -> None:
    """``ValueError`` naming ``lmo`` unless it returns a pytree shaped like ``params``."""
    out = jax.eval_shape(lmo, params, hyperparams_lmo)
    want = jax.eval_shape(lambda p: p, params)
    leaves = jax.tree_util.tree_leaves
    if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(want) or any(
            a.shape != b.shape for a, b in zip(leaves(out), leaves(want), strict=True)):
        shapes = lambda t: jax.tree_util.tree_map(lambda a: tuple(a.shape), t)
        raise ValueError(f"`lmo` must return a point shaped like the params {shapes(want)}, "
                         f"got {shapes(out)}.")


@dataclasses.dataclass(eq=False)
class FrankWolfe(IterativeSolver):
    """``min fun(x, *args)`` over a compact convex set ``C`` given by its oracle ``lmo``.

    Each step moves towards the vertex ``s = lmo(grad f(x), hyperparams_lmo)`` minimizing
    the linearization over ``C``, so iterates stay feasible without projections.

    - ``variant="vanilla"``: ``x+ = x + gamma (s - x)``, ``gamma in [0, 1]``: ``O(1/k)``.
    - ``variant="away"``: also considers moving away from the worst vertex ``v`` of the
      current convex decomposition (``x+ = x + gamma (x - v)``), dropping vertices.
    - ``variant="pairwise"``: moves mass from ``v`` to ``s`` (``x+ = x + gamma (s - v)``).

    Away and pairwise steps converge linearly for strongly convex ``fun`` over a polytope
    (Lacoste-Julien and Jaggi 2015); they need an oracle carrying a
    :class:`jaxopt_lab.lmo.Polytope` (:func:`jaxopt_lab.lmo.lmo_simplex`,
    :func:`jaxopt_lab.lmo.lmo_l1_ball`), and keep the weights over all vertices as a
    fixed-size vector in the state (``init_params`` must lie in ``C``).

    Step sizes: ``"short"`` minimizes the quadratic upper bound with the given
    ``lipschitz`` constant, ``gamma = min(gamma_max, <-grad, d> / (L ||d||^2))``;
    ``"backtracking"`` (default) does the same with a local estimate of ``L`` adapted at
    every step (Pedregosa et al. 2020; the candidates are evaluated in one ``vmap``, and a
    step with none accepted leaves ``x`` unchanged and raises ``L``); ``"open_loop"`` is
    ``gamma = 2 / (k + 2)`` (vanilla rate, no function values).

    ``state.error`` is the Frank-Wolfe gap ``<grad f(x), x - s>``, which bounds
    ``f(x) - min_C f`` for convex ``f``. Derivatives: the solution of a polytope-constrained
    problem is only piecewise smooth in the data, so ``implicit_diff`` defaults to
    ``False`` and ``run`` is differentiated through its iterations (a ``lax.scan``
    over chunks of 16 steps, a chunk after the stop skipped by ``lax.cond``, so an
    un-batched run costs the iterations it takes, rounded up to a chunk; under ``vmap``
    every lane computes until the scan ends, with each lane's result and status its own);
    pass ``unroll=False`` for a ``while_loop`` that stops at ``tol`` when no reverse-mode
    derivative is needed.

    Args:
      fun: smooth objective ``fun(params, *args, **kwargs)``.
      lmo: ``lmo(grad, hyperparams_lmo) -> vertex`` (see :mod:`jaxopt_lab.lmo`).
      variant: ``"vanilla"``, ``"away"`` or ``"pairwise"`` (static).
      stepsize: ``"backtracking"``, ``"short"`` or ``"open_loop"`` (static).
      lipschitz: smoothness constant of ``fun`` (required by ``"short"``; the initial
        estimate of ``"backtracking"``, else one from a gradient difference).
      maxiter: maximum iterations.
      tol: stop when the Frank-Wolfe gap is ``<= tol``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run(init_params, hyperparams_lmo, *args, **kwargs)`` returns
      ``OptStep(params, FrankWolfeState)``.

    References:
      Frank and Wolfe, "An algorithm for quadratic programming", Naval Res. Logist. Q.,
      1956; Lacoste-Julien and Jaggi, "On the Global Linear Convergence of Frank-Wolfe
      Optimization Variants", NeurIPS 2015 (arXiv:1511.05932); Pedregosa, Negiar, Askari and
      Jaggi, "Linearly Convergent Frank-Wolfe with Backtracking Line-Search", AISTATS 2020
      (arXiv:1806.05123).
    """

    fun: Callable
    lmo: Callable
    _: dataclasses.KW_ONLY
    variant: str = "vanilla"
    stepsize: str = "backtracking"
    lipschitz: float | jax.Array | None = None
    maxiter: int = 1000
    tol: float = 1e-6
    implicit_diff: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.lmo, "lmo")
        if self.variant not in _VARIANTS:
            raise ValueError(f"`variant` must be one of {_VARIANTS}, got {self.variant!r}.")
        if self.stepsize not in _STEPSIZES:
            raise ValueError(f"`stepsize` must be one of {_STEPSIZES}, got {self.stepsize!r}.")
        if self.variant != "vanilla" and polytope_of(self.lmo) is None:
            raise ValueError(f"variant={self.variant!r} needs an `lmo` with a vertex description "
                             "(`lmo.polytope`, e.g. jaxopt_lab.lmo.lmo_simplex or lmo_l1_ball); "
                             "use variant='vanilla' for other sets.")
        if self.stepsize == "short" and self.lipschitz is None:
            raise ValueError("stepsize='short' needs `lipschitz` (the smoothness constant of `fun`); "
                             "use stepsize='backtracking' to estimate it.")
        if self.lipschitz is not None:
            check_positive(self.lipschitz, "lipschitz")

    # ------------------------------------------------------------------ pieces
    def _gradient(self, params, state, args, kwargs):
        """``((value, aux), grad)`` at ``params``; the stochastic variant averages it."""
        del state
        return self._value_and_grad_fun()(params, *args, **kwargs)

    def _initial_lipschitz(self, params, grad, vertex, args, kwargs, dtype):
        if self.lipschitz is not None:
            return jnp.asarray(self.lipschitz, dtype)
        if self.stepsize != "backtracking":
            return jnp.ones((), dtype)
        # A secant estimate along the first direction (Pedregosa et al. 2020, section 3).
        d = tu.tree_sub(vertex, params)
        eps = jnp.asarray(1e-3, dtype)
        g2 = self._value_and_grad_fun()(tu.tree_add_scalar_mul(params, eps, d), *args, **kwargs)[1]
        dn = tu.tree_l2_norm(d).astype(dtype)
        est = tu.tree_l2_norm(tu.tree_sub(g2, grad)).astype(dtype) / (eps * dn)
        return jnp.where(jnp.isfinite(est) & (est > 0), est, jnp.ones((), dtype))

    def init_state(self, init_params, hyperparams_lmo, *args, **kwargs) -> FrankWolfeState:
        """Gradient, vertex and Frank-Wolfe gap at ``init_params``.

        Args:
          init_params: initial point in the set (a pytree).
          hyperparams_lmo: hyperparameters of ``lmo`` (e.g. the radius).
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`FrankWolfeState`.
        """
        _check_lmo(self.lmo, init_params, hyperparams_lmo)
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        vertex = self.lmo(grad, hyperparams_lmo)
        gap = tu.tree_vdot(grad, tu.tree_sub(init_params, vertex)).astype(dtype)
        weights = None
        if self.variant != "vanilla":
            weights = polytope_of(self.lmo).weights(init_params, hyperparams_lmo).astype(dtype)
        lip = self._initial_lipschitz(init_params, grad, vertex, args, kwargs, dtype)
        return FrankWolfeState(jnp.asarray(0, jnp.int32), jnp.asarray(value), gap, grad, vertex, lip,
                               weights, aux, jnp.asarray(Status.RUNNING, jnp.int32))

    def _direction(self, params, state, hyperparams_lmo):
        """(direction, gamma_max, weight update ``(gamma, drop) -> weights``)."""
        x, g, s = params, state.grad, state.vertex
        dtype = jnp.result_type(state.value)
        if self.variant == "vanilla":
            return tu.tree_sub(s, x), jnp.ones((), dtype), lambda gamma, drop: None
        poly = polytope_of(self.lmo)
        w = state.weights
        scores = poly.scores(g, hyperparams_lmo)
        i_fw = jnp.argmin(scores)
        i_away = jnp.argmax(jnp.where(w > 0, scores, -jnp.inf))
        v = poly.vertex(i_away, x, hyperparams_lmo)
        w_away = w[i_away]
        if self.variant == "pairwise":
            def new_weights(gamma, drop):
                w2 = w.at[i_fw].add(gamma).at[i_away].add(-gamma)
                return w2.at[i_away].set(jnp.where(drop, 0, jnp.maximum(w2[i_away], 0)))
            return tu.tree_sub(s, v), w_away, new_weights
        # Away steps: the better of the Frank-Wolfe and away directions.
        fw_gap = tu.tree_vdot(g, tu.tree_sub(x, s))
        away_gap = tu.tree_vdot(g, tu.tree_sub(v, x))
        fw_step = fw_gap >= away_gap
        d = tu.tree_where(fw_step, tu.tree_sub(s, x), tu.tree_sub(x, v))
        gmax = jnp.where(fw_step, 1, w_away / jnp.where(w_away < 1, 1 - w_away, 1))
        gmax = jnp.where(fw_step | (w_away < 1), gmax, jnp.inf).astype(dtype)

        def new_weights(gamma, drop):
            fw = ((1 - gamma) * w).at[i_fw].add(gamma)
            away = (1 + gamma) * w
            away = away.at[i_away].set(jnp.where(drop, 0, jnp.maximum(away[i_away] - gamma, 0)))
            return jnp.where(fw_step, fw, away)
        return d, gmax, new_weights

    def _step_size(self, params, state, d, gmax, args, kwargs):
        """``(gamma, lipschitz, evaluation)``: ``evaluation`` is ``((value, aux), grad)`` at the new
        point when the step size computed it (backtracking), else ``None``."""
        dtype = jnp.result_type(state.value)
        slope = tu.tree_vdot(state.grad, d).astype(dtype)  # <= 0
        dn2 = tu.tree_l2_norm(d, squared=True).astype(dtype)
        safe = jnp.where(dn2 > 0, dn2, 1)

        def short(lip):
            return jnp.where(dn2 > 0, jnp.clip(-slope / (lip * safe), 0, gmax), 0).astype(dtype)

        if self.stepsize == "open_loop":
            k = state.iter_num.astype(dtype)
            return jnp.minimum(2 / (k + 2), gmax).astype(dtype), state.lipschitz, None
        if self.stepsize == "short":
            return short(state.lipschitz), state.lipschitz, None
        lips = _ETA * state.lipschitz * _TAU ** jnp.arange(_CANDIDATES, dtype=dtype)
        gammas = jax.vmap(short)(lips)
        vg = self._value_and_grad_fun()
        (values, auxs), grads = jax.vmap(lambda t: vg(tu.tree_add_scalar_mul(params, t, d), *args, **kwargs))(
            gammas)
        values = values.astype(dtype)
        # Sufficient decrease of the quadratic model (Pedregosa et al. 2020), up to rounding in f,
        # and, since f stops resolving progress near the solution, the same curvature bound on
        # the gradient: <grad f(x + gamma d) - grad f(x), d> <= gamma L ||d||^2.
        slack = 16 * jnp.finfo(dtype).eps * jnp.abs(state.value)
        decrease = values <= state.value + gammas * slope + 0.5 * gammas**2 * lips * dn2 + slack
        slopes = jax.vmap(lambda g: tu.tree_vdot(g, d))(grads).astype(dtype)
        curvature = slopes - slope <= gammas * lips * dn2
        ok = decrease & curvature
        first = jnp.argmax(ok)
        accepted = jnp.any(ok)
        gamma = jnp.where(accepted, gammas[first], 0).astype(dtype)
        lip = jnp.where(accepted, lips[first], lips[-1] * _TAU).astype(dtype)
        pick = lambda t, old: jax.tree_util.tree_map(
            lambda a, b: jnp.where(accepted, a[first], b), t, old)
        evaluation = ((pick(values, state.value), pick(auxs, state.aux)), pick(grads, state.grad))
        return gamma, lip, evaluation

    def update(self, params, state: FrankWolfeState, hyperparams_lmo, *args, **kwargs) -> OptStep:
        """One Frank-Wolfe (or away / pairwise) step.

        Args:
          params: current point.
          state: current :class:`FrankWolfeState`.
          hyperparams_lmo: hyperparameters of ``lmo``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        dtype = jnp.result_type(state.value)
        d, gmax, new_weights = self._direction(params, state, hyperparams_lmo)
        gamma, lip, evaluation = self._step_size(params, state, d, gmax, args, kwargs)
        x_next = tu.tree_add_scalar_mul(params, gamma, d)
        weights = new_weights(gamma, gamma >= gmax)
        if evaluation is None:
            evaluation = self._gradient(x_next, state, args, kwargs)
        (value, aux), grad = evaluation
        vertex = self.lmo(grad, hyperparams_lmo)
        gap = tu.tree_vdot(grad, tu.tree_sub(x_next, vertex)).astype(dtype)
        new = FrankWolfeState(state.iter_num + 1, jnp.asarray(value, dtype), gap, grad, vertex, lip,
                              weights, aux, state.status)
        return OptStep(x_next, new)

    def _run_loop(self, init_params, *args, **kwargs) -> OptStep:
        if not (self.jit and self._adjoint().scan) or self.verbose:
            return super()._run_loop(init_params, *args, **kwargs)
        # Unrolled (a scan, for reverse mode): scan over chunks of _CHUNK masked steps, each
        # chunk skipped by lax.cond once the run has stopped, so an un-batched run costs the
        # iterations it takes (rounded up to a chunk) instead of maxiter. Under vmap the cond
        # is a select (every lane computes every chunk); the per-step mask keeps each lane's
        # result and status exact. A step that turns the iterate non-finite is not kept.
        state = self.init_state(init_params, *args, **kwargs)

        def masked_step(carry, _):
            params, state = carry
            new_params, new_state = self.update(params, state, *args, **kwargs)
            bad = new_state.status == Status.NONFINITE
            kept = state._replace(status=new_state.status, iter_num=new_state.iter_num)
            new = (tu.tree_where(bad, params, new_params), tu.tree_where(bad, kept, new_state))
            return tu.tree_where(state.status == Status.RUNNING, new, carry), None

        def chunk(carry, _):
            run_chunk = lambda c: jax.lax.scan(masked_step, c, None, length=_CHUNK)[0]
            return jax.lax.cond(carry[1].status == Status.RUNNING, run_chunk, lambda c: c, carry), None

        num_chunks = -(-self.maxiter // _CHUNK)
        params, state = jax.lax.scan(chunk, (init_params, state), None, length=num_chunks)[0]
        return OptStep(params, state)

    def _finalize(self, state, value=None):
        # The loop's stopping rule also checks the gradient: a NaN gradient with a finite
        # value must not look converged.
        bad = ~tu.tree_all_finite(state.grad)
        state = state._replace(error=jnp.where(bad, jnp.nan, state.error).astype(state.error.dtype))
        return super()._finalize(state, value)


@dataclasses.dataclass(eq=False)
class StochasticFrankWolfe(FrankWolfe):
    """Stochastic Frank-Wolfe with averaged gradients (Mokhtari, Hassani and Karbasi 2018).

    Each ``update`` draws the gradient on the arguments it is given (a new mini-batch per
    call, e.g. through :meth:`run_iterator`) and averages it into a direction
    ``d+ = (1 - rho_k) d + rho_k grad``, ``rho_k = 4 / (k + 8)^(2/3)``; the step is
    ``x+ = x + gamma_k (lmo(d) - x)`` with ``gamma_k = 2 / (k + 8)``. The averaging keeps
    the direction's variance decaying, which plain stochastic Frank-Wolfe (a fresh gradient
    per step) lacks: ``E f(x_k) - f* = O(k^(-1/3))`` for convex ``fun`` with one sample per
    step. ``state.error`` is the Frank-Wolfe gap computed with ``d``, an estimate (exact in
    the limit when every call sees the same data, as in :meth:`run`).

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` (stochastic through its arguments).
      lmo: ``lmo(grad, hyperparams_lmo) -> vertex``.
      maxiter: maximum iterations.
      tol: stop when the estimated gap is ``<= tol``.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (derivatives through the iterations by default).

    Returns:
      ``run(init_params, hyperparams_lmo, *args, **kwargs)`` and
      ``run_iterator(init_params, hyperparams_lmo, iterator, *args, **kwargs)`` return
      ``OptStep(params, FrankWolfeState)``.

    References:
      Mokhtari, Hassani and Karbasi, "Stochastic Conditional Gradient Methods: From Convex
      Minimization to Submodular Maximization", JMLR 2020 (arXiv:1804.09554).
    """

    _: dataclasses.KW_ONLY
    variant: str = "vanilla"
    stepsize: str = "open_loop"
    maxiter: int = 1000
    tol: float = 1e-3

    def __post_init__(self):
        if self.variant != "vanilla" or self.stepsize != "open_loop":
            raise ValueError("StochasticFrankWolfe uses its own schedule: `variant` must be 'vanilla' "
                             "and `stepsize` 'open_loop'.")
        super().__post_init__()

    def _gradient(self, params, state, args, kwargs):
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        dtype = jnp.result_type(state.value)
        rho = (4 / (state.iter_num.astype(dtype) + 9) ** (2 / 3)).astype(dtype)
        avg = jax.tree_util.tree_map(lambda a, b: (1 - rho) * a + rho * b, state.grad, grad)
        return (value, aux), avg

    def _step_size(self, params, state, d, gmax, args, kwargs):
        dtype = jnp.result_type(state.value)
        return (2 / (state.iter_num.astype(dtype) + 8)).astype(dtype), state.lipschitz, None

    def run_iterator(self, init_params, hyperparams_lmo, iterator: Iterable, *args, **kwargs) -> OptStep:
        """Run over the mini-batches of ``iterator``: the first for ``init_state``, then one per ``update``.

        Each batch is passed as ``fun(params, *args, data=batch, **kwargs)``, for at most
        ``maxiter`` updates or until the status leaves ``RUNNING``; a ``NONFINITE`` update
        returns the last finite iterate (see :func:`jaxopt_lab.core.loop.run_batches`).

        Args:
          init_params: initial point in the set.
          hyperparams_lmo: hyperparameters of ``lmo``.
          iterator: an iterable of batches.
          *args, **kwargs: passed to ``fun`` with every batch.

        Returns:
          ``OptStep(params, state)``.

        Raises:
          ValueError: ``kwargs`` holds ``data``, or ``iterator`` yields no batch.
          TypeError: ``iterator`` is not iterable.
        """
        return _loop.run_batches(self, init_params, iterator, (hyperparams_lmo, *args), kwargs)
