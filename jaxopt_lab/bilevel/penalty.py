"""First-order value-function penalty method (double-loop and single-loop)."""

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


class PenaltyBilevelState(NamedTuple):
    """State of :class:`PenaltyBilevel`.

    Attributes:
      iter_num, error (norm of the penalty gradient in ``x``), status, value.
      y_penalty: the minimizer estimate of ``sigma F + G`` (``params.y`` holds the
        minimizer estimate of ``G``).
      inner_stepsize, penalty_stepsize: inner gradient steps for ``G`` and
        ``sigma F + G``.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    y_penalty: Any
    inner_stepsize: jax.Array
    penalty_stepsize: jax.Array


@dataclasses.dataclass(eq=False)
class PenaltyBilevel(BilevelSolver):
    """Fully first-order penalty method on ``F + (G(x, y) - min_z G(x, z)) / sigma``.

    Each iteration takes ``inner_steps`` gradient steps on ``sigma F + G`` (giving
    ``y_s``) and on ``G`` (giving ``z``), then ``x <- x - stepsize h`` with
    ``h = grad_x F(x, y_s) + (grad_x G(x, y_s) - grad_x G(x, z)) / sigma``. No second
    derivatives are used; the stationary points are ``O(sigma)``-close to those of
    the hyper-objective (Kwon et al., Theorem 3.1). ``variant="single"`` is the
    single-loop method (one step of each variable per iteration).

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem`.
      sigma: penalty parameter ``> 0`` (``1 / lambda`` in Kwon et al.).
      stepsize: outer step size.
      inner_stepsize: inner step (``<= 0``: ``1/L`` of each inner problem).
      inner_steps: inner steps per iteration for ``variant="double"`` (static).
      variant: ``"double"`` or ``"single"``.
      maxiter, tol: stop when ``||h|| <= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, z), PenaltyBilevelState)``.

    References:
      Kwon, Kwon, Wright and Nowak, "On Penalty Methods for Nonconvex Bilevel
      Optimization and First-Order Stochastic Approximation", 2023 (arXiv:2309.01753);
      Shen and Chen, "On Penalty-based Bilevel Gradient Descent Method", 2023
      (arXiv:2302.05185); Chen, Xu and Zhang, "Near-Optimal Nonconvex-Strongly-Convex
      Bilevel Optimization with Fully First-Order Oracles", 2023 (arXiv:2306.14853).
    """

    _: dataclasses.KW_ONLY
    sigma: float = 1e-2
    stepsize: float = 0.1
    inner_stepsize: float = 0.0
    inner_steps: int = 10
    variant: str = "double"
    maxiter: int = 500
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_int(self.inner_steps, "inner_steps", minimum=1)
        if self.variant not in ("double", "single"):
            raise ValueError(f"`variant` must be 'double' or 'single', got {self.variant!r}.")

    def _positive_options(self):
        return ("sigma", "stepsize")

    def init_state(self, init_params: BilevelParams, data=None) -> PenaltyBilevelState:
        """Initial state (``y_penalty = y0``)."""
        x, y = init_params
        eta = self._inner_stepsize(x, y, data)
        eta_s = self._inner_stepsize(x, y, data, sigma=self.sigma)
        value = self.problem.outer_fun(x, y, data)
        return PenaltyBilevelState(
            jnp.asarray(0),
            jnp.asarray(jnp.inf, value.dtype),
            jnp.asarray(Status.RUNNING, jnp.int32),
            value,
            y,
            eta.astype(value.dtype),
            eta_s.astype(value.dtype),
        )

    def update(self, params: BilevelParams, state: PenaltyBilevelState, data=None) -> OptStep:
        """One penalty iteration."""
        x, z = params
        p, sigma = self.problem, self.sigma
        steps = 1 if self.variant == "single" else self.inner_steps
        pen_grad = lambda yy: jax.grad(p.penalized_inner)(yy, x, data, sigma)
        ys = _inner.gd_steps(pen_grad, state.y_penalty, state.penalty_stepsize, steps)
        z = _inner.gd_steps(lambda zz: p.inner_grad(x, zz, data), z, state.inner_stepsize, steps)
        value, gx, _ = p.outer_grads(x, ys, data)
        gxs, _ = p.inner_grads(x, ys, data)
        gxz, _ = p.inner_grads(x, z, data)
        h = jax.tree_util.tree_map(lambda a, b, c: a + (b - c) / sigma, gx, gxs, gxz)
        x = tu.tree_add_scalar_mul(x, -self.stepsize, h)
        state = state._replace(
            iter_num=state.iter_num + 1, error=tu.tree_l2_norm(h), value=value, y_penalty=ys
        )
        return OptStep(BilevelParams(x, z), state)
