"""Augmented Lagrangian method for smooth equality- and inequality-constrained problems."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import KKTSolution, OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.constrained import _step

_STALLS_FOR_INFEASIBLE = 3  # outer iterations without feasibility progress at the penalty cap
_PENALTY_CANDIDATES = 4  # Newton-KKT: penalties rho * penalty_growth**k, k < 4, tried in one vmap


class AugmentedLagrangianState(NamedTuple):
    """State of :class:`AugmentedLagrangian`.

    Attributes:
      iter_num: outer iterations done.
      value: objective at the current primal.
      error: norm of the KKT residual (:meth:`AugmentedLagrangian.optimality_fun`).
      dual_residual: norm of the stationarity part ``grad_x L``.
      primal_residual: norm of the constraint violation ``[eq_fun; max(ineq_fun, 0)]``.
      complementarity: norm of ``min(dual_ineq, -ineq_fun)``.
      violation: the feasibility measure the penalty update watches,
        ``max(|eq_fun|, |max(ineq_fun, -dual_ineq / penalty)|)``.
      penalty: current penalty parameter.
      inner_tol: tolerance of the next inner solve (``"phr"``).
      inner_iter_num: inner iterations (``"phr"``) or sketching iterations
        (``"newton_kkt"``) so far.
      num_stalls: consecutive outer iterations at the penalty cap without progress.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    dual_residual: jax.Array
    primal_residual: jax.Array
    complementarity: jax.Array
    violation: jax.Array
    penalty: jax.Array
    inner_tol: jax.Array
    inner_iter_num: jax.Array
    num_stalls: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class AugmentedLagrangian(IterativeSolver):
    """``min fun(x, *args)`` s.t. ``eq_fun(x, *args) == 0`` and ``ineq_fun(x, *args) <= 0``.

    ``method="phr"`` (default) is the Powell-Hestenes-Rockafellar augmented Lagrangian
    method: each outer iteration minimizes
    ``L_rho(x) = f + y.h + rho/2 |h|^2 + 1/(2 rho) sum(max(0, z + rho g)^2 - z^2)`` with
    an inner solver warm-started at the current point (L-BFGS by default) to a tolerance
    tied to the outer progress, then updates the multipliers ``y += rho h``,
    ``z = max(0, z + rho g)`` and multiplies the penalty by ``penalty_growth`` only when
    the violation did not shrink by ``violation_decrease``.

    ``method="newton_kkt"`` takes semismooth Newton steps on the KKT residual
    ``(grad_x L, h, min(z, -g)) = 0`` in ``(x, y, z)``: an inequality row is the linearized
    constraint where it is active (``z_i > -g_i``) and ``dz_i = -z_i`` where it is not, so
    the active set is re-chosen at every step. Each step is solved inexactly by randomized
    iterative sketching (:func:`jaxopt_lab.linear_solve.solve_sketch`), with a backtracking
    line search on the exact augmented Lagrangian
    ``f + y.h + rho/2 |h|^2 + 1/(2 rho) sum(max(0, z + rho g)^2 - z^2) + nu/2 |grad_x L|^2``
    (accepting also a step that reduces the KKT residual norm); ``rho`` is raised by
    factors of ``penalty_growth`` until the step is a descent direction for it.

    The status is ``CONVERGED`` only when the KKT residual (stationarity, feasibility,
    complementarity) is ``<= tol``; ``INFEASIBLE`` when the violation stalls for several
    iterations with the penalty at ``max_penalty``; ``NONFINITE`` on NaNs; ``MAX_ITER``
    otherwise. Implicit derivatives of the primal and both duals come from
    :meth:`optimality_fun` (forward and reverse mode), solved by dense LU (GMRES for
    more than 512 unknowns) unless ``implicit_diff_solve`` is given.

    Args:
      fun: objective ``fun(x, *args, **kwargs)`` (``(value, aux)`` with ``has_aux``).
      eq_fun: ``eq_fun(x, *args, **kwargs) -> (m_eq,)`` array, or ``None``.
      ineq_fun: ``ineq_fun(x, *args, **kwargs) -> (m_ineq,)`` array, or ``None``.
      method: ``"phr"`` or ``"newton_kkt"`` (static).
      inner_solver: for ``"phr"``: a solver whose ``fun`` is replaced by the augmented
        Lagrangian (its ``tol`` by the inner tolerance), or a factory
        ``inner_solver(al_fun) -> solver``; the solver needs ``run(init, *args)``.
        Default: :class:`jaxopt_lab.LBFGS`.
      penalty: initial penalty ``rho > 0`` (may be traced).
      penalty_growth: factor applied to the penalty on insufficient progress (``> 1``).
      max_penalty: the penalty cap.
      violation_decrease: required ratio of successive violations (in ``(0, 1)``).
      inner_maxiter: iteration cap of each inner solve (static).
      merit_nu: weight ``nu`` of ``|grad_x L|^2`` in the exact augmented Lagrangian.
      sketch_size, sketch_maxiter: sketch columns and iterations of each Newton solve.
      seed: seed of the sketches (static).
      maxiter: outer iterations.
      tol: tolerance on the KKT residual norm.
      implicit_diff, implicit_diff_solve, has_aux, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run(init_params, *args)`` (``init_params``: the primal, or a ``KKTSolution``
      warm-starting the duals) returns ``OptStep(KKTSolution(primal, dual_eq,
      dual_ineq), AugmentedLagrangianState)``.

    References:
      Bertsekas, "Constrained Optimization and Lagrange Multiplier Methods", 1982;
      Nocedal and Wright, "Numerical Optimization", 2006, chapter 17; Conn, Gould and
      Toint, "LANCELOT", 1992; Birgin and Martinez, "Practical Augmented Lagrangian
      Methods for Constrained Optimization", 2014; Hong, Na, Mahoney and Kolar,
      "Constrained Optimization via Exact Augmented Lagrangian and Randomized Iterative
      Sketching", ICML 2023 (arXiv:2305.18379); Na, Anitescu and Kolar, "Inequality
      Constrained Stochastic Nonlinear Optimization via Active-Set Sequential Quadratic
      Programming", Math. Program., 2023 (arXiv:2109.11502); Di Pillo and Grippo, "A New
      Augmented Lagrangian Function for Inequality Constraints in Nonlinear Programming
      Problems", J. Optim. Theory Appl., 1982; Qi and Sun, "A nonsmooth version of Newton's
      method", Math. Program., 1993.
    """

    fun: Callable
    eq_fun: Callable | None = None
    ineq_fun: Callable | None = None
    _: dataclasses.KW_ONLY
    method: str = "phr"
    inner_solver: Any = None
    penalty: float = 10.0
    penalty_growth: float = 10.0
    max_penalty: float = 1e6
    violation_decrease: float = 0.5
    inner_maxiter: int = 500
    merit_nu: float = 1e-2
    sketch_size: int = 8
    sketch_maxiter: int = 500
    seed: int = 0
    maxiter: int = 100
    tol: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        _step.check_constraint_fun(self.eq_fun, "eq_fun")
        _step.check_constraint_fun(self.ineq_fun, "ineq_fun")
        if self.method not in ("phr", "newton_kkt"):
            raise ValueError(f"`method` must be 'phr' or 'newton_kkt', got {self.method!r}.")
        for name in ("penalty", "max_penalty", "merit_nu"):
            check_positive(getattr(self, name), name)
        check_positive(self.penalty_growth - 1.0, "penalty_growth - 1")
        check_positive(self.violation_decrease, "violation_decrease")
        check_positive(1.0 - self.violation_decrease, "1 - violation_decrease")
        for name in ("inner_maxiter", "sketch_size", "sketch_maxiter"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.seed, "seed", minimum=0)
        _step.check_inner_solver(self.inner_solver)

    # ------------------------------------------------------------------ problem pieces
    def _shapes(self, primal, args, kwargs):
        return (_step.constraint_shape(self.eq_fun, "eq_fun", primal, args, kwargs),
                _step.constraint_shape(self.ineq_fun, "ineq_fun", primal, args, kwargs))

    def _check_run_args(self, init_params, args, kwargs) -> None:
        primal = init_params.primal if isinstance(init_params, KKTSolution) else init_params
        super()._check_run_args(primal, args, kwargs)
        _step.as_kkt(init_params, *self._shapes(primal, args, kwargs))

    def _check_init_params(self, init_params) -> None:
        primal = init_params.primal if isinstance(init_params, KKTSolution) else init_params
        super()._check_init_params(primal)

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or _step.solve_kkt_implicit

    def optimality_fun(self, params: KKTSolution, *args, **kwargs) -> KKTSolution:
        """KKT residual ``(grad_x L, eq_fun(x), min(dual_ineq, -ineq_fun(x)))``.

        Args:
          params: a ``KKTSolution``.
          *args, **kwargs: the problem's arguments.

        Returns:
          A ``KKTSolution`` of residuals (zero exactly at a KKT point).
        """
        return _step.kkt_residual(self._value_fun(), self.eq_fun, self.ineq_fun, params, *args, **kwargs)

    def _measure(self, params, penalty, args, kwargs):
        """(value, error, stationarity, feasibility, complementarity, violation) at ``params``."""
        x, _, z = params
        value = self._value_fun()(x, *args, **kwargs)
        dtype = jnp.result_type(value)
        res = self.optimality_fun(params, *args, **kwargs)
        stat, eq, comp = _step.kkt_parts(res)
        parts = [jnp.zeros((1,), dtype)]
        viol = [jnp.zeros((1,), dtype)]
        if self.eq_fun is not None:
            parts.append(jnp.abs(res.dual_eq))
            viol.append(jnp.abs(res.dual_eq))
        if self.ineq_fun is not None:
            g = self.ineq_fun(x, *args, **kwargs)
            parts.append(jnp.maximum(g, 0))
            viol.append(jnp.abs(jnp.maximum(g, -z / penalty)))
        feas = jnp.linalg.norm(jnp.concatenate(parts).astype(dtype))
        violation = jnp.max(jnp.concatenate(viol).astype(dtype))
        error = tu.tree_l2_norm(res).astype(dtype)
        return value, error, stat, feas, comp, violation

    def init_state(self, init_params, *args, **kwargs) -> AugmentedLagrangianState:
        """Evaluate the KKT residual at ``init_params``.

        Args:
          init_params: the primal, or a ``KKTSolution``.
          *args, **kwargs: the problem's arguments.

        Returns:
          An :class:`AugmentedLagrangianState`.
        """
        params = self._as_kkt(init_params, args, kwargs)
        value, error, stat, feas, comp, violation = self._measure(params, self.penalty, args, kwargs)
        dtype = jnp.result_type(value)
        inner_tol = jnp.clip(0.1 * error, 0.1 * self.tol, 1.0).astype(dtype)
        zero = jnp.asarray(0, jnp.int32)
        return AugmentedLagrangianState(
            iter_num=zero, value=value, error=error, dual_residual=stat, primal_residual=feas,
            complementarity=comp, violation=violation, penalty=jnp.asarray(self.penalty, dtype),
            inner_tol=inner_tol, inner_iter_num=zero, num_stalls=zero,
            status=jnp.asarray(Status.RUNNING, jnp.int32))

    def _as_kkt(self, init_params, args, kwargs) -> KKTSolution:
        primal = init_params.primal if isinstance(init_params, KKTSolution) else init_params
        return _step.as_kkt(init_params, *self._shapes(primal, args, kwargs))

    # ------------------------------------------------------------------ PHR iteration
    def _al_value(self, x, y, z, penalty, *args, **kwargs):
        value = self._value_fun()(x, *args, **kwargs)
        if self.eq_fun is not None:
            h = self.eq_fun(x, *args, **kwargs)
            value = value + jnp.vdot(y, h) + 0.5 * penalty * jnp.vdot(h, h)
        if self.ineq_fun is not None:
            shifted = jnp.maximum(0.0, z + penalty * self.ineq_fun(x, *args, **kwargs))
            value = value + (jnp.vdot(shifted, shifted) - jnp.vdot(z, z)) / (2 * penalty)
        return value

    def _phr_step(self, params, state, args, kwargs):
        x, y, z = params
        rho = state.penalty
        inner = _step.inner_solver(self.inner_solver, self._al_value, state.inner_tol, self.inner_maxiter,
                                   unroll=False)
        out = inner.run(x, y, z, rho, *args, **kwargs)
        x_new = out.params
        inner_iters = getattr(out.state, "iter_num", jnp.asarray(0, jnp.int32))
        # Feasibility measured with the multipliers used in the subproblem.
        *_, violation = self._measure(KKTSolution(x_new, y, z), rho, args, kwargs)
        if self.eq_fun is not None:
            y = y + rho * self.eq_fun(x_new, *args, **kwargs)
        if self.ineq_fun is not None:
            z = jnp.maximum(0.0, z + rho * self.ineq_fun(x_new, *args, **kwargs))
        return KKTSolution(x_new, y, z), violation, inner_iters

    # ------------------------------------------------------------------ Newton-KKT iteration
    def _exact_al(self, w, rho, args, kwargs):
        """Exact augmented Lagrangian at ``w = (x, y, z)`` (Di Pillo and Grippo's merit):
        ``f + y.h + rho/2 |h|^2 + 1/(2 rho) sum(max(0, z + rho g)^2 - z^2) + nu/2 |grad_x L|^2``."""
        x, y, z = w
        grad_l = jax.grad(lambda v: _step.lagrangian(self._value_fun(), self.eq_fun, self.ineq_fun,
                                                     KKTSolution(v, y, z), *args, **kwargs))(x)
        return self._al_value(x, y, z, rho, *args, **kwargs) + 0.5 * self.merit_nu * tu.tree_l2_norm(
            grad_l, squared=True)

    def _newton_step(self, params, state, args, kwargs):
        """A semismooth Newton step on the KKT residual, globalized by the exact augmented Lagrangian.

        The residual ``F = (grad_x L, h, min(z, -g))`` is piecewise smooth; its Jacobian (by
        ``jvp``) is an element of the generalized Jacobian: a row of ``min(z, -g)`` is
        ``dz_i = -z_i`` where ``z_i < -g_i`` (inactive: the multiplier goes to zero) and the
        linearized constraint ``-grad g_i . dx = g_i`` where ``z_i > -g_i`` (active). The step
        is solved by randomized sketching; ``rho`` is raised (by factors of
        ``penalty_growth``) until the step is a descent direction of the exact augmented
        Lagrangian (steepest descent on it at the cap), and the step length backtracks until
        the merit decreases sufficiently or ``|F|`` decreases.
        """
        x, y, z = params
        dtype = state.value.dtype
        w = (x, y, z)
        kkt = lambda w_: tuple(self.optimality_fun(KKTSolution(*w_), *args, **kwargs))
        F = kkt(w)
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), state.iter_num)
        matvec = lambda v: jax.jvp(kkt, (w,), (v,))[1]
        d, info = ls.solve_sketch(matvec, tu.tree_negative(F), key, sketch_size=self.sketch_size,
                                  maxiter=self.sketch_maxiter, return_info=True)
        dnorm2 = tu.tree_l2_norm(d, squared=True).astype(dtype)
        sigma = jnp.asarray(1e-8, dtype)
        # Penalty candidates rho * growth^k, evaluated in one vmap; the first with descent wins.
        ks = jnp.arange(_PENALTY_CANDIDATES, dtype=dtype)
        rhos = jnp.minimum(state.penalty * self.penalty_growth ** ks, self.max_penalty).astype(dtype)
        merit = lambda w_, r: self._exact_al(w_, r, args, kwargs)
        grads = jax.vmap(lambda r: jax.grad(merit)(w, r))(rhos)
        slopes = jax.vmap(lambda g: tu.tree_vdot(g, d))(grads).astype(dtype)
        ok_rho = slopes < -sigma * dnorm2
        pick = jnp.where(jnp.any(ok_rho), jnp.argmax(ok_rho), _PENALTY_CANDIDATES - 1)
        rho = rhos[pick]
        grad_m = jax.tree_util.tree_map(lambda g: g[pick], grads)
        slope = slopes[pick]
        # Not a descent direction even at the largest candidate: steepest descent on the merit.
        descent = slope < 0
        d = tu.tree_where(descent, d, tu.tree_negative(grad_m))
        slope = jnp.where(descent, slope, -tu.tree_l2_norm(grad_m, squared=True).astype(dtype))
        m0 = merit(w, rho)
        f_norm0 = tu.tree_l2_norm(F)

        def trial(t):
            wt = tu.tree_add_scalar_mul(w, t, d)
            mt = merit(wt, rho)
            ok = (mt <= m0 + 1e-4 * t * slope) | (tu.tree_l2_norm(kkt(wt)) < f_norm0)
            return ok & jnp.isfinite(mt)

        def cond(c):
            t, ok, k = c
            return ~ok & (k < 40)

        def body(c):
            t, _, k = c
            t = 0.5 * t
            return t, trial(t), k + 1

        t, ok, _ = jax.lax.while_loop(cond, body, (jnp.ones((), dtype), trial(jnp.ones((), dtype)),
                                                   jnp.asarray(0)))
        x_new, y_new, z_new = tu.tree_add_scalar_mul(w, jnp.where(ok, t, 0.0), d)
        return KKTSolution(x_new, y_new, z_new), rho, ok, info.iterations

    # ------------------------------------------------------------------ update
    def update(self, params, state: AugmentedLagrangianState, *args, **kwargs) -> OptStep:
        """One outer iteration (an inner solve and a multiplier update, or a Newton-KKT step).

        Args:
          params: current ``KKTSolution``.
          state: current :class:`AugmentedLagrangianState`.
          *args, **kwargs: the problem's arguments.

        Returns:
          ``OptStep(KKTSolution, state)``.
        """
        params = self._as_kkt(params, args, kwargs)
        dtype = state.value.dtype
        rho = state.penalty
        failed = jnp.asarray(False)
        if self.method == "phr":
            new, violation, inner = self._phr_step(params, state, args, kwargs)
        else:
            new, rho, ok, inner = self._newton_step(params, state, args, kwargs)
            failed = ~ok
            *_, violation = self._measure(new, rho, args, kwargs)
        # Penalty: raised only when the violation did not shrink enough.
        slow = violation > self.violation_decrease * state.violation
        at_cap = rho >= self.max_penalty
        if self.method == "phr":
            rho = jnp.where(slow, jnp.minimum(rho * self.penalty_growth, self.max_penalty), rho)
        value, error, stat, feas, comp, _ = self._measure(new, rho, args, kwargs)
        stalls = jnp.where(slow & at_cap & (violation > self.tol), state.num_stalls + 1, 0)
        infeasible = (stalls >= _STALLS_FOR_INFEASIBLE) & ~(error <= self.tol)
        status = jnp.where(infeasible, Status.INFEASIBLE,
                           jnp.where(failed & ~(error <= self.tol), Status.LINESEARCH_FAILED,
                                     Status.RUNNING))
        error_c = error.astype(dtype)
        inner_tol = jnp.maximum(0.1 * self.tol, jnp.minimum(0.1 * state.inner_tol, 0.1 * error_c))
        new_state = AugmentedLagrangianState(
            iter_num=state.iter_num + 1, value=jnp.asarray(value, dtype), error=error_c,
            dual_residual=stat, primal_residual=feas.astype(dtype), complementarity=comp,
            violation=violation.astype(dtype), penalty=jnp.asarray(rho, dtype),
            inner_tol=inner_tol.astype(dtype),
            inner_iter_num=state.inner_iter_num + jnp.asarray(inner, jnp.int32),
            num_stalls=stalls.astype(jnp.int32), status=status.astype(jnp.int32))
        return OptStep(new, new_state)

    def _run_loop(self, init_params, *args, **kwargs) -> OptStep:
        return super()._run_loop(self._as_kkt(init_params, args, kwargs), *args, **kwargs)
