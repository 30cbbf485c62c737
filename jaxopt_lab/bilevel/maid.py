"""MAID: adaptively inexact hypergradients with a backtracking line search."""

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
      iter_num, error (hypergradient norm), status, value.
      stepsize: outer step to try next.
      inner_tol, adjoint_tol: current accuracies ``eps_k`` and ``delta_k``.
      adjoint: adjoint warm start.
      inner_stepsize: inner gradient step.
      accepted: whether the last line search succeeded.
      num_inner_steps: inner gradient steps so far (the cost MAID economizes).
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    stepsize: jax.Array
    inner_tol: jax.Array
    adjoint_tol: jax.Array
    adjoint: Any
    inner_stepsize: jax.Array
    accepted: jax.Array
    num_inner_steps: jax.Array


@dataclasses.dataclass(eq=False)
class MAID(BilevelSolver):
    """Method of Adaptive Inexact Descent.

    Iteration ``k``: solve the inner problem to ``||grad_y G|| <= eps_k`` (gradient
    steps, warm-started) and the adjoint system to ``||H v - grad_y F|| <= delta_k``
    (CG, warm-started); form the inexact hypergradient ``h``; backtrack
    ``alpha <- rho alpha`` until ``F(x - alpha h, y+) <= F(x, y) - c alpha ||h||^2``
    plus a margin ``2 ||v|| eps_k`` (a first-order bound on the error of the inexact
    values, so that accepted steps certifiably decrease the hyper-objective), where
    ``y+`` is the inner solution at the trial point to the same accuracy. On success
    the step grows (``alpha / rho``) and the accuracies tighten by ``tol_decay``; on
    failure ``x`` and the step are kept and the accuracies tighten by ``fail_decay``
    (the inexactness was too large to certify descent). The
    accuracies therefore adapt to how much precision progress actually needs
    (Salehi et al., Algorithm 2).

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem`.
      stepsize: initial outer step.
      inner_tol0, adjoint_tol0: initial accuracies.
      tol_decay: accuracy factor after a successful step.
      fail_decay: accuracy factor after a failed line search.
      shrink: backtracking factor ``rho``.
      armijo: sufficient-decrease constant ``c``.
      maxls: backtracking trials per iteration (static).
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
    inner_tol0: float = 1e-2
    adjoint_tol0: float = 1e-2
    tol_decay: float = 0.9
    fail_decay: float = 0.5
    shrink: float = 0.5
    armijo: float = 1e-4
    maxls: int = 8
    inner_stepsize: float = 0.0
    inner_maxiter: int = 1000
    adjoint_maxiter: int = 100
    maxiter: int = 500
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        for name in ("maxls", "inner_maxiter", "adjoint_maxiter"):
            check_int(getattr(self, name), name, minimum=1)

    def _positive_options(self):
        return ("stepsize", "inner_tol0", "adjoint_tol0", "tol_decay", "fail_decay", "shrink", "armijo")

    def init_state(self, init_params: BilevelParams, data=None) -> MAIDState:
        """Initial state."""
        x, y = init_params
        value = self.problem.outer_fun(x, y, data)
        dt = value.dtype
        f = lambda a: jnp.asarray(a, dt)
        return MAIDState(
            jnp.asarray(0),
            f(jnp.inf),
            jnp.asarray(Status.RUNNING, jnp.int32),
            value,
            f(self.stepsize),
            f(self.inner_tol0),
            f(self.adjoint_tol0),
            tu.tree_zeros_like(y),
            self._inner_stepsize(x, y, data).astype(dt),
            jnp.asarray(True),
            jnp.asarray(0),
        )

    def update(self, params: BilevelParams, state: MAIDState, data=None) -> OptStep:
        """One MAID iteration (inexact hypergradient, then backtracking)."""
        x, y = params
        p, eta, eps = self.problem, state.inner_stepsize, state.inner_tol

        def inner(xx, yy):
            return _inner.gd_until(lambda z: p.inner_grad(xx, z, data), yy, eta, eps, self.inner_maxiter)

        y, _, k_in, _ = inner(x, y)
        value, _, gy = p.outer_grads(x, y, data)
        v = ls.solve_cg(
            lambda u: p.inner_hvp(x, y, data, u),
            gy,
            init=state.adjoint,
            tol=0.0,
            atol=state.adjoint_tol,
            maxiter=self.adjoint_maxiter,
        )
        h = p.hypergrad_from_adjoint(x, y, data, v)
        hh = tu.tree_l2_norm(h, squared=True)
        # |F(x, y) - phi(x)| ~ |<v, grad_y G>| <= ||v|| eps: accept only a decrease that
        # is certified despite the inexact inner solutions at x and at the trial point.
        margin = 2.0 * tu.tree_l2_norm(v) * eps

        def cond(c):
            j, ok = c[0], c[1]
            return (~ok) & (j < self.maxls)

        def body(c):
            j, _, _, _, k = c
            alpha = state.stepsize * self.shrink**j
            xt = tu.tree_add_scalar_mul(x, -alpha, h)
            yt, _, kt, _ = inner(xt, y)
            ok = p.outer_fun(xt, yt, data) + margin <= value - self.armijo * alpha * hh
            return j + 1, ok, xt, yt, k + kt

        j, ok, xt, yt, k_ls = jax.lax.while_loop(cond, body, (jnp.asarray(0), jnp.asarray(False), x, y, k_in))
        alpha = state.stepsize * self.shrink ** (j - 1)
        new = BilevelParams(tu.tree_where(ok, xt, x), tu.tree_where(ok, yt, y))
        decay = jnp.where(ok, self.tol_decay, self.fail_decay)
        state = state._replace(
            iter_num=state.iter_num + 1,
            error=jnp.sqrt(hh),
            value=value,
            stepsize=jnp.where(ok, alpha / self.shrink, state.stepsize).astype(state.stepsize.dtype),
            inner_tol=(eps * decay).astype(eps.dtype),
            adjoint_tol=(state.adjoint_tol * decay).astype(eps.dtype),
            adjoint=v,
            accepted=ok,
            num_inner_steps=state.num_inner_steps + k_ls,
        )
        return OptStep(new, state)
