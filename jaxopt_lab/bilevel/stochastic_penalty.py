"""Stochastic penalty method with a sigma schedule and convex constraint sets (single or double loop)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.bilevel._solver import BilevelSolver
from jaxopt_lab.bilevel.problem import BilevelParams
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive
from jaxopt_lab.core.types import OptStep, Status

_identity = lambda t: t


class StochasticPenaltyBilevelState(NamedTuple):
    """State of :class:`StochasticPenaltyBilevel`.

    Attributes:
      iter_num, error (projected-gradient mapping ``||x_k - x_{k+1}|| / alpha_k``), status.
      value: ``F(x, y)`` on the last sample.
      y_penalty: iterate ``y`` of ``min_{y in Y} sigma F + G`` (``params.y`` is ``z``, the
        iterate of ``min_{z in Y} G``).
      sigma: penalty parameter ``sigma_k`` of the last step.
      inner_stepsize: base inner step ``gamma_0``.
      key: PRNG key of the sampler.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    y_penalty: Any
    sigma: jax.Array
    inner_stepsize: jax.Array
    key: jax.Array


@dataclasses.dataclass(eq=False)
class StochasticPenaltyBilevel(BilevelSolver):
    """First-order stochastic penalty method for ``min_{x in X} F(x, y*)``, ``y* in argmin_{y in Y} G``.

    The penalty function ``psi_sigma(x) = (min_{y in Y} [sigma F + G](x, y) - min_{z in Y} G(x, z)) / sigma``
    is ``O(sigma)``-close to the hyper-objective in value and gradient (Kwon et al., Theorems
    3.1-3.3), and ``grad psi_sigma(x) = grad_x F(x, y_s) + (grad_x G(x, y_s) - grad_x G(x, z)) / sigma``
    needs first derivatives only (``y_s``, ``z`` the two inner minimizers). Iteration ``k``, with
    ``sigma_k = max(sigma, sigma0 (k+1)^-p)``, ``alpha_k = alpha0 (k+1)^-a`` and
    ``gamma_k = gamma0 (k+1)^-c``, each gradient taken on a fresh sample ``sampler(key, data)``::

        repeat inner_steps times (1: the single-loop, O(1)-sample method):
            z <- P_Y(z - gamma_k grad_y G(x, z))
            y <- P_Y(y - gamma_k grad_y [sigma_k F + G](x, y))
        x <- P_X(x - alpha_k [grad_x F(x, y) + (grad_x G(x, y) - grad_x G(x, z)) / sigma_k])

    The defaults ``a = 5/7``, ``c = 4/7``, ``p = a - c = 1/7`` tie ``1 / sigma_k`` to
    ``gamma_k / alpha_k`` as in the single-loop analysis of Kwon et al. (2023) for noise in both
    levels; with ``sampler=None`` (exact gradients) set the decays to 0 for constant steps.

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem`.
      sampler: ``sampler(key, data) -> batch`` passed to the objectives in place of ``data``
        (a minibatch or a noisy copy); ``None``: ``data`` itself (deterministic).
      key: PRNG key of the sampler (default ``PRNGKey(0)``).
      sigma: final penalty parameter (the floor of the schedule).
      sigma0: initial penalty parameter (``<= 0``: ``sigma``, no schedule).
      sigma_decay: exponent ``p`` of the schedule.
      stepsize, stepsize_decay: ``alpha0`` and ``a`` of the outer step.
      inner_stepsize, inner_stepsize_decay: ``gamma0`` (``<= 0``: ``1/L`` of ``sigma0 F + G`` at
        the initial point) and ``c`` of the inner steps.
      inner_steps: inner steps per iteration (static).
      projection_x, projection_y: Euclidean projections onto the convex sets ``X`` and ``Y``
        (default: unconstrained).
      maxiter, tol: stop when the gradient mapping is ``<= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, z), StochasticPenaltyBilevelState)``.

    References:
      Kwon, Kwon, Wright and Nowak, "On Penalty Methods for Nonconvex Bilevel Optimization
      and First-Order Stochastic Approximation", 2023 (arXiv:2309.01753); Kwon, Kwon, Wright
      and Nowak, "A Fully First-Order Method for Stochastic Bilevel Optimization", 2023
      (arXiv:2301.10945).
    """

    _: dataclasses.KW_ONLY
    sampler: Callable | None = None
    key: jax.Array | None = None
    sigma: float = 1e-2
    sigma0: float = 0.0
    sigma_decay: float = 1.0 / 7.0
    stepsize: float = 0.1
    stepsize_decay: float = 5.0 / 7.0
    inner_stepsize: float = 0.0
    inner_stepsize_decay: float = 4.0 / 7.0
    inner_steps: int = 1
    projection_x: Callable = _identity
    projection_y: Callable = _identity
    maxiter: int = 1000
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_int(self.inner_steps, "inner_steps", minimum=1)
        for name in ("projection_x", "projection_y"):
            check_callable(getattr(self, name), name)
        if self.sampler is not None:
            check_callable(self.sampler, "sampler")
        for name in ("sigma_decay", "stepsize_decay", "inner_stepsize_decay"):
            check_positive(getattr(self, name), name, allow_zero=True)

    def _positive_options(self):
        return ("sigma", "stepsize")

    def _sample(self, key, data):
        return data if self.sampler is None else self.sampler(key, data)

    def _sigma_at(self, k):
        sigma0 = jnp.where(jnp.asarray(self.sigma0) > 0, self.sigma0, self.sigma)
        return jnp.maximum(self.sigma, sigma0 * (k + 1.0) ** (-self.sigma_decay))

    def init_state(self, init_params: BilevelParams, data=None) -> StochasticPenaltyBilevelState:
        """Initial state (``y_penalty = P_Y(y0)``)."""
        x, y = init_params
        key = jax.random.PRNGKey(0) if self.key is None else self.key
        sigma0 = self._sigma_at(0)
        gamma = self._inner_stepsize(x, y, data, sigma=sigma0)
        value = self.problem.outer_fun(x, y, data)
        dt = value.dtype
        return StochasticPenaltyBilevelState(
            jnp.asarray(0), jnp.asarray(jnp.inf, dt), jnp.asarray(Status.RUNNING, jnp.int32), value,
            self.projection_y(y), jnp.asarray(sigma0, dt), jnp.asarray(gamma, dt), key,
        )

    def update(self, params: BilevelParams, state: StochasticPenaltyBilevelState, data=None) -> OptStep:
        """One iteration: ``inner_steps`` projected steps of ``z`` and ``y``, one of ``x``."""
        x, z = params
        p, k = self.problem, state.iter_num.astype(state.sigma.dtype)
        sigma = self._sigma_at(k).astype(state.sigma.dtype)
        alpha = self.stepsize * (k + 1.0) ** (-self.stepsize_decay)
        gamma = state.inner_stepsize * (k + 1.0) ** (-self.inner_stepsize_decay)
        key, *keys = jax.random.split(state.key, self.inner_steps + 2)

        def inner(i, c):
            yy, zz = c
            batch = self._sample(jax.random.fold_in(keys[0], i), data)
            zz = self.projection_y(tu.tree_add_scalar_mul(zz, -gamma, p.inner_grad(x, zz, batch)))
            gy = jax.grad(p.penalized_inner)(yy, x, batch, sigma)
            yy = self.projection_y(tu.tree_add_scalar_mul(yy, -gamma, gy))
            return yy, zz

        y, z = jax.lax.fori_loop(0, self.inner_steps, inner, (state.y_penalty, z))
        batch = self._sample(keys[1], data)
        value, gx, _ = p.outer_grads(x, y, batch)
        gxs, _ = p.inner_grads(x, y, batch)
        gxz, _ = p.inner_grads(x, z, batch)
        h = jax.tree_util.tree_map(lambda a, b, c: a + (b - c) / sigma, gx, gxs, gxz)
        x_new = self.projection_x(tu.tree_add_scalar_mul(x, -alpha, h))
        error = tu.tree_l2_norm(tu.tree_sub(x, x_new)) / alpha
        state = state._replace(iter_num=state.iter_num + 1, error=error.astype(state.error.dtype),
                               value=value, y_penalty=y, sigma=sigma, key=key)
        return OptStep(BilevelParams(x_new, z), state)
