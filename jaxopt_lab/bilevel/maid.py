"""MAID: adaptively inexact hypergradients with an inexact backtracking line search."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.bilevel import _inner
from jaxopt_lab.bilevel._solver import BilevelSolver
from jaxopt_lab.bilevel.problem import BilevelParams
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls


class MAIDState(NamedTuple):
    """State of :class:`MAID`.

    Attributes:
      iter_num, error (norm of the inexact hypergradient), status.
      value: ``F(x, y~)`` at the inexact inner solution ``y~`` of this iteration.
      lower_value: ``F(x, y~) - ||grad_y F(x, y~)|| eps - L_F eps^2 / 2``, a certified
        lower bound of the hyper-objective at ``x`` (the line search's reference).
      stepsize: step ``alpha_k`` the next line search starts from.
      inner_tol, adjoint_tol: accuracies ``eps_k`` (distance of ``y`` to ``y*(x)``) and
        ``delta_k`` (adjoint residual) of the next iteration.
      adjoint: adjoint warm start.
      inner_stepsize: inner gradient step.
      strong_convexity, outer_smoothness: ``mu`` of ``G(x, .)`` and ``L_F`` of
        ``grad_y F(x, .)`` (given, or estimated at the initial point).
      backtrack_budget: trials the next line search may use (grows after each failure).
      accepted: whether the last line search succeeded.
      num_inner_steps: inner gradient steps so far (the cost MAID economizes).
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    lower_value: jax.Array
    stepsize: jax.Array
    inner_tol: jax.Array
    adjoint_tol: jax.Array
    adjoint: Any
    inner_stepsize: jax.Array
    strong_convexity: jax.Array
    outer_smoothness: jax.Array
    backtrack_budget: jax.Array
    accepted: jax.Array
    num_inner_steps: jax.Array


def _extreme_eigs(hvp, y, iters: int = 100) -> tuple[jax.Array, jax.Array]:
    """``(lambda_max, lambda_min)`` of a symmetric PSD operator by two power iterations."""
    leaves, treedef = jax.tree_util.tree_flatten(y)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    v0 = treedef.unflatten([jax.random.normal(k, jnp.shape(a), jnp.asarray(a).dtype)
                             for k, a in zip(keys, leaves, strict=True)])
    v0 = tu.tree_scalar_mul(1.0 / tu.tree_l2_norm(v0), v0)

    def power(op):
        def body(_, v):
            w = op(v)
            return tu.tree_scalar_mul(1.0 / jnp.maximum(tu.tree_l2_norm(w), 1e-30), w)

        v = jax.lax.fori_loop(0, iters, body, v0)
        return tu.tree_vdot(v, op(v))

    top = power(hvp)
    shift = 1.1 * jnp.maximum(top, 1e-12)
    bottom = shift - power(lambda v: tu.tree_sub(tu.tree_scalar_mul(shift, v), hvp(v)))
    return top, bottom


@dataclasses.dataclass(eq=False)
class MAID(BilevelSolver):
    """Method of Adaptive Inexact Descent (Salehi et al., Algorithm 3.1).

    Iteration ``k`` with accuracies ``(eps_k, delta_k)`` and step ``alpha_k``:

    1. Inner solve (gradient steps, warm-started) until ``||grad_y G(x, y~)|| <= mu eps_k``,
       which certifies ``||y~ - y*(x)|| <= eps_k`` for a ``mu``-strongly convex ``G(x, .)``;
       adjoint by CG until ``||H v - grad_y F|| <= delta_k``; inexact hypergradient ``h``.
    2. Inexact backtracking: with ``L_F`` the Lipschitz constant of ``grad_y F(x, .)``,
       ``U(x', y', eps) = F(x', y') +- (||grad_y F(x', y')|| eps + L_F eps^2 / 2)`` brackets
       the hyper-objective ``F(x', y*(x'))`` whenever ``||y' - y*(x')|| <= eps``. Trial
       ``alpha = alpha_k rho^i`` (``i < budget``) is accepted when
       ``U_+(x - alpha h, y+, eps_k) - U_-(x, y~, eps_k) + c alpha ||h||^2 <= 0``, ``y+``
       solved to the same accuracy; an accepted step therefore decreases the exact
       hyper-objective by at least ``c alpha ||h||^2`` (Lemma 3.5 of the paper).
    3. Success: ``x <- x - alpha h``, ``alpha_{k+1} = rho_bar alpha``,
       ``(eps, delta)_{k+1} = nu_bar (eps, delta)_k`` (``nu_bar >= 1``: the accuracy is
       relaxed again), budget reset. Failure: ``x`` kept, ``alpha_{k+1} = alpha_k``,
       ``(eps, delta)_{k+1} = nu (eps, delta)_k`` (``nu < 1``), budget ``+ 1``. A failed
       line search is one iteration here (the paper retries inside iteration ``k``).

    The a-priori descent-direction test of the paper's Algorithm 3.2 (an error bound on
    ``h`` with constants of the problem's third derivatives) is not formed: when ``-h`` is
    not a descent direction no trial passes and the failure branch tightens the
    accuracies, as the paper's outer loop does.

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem` (``G(x, .)`` strongly convex).
      stepsize: initial outer step ``alpha_0``.
      inner_tol0, adjoint_tol0: initial accuracies ``eps_0`` and ``delta_0``.
      accuracy_increase: ``nu_bar >= 1``, accuracy factor after a success.
      accuracy_decrease: ``nu`` in ``(0, 1)``, accuracy factor after a failed line search.
      shrink: backtracking factor ``rho`` in ``(0, 1)``.
      step_increase: ``rho_bar >= 1``, step factor after a success.
      armijo: sufficient-decrease constant ``c``.
      maxls: initial backtracking budget (traced: the budget grows by one per failure).
      strong_convexity: ``mu`` of ``G(x, .)`` (``<= 0``: estimated at ``(x0, y0)``).
      outer_smoothness: ``L_F`` (``<= 0``: estimated at ``(x0, y0)``).
      inner_stepsize: inner gradient step (``<= 0``: ``1/L`` by power iteration).
      inner_maxiter, adjoint_maxiter: caps of the inner and adjoint solves (static).
      maxiter, tol: stop when ``||h|| <= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, y), MAIDState)``.

    References:
      Salehi, Mukherjee, Roberts and Ehrhardt, "An Adaptively Inexact First-Order
      Method for Bilevel Optimization with Application to Hyperparameter Learning",
      2024 (arXiv:2308.10098); Pedregosa, "Hyperparameter optimization with
      approximate gradient", 2016 (arXiv:1602.02355).
    """

    _: dataclasses.KW_ONLY
    stepsize: float = 1.0
    inner_tol0: float = 1e-1
    adjoint_tol0: float = 1e-1
    accuracy_increase: float = 1.05
    accuracy_decrease: float = 0.5
    shrink: float = 0.5
    step_increase: float = 1.25
    armijo: float = 1e-4
    maxls: int = 8
    strong_convexity: float = 0.0
    outer_smoothness: float = 0.0
    inner_stepsize: float = 0.0
    inner_maxiter: int = 1000
    adjoint_maxiter: int = 100
    maxiter: int = 500
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        for name in ("maxls", "inner_maxiter", "adjoint_maxiter"):
            check_int(getattr(self, name), name, minimum=1)
        for name, lo, hi in (("accuracy_decrease", 0.0, 1.0), ("shrink", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not lo < v < hi:
                raise ValueError(f"`{name}` must be in ({lo}, {hi}), got {v!r}.")
        for name in ("accuracy_increase", "step_increase"):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and v < 1.0:
                raise ValueError(f"`{name}` must be >= 1, got {v!r}.")

    def _positive_options(self):
        return ("stepsize", "inner_tol0", "adjoint_tol0", "armijo")

    def _static_option(self, name, value) -> bool:
        return name == "maxls" or super()._static_option(name, value)

    def init_state(self, init_params: BilevelParams, data=None) -> MAIDState:
        """Initial state (``mu`` and ``L_F`` estimated here when not given)."""
        x, y = init_params
        p = self.problem
        value = p.outer_fun(x, y, data)
        dt = value.dtype
        f = lambda a: jnp.asarray(a, dt)
        given = lambda v: isinstance(v, (int, float)) and v > 0  # skip the estimate
        mu, lf = self.strong_convexity, self.outer_smoothness
        if not given(mu):
            _, mu_est = _extreme_eigs(lambda v: p.inner_hvp(x, y, data, v), y)
            mu = jnp.where(jnp.asarray(mu) > 0, mu, 0.9 * mu_est)
        if not given(lf):
            gy = lambda yy: jax.grad(p.outer_fun, argnums=1)(x, yy, data)
            lf_est, _ = _extreme_eigs(lambda v: jax.jvp(gy, (y,), (v,))[1], y)
            lf = jnp.where(jnp.asarray(lf) > 0, lf, 1.1 * lf_est)
        return MAIDState(
            jnp.asarray(0),
            f(jnp.inf),
            jnp.asarray(Status.RUNNING, jnp.int32),
            value,
            f(-jnp.inf),
            f(self.stepsize),
            f(self.inner_tol0),
            f(self.adjoint_tol0),
            tu.tree_zeros_like(y),
            self._inner_stepsize(x, y, data).astype(dt),
            f(jnp.maximum(mu, 1e-12)),
            f(jnp.maximum(lf, 0.0)),
            jnp.asarray(self.maxls, jnp.int32),
            jnp.asarray(True),
            jnp.asarray(0),
        )

    def update(self, params: BilevelParams, state: MAIDState, data=None) -> OptStep:
        """One MAID iteration (inexact hypergradient, then inexact backtracking)."""
        x, y = params
        p, eta, eps, delta = self.problem, state.inner_stepsize, state.inner_tol, state.adjoint_tol
        mu, lf = state.strong_convexity, state.outer_smoothness

        def inner(xx, yy):
            grad = lambda z: p.inner_grad(xx, z, data)
            return _inner.gd_until(grad, yy, eta, mu * eps, self.inner_maxiter)

        def bracket(xx, yy):  # F(xx, yy) and its certified half-width at accuracy eps
            value, _, gy = p.outer_grads(xx, yy, data)
            return value, tu.tree_l2_norm(gy) * eps + 0.5 * lf * eps**2, gy

        y, _, k_in, _ = inner(x, y)
        value, width, gy = bracket(x, y)
        lower = value - width
        v = ls.solve_cg(lambda u: p.inner_hvp(x, y, data, u), gy, init=state.adjoint,
                        tol=0.0, atol=delta, maxiter=self.adjoint_maxiter)
        h = p.hypergrad_from_adjoint(x, y, data, v)
        hh = tu.tree_l2_norm(h, squared=True)

        def cond(c):
            return (~c[1]) & (c[0] < state.backtrack_budget)

        def body(c):
            j, _, _, _, k = c
            alpha = state.stepsize * self.shrink**j
            xt = tu.tree_add_scalar_mul(x, -alpha, h)
            yt, _, kt, _ = inner(xt, y)
            value_t, width_t, _ = bracket(xt, yt)
            ok = value_t + width_t - lower + self.armijo * alpha * hh <= 0.0
            return j + 1, ok, xt, yt, k + kt

        init = (jnp.asarray(0, jnp.int32), jnp.asarray(False), x, y, k_in)
        j, ok, xt, yt, k_ls = jax.lax.while_loop(cond, body, init)
        alpha = state.stepsize * self.shrink ** (j - 1)
        new = BilevelParams(tu.tree_where(ok, xt, x), tu.tree_where(ok, yt, y))
        factor = jnp.where(ok, self.accuracy_increase, self.accuracy_decrease)
        dt = eps.dtype
        state = state._replace(
            iter_num=state.iter_num + 1,
            error=jnp.sqrt(hh).astype(dt),
            value=value,
            lower_value=lower.astype(dt),
            stepsize=jnp.where(ok, self.step_increase * alpha, state.stepsize).astype(dt),
            inner_tol=(eps * factor).astype(dt),
            adjoint_tol=(delta * factor).astype(dt),
            adjoint=v,
            backtrack_budget=jnp.where(ok, self.maxls, state.backtrack_budget + 1).astype(jnp.int32),
            accepted=ok,
            num_inner_steps=state.num_inner_steps + k_ls,
        )
        return OptStep(new, state)
