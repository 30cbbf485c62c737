"""LV-HBA: constrained bilevel optimization by a proximal Lagrangian value function."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.bilevel._solver import BilevelSolver
from jaxopt_lab.bilevel.problem import BilevelParams
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.core.types import OptStep, Status


class LVHBAState(NamedTuple):
    """State of :class:`LVHBA`.

    Attributes:
      iter_num, error (fixed-point residual of ``(x, y)``), status, value.
      theta, lam: the proximal inner primal and dual iterates.
      z: the proximal centre of the multipliers.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    theta: Any
    lam: jax.Array
    z: jax.Array


@dataclasses.dataclass(eq=False)
class LVHBA(BilevelSolver):
    """Hessian-free bilevel method for inner problems with coupled constraints.

    Inner problem ``min_y f(x, y)`` s.t. ``g(x, y) <= 0`` (``problem.inner_fun`` and
    ``problem.inner_constraints``). The value function is replaced by the proximal
    Lagrangian value function ``v(x, y, z) = min_theta max_{lam >= 0} f(x, theta) +
    <lam, g(x, theta)> + ||theta - y||^2 / (2 gamma1) - ||lam - z||^2 / (2 gamma2)``, and
    ``F / c_k + f - v`` is minimized over ``{g(x, y) <= 0}`` with ``c_k = c0 (k+1)^p``.
    Each iteration takes one projected gradient step on ``(theta, lam)`` and one
    projected step on ``(x, y, z)``; only first derivatives are used.

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem` with ``inner_constraints``.
      projection: ``projection(x, y, data) -> (x, y)`` onto ``{g(x, y) <= 0}`` (and any
        outer constraint set); ``None`` leaves ``(x, y)`` unprojected.
      stepsize: ``alpha`` (step of ``x, y``).
      dual_stepsize: ``beta`` (step of ``z``).
      inner_stepsize: ``eta`` (step of ``theta, lam``).
      gamma1, gamma2: proximal parameters.
      c0, power: penalty schedule ``c_k = c0 (k + 1)^power``.
      maxiter, tol: stop when ``||(x, y)_{k+1} - (x, y)_k|| / alpha <= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, y), LVHBAState)``.

    References:
      Yao, Xu, Zeng, Zhang, Zhang, "Constrained Bi-Level Optimization: Proximal
      Lagrangian Value Function Approach and Hessian-free Algorithm", 2024
      (arXiv:2401.16164), Algorithm 1.
    """

    _: dataclasses.KW_ONLY
    projection: Callable | None = None
    stepsize: float = 0.02
    dual_stepsize: float = 0.02
    inner_stepsize: float = 0.1
    gamma1: float = 1.0
    gamma2: float = 1.0
    c0: float = 1.0
    power: float = 0.3
    maxiter: int = 5000
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        if self.problem.inner_constraints is None:
            raise ValueError("`problem` must define `inner_constraints` for LVHBA.")
        if self.projection is not None:
            check_callable(self.projection, "projection")

    def _positive_options(self):
        return ("stepsize", "dual_stepsize", "inner_stepsize", "gamma1", "gamma2", "c0")

    def _static_option(self, name, value) -> bool:
        return False

    def init_state(self, init_params: BilevelParams, data=None) -> LVHBAState:
        """Initial state (``theta = y0``, multipliers zero)."""
        x, y = init_params
        value = self.problem.outer_fun(x, y, data)
        ncons = jnp.shape(self.problem.inner_constraints(x, y, data))
        lam = jnp.zeros(ncons, value.dtype)
        return LVHBAState(
            jnp.asarray(0),
            jnp.asarray(jnp.inf, value.dtype),
            jnp.asarray(Status.RUNNING, jnp.int32),
            value,
            y,
            lam,
            lam,
        )

    def update(self, params: BilevelParams, state: LVHBAState, data=None) -> OptStep:
        """One LV-HBA iteration."""
        x, y = params
        p, g = self.problem, self.problem.inner_constraints
        theta, lam, z = state.theta, state.lam, state.z
        eta, g1, g2 = self.inner_stepsize, self.gamma1, self.gamma2

        def lagrangian(xx, th, lm):
            return p.inner_fun(xx, th, data) + jnp.vdot(lm, g(xx, th, data))

        # (theta, lam): projected gradient descent-ascent on the proximal Lagrangian.
        d_theta = jax.grad(lagrangian, argnums=1)(x, theta, lam)
        d_theta = jax.tree_util.tree_map(lambda a, t, yy: a + (t - yy) / g1, d_theta, theta, y)
        theta = tu.tree_add_scalar_mul(theta, -eta, d_theta)
        lam = jnp.maximum(lam + eta * (g(x, theta, data) - (lam - z) / g2), 0.0)
        # (x, y, z): gradient of F / c_k + f(x, y) - v(x, y, z) at the inner estimates.
        ck = self.c0 * (state.iter_num + 1.0) ** self.power
        value, gxF, gyF = p.outer_grads(x, y, data)
        gxf, gyf = p.inner_grads(x, y, data)
        gxL = jax.grad(lagrangian, argnums=0)(x, theta, lam)
        dx = jax.tree_util.tree_map(lambda a, b, c: a / ck + b - c, gxF, gxf, gxL)
        dy = jax.tree_util.tree_map(lambda a, b, yy, t: a / ck + b - (yy - t) / g1, gyF, gyf, y, theta)
        dz = (z - lam) / g2
        x_new = tu.tree_add_scalar_mul(x, -self.stepsize, dx)
        y_new = tu.tree_add_scalar_mul(y, -self.stepsize, dy)
        if self.projection is not None:
            x_new, y_new = self.projection(x_new, y_new, data)
        z = jnp.maximum(z - self.dual_stepsize * dz, 0.0)
        moved = tu.tree_l2_norm((tu.tree_sub(x_new, x), tu.tree_sub(y_new, y))) / self.stepsize
        state = state._replace(
            iter_num=state.iter_num + 1, error=moved, value=value, theta=theta, lam=lam, z=z
        )
        return OptStep(BilevelParams(x_new, y_new), state)
