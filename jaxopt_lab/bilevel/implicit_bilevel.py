"""AID: alternating inner gradient steps, a warm-started adjoint CG and an outer step."""

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


class ImplicitBilevelState(NamedTuple):
    """State of :class:`ImplicitBilevel`.

    Attributes:
      iter_num, error (hypergradient norm), status, value (outer objective).
      adjoint: the adjoint ``v`` (warm start of the next CG solve).
      inner_stepsize: the inner gradient step in use.
      inner_residual: ``||grad_y G||`` after the inner steps.
      adjoint_residual: CG residual of the adjoint system.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    adjoint: Any
    inner_stepsize: jax.Array
    inner_residual: jax.Array
    adjoint_residual: jax.Array


@dataclasses.dataclass(eq=False)
class ImplicitBilevel(BilevelSolver):
    """Approximate implicit differentiation (AID) with warm starts.

    Each iteration: ``inner_steps`` gradient steps on ``G(x, .)`` from the previous
    ``y``; ``adjoint_maxiter`` CG iterations on ``grad^2_yy G v = grad_y F`` from the
    previous ``v``; then ``x <- x - stepsize (grad_x F - grad^2_xy G v)``.

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem`.
      stepsize: outer step size (traced).
      inner_stepsize: inner gradient step (``<= 0``: ``1/L`` by power iteration at start).
      inner_steps: inner gradient steps per iteration (static).
      adjoint_maxiter: CG iterations per iteration (static).
      maxiter, tol: stop when the hypergradient norm is ``<= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, y), ImplicitBilevelState)``.

    References:
      Pedregosa, "Hyperparameter optimization with approximate gradient", 2016
      (arXiv:1602.02355); Ji, Yang and Liang, "Bilevel Optimization: Convergence
      Analysis and Enhanced Design", 2021 (arXiv:2010.07962).
    """

    _: dataclasses.KW_ONLY
    stepsize: float = 0.1
    inner_stepsize: float = 0.0
    inner_steps: int = 10
    adjoint_maxiter: int = 10
    maxiter: int = 500
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_int(self.inner_steps, "inner_steps", minimum=1)
        check_int(self.adjoint_maxiter, "adjoint_maxiter", minimum=1)

    def _positive_options(self):
        return ("stepsize",)

    def init_state(self, init_params: BilevelParams, data=None) -> ImplicitBilevelState:
        """Initial state (adjoint zero, inner step estimated if needed)."""
        x, y = init_params
        eta = self._inner_stepsize(x, y, data)
        value = self.problem.outer_fun(x, y, data)
        inf = jnp.asarray(jnp.inf, value.dtype)
        return ImplicitBilevelState(jnp.asarray(0), inf, jnp.asarray(Status.RUNNING, jnp.int32), value,
                                    tu.tree_zeros_like(y), eta.astype(value.dtype), inf, inf)

    def update(self, params: BilevelParams, state: ImplicitBilevelState, data=None) -> OptStep:
        """One AID iteration."""
        x, y = params
        p = self.problem
        grad_y = lambda yy: p.inner_grad(x, yy, data)
        y = _inner.gd_steps(grad_y, y, state.inner_stepsize, self.inner_steps)
        value, _, gy = p.outer_grads(x, y, data)
        v, info = ls.solve_cg(lambda u: p.inner_hvp(x, y, data, u), gy, init=state.adjoint,
                              maxiter=self.adjoint_maxiter, return_info=True)
        h = p.hypergrad_from_adjoint(x, y, data, v)
        x = tu.tree_add_scalar_mul(x, -self.stepsize, h)
        state = state._replace(iter_num=state.iter_num + 1, error=tu.tree_l2_norm(h), value=value, adjoint=v,
                               inner_residual=tu.tree_l2_norm(grad_y(y)), adjoint_residual=info.residual_norm)
        return OptStep(BilevelParams(x, y), state)
