"""BO-REP: normalized momentum, lower-level initialization refinement, periodic updates."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.bilevel import _inner
from jaxopt_lab.bilevel._solver import BilevelSolver
from jaxopt_lab.bilevel.problem import BilevelParams
from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int
from jaxopt_lab.core.types import OptStep, Status


class BOREPState(NamedTuple):
    """State of :class:`BOREP`.

    Attributes:
      iter_num, error (norm of the hypergradient estimate), status, value.
      momentum: the normalized-momentum buffer ``m``.
      adjoint: the adjoint estimate ``z ~ H^{-1} grad_y F``.
      key: PRNG key of the sampler.
      inner_stepsize: inner (and adjoint) gradient step.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    value: jax.Array
    momentum: Any
    adjoint: Any
    key: jax.Array
    inner_stepsize: jax.Array


@dataclasses.dataclass(eq=False)
class BOREP(BilevelSolver):
    """Bilevel optimization under unbounded smoothness (BO-REP).

    ``y`` is refined once at the start (``refine_steps`` gradient steps from ``y0``)
    and then updated only every ``update_interval`` iterations, by ``inner_steps``
    (stochastic) gradient steps from its previous value. Each iteration the adjoint
    ``z`` takes one step on ``z' H z / 2 - z' grad_y F``, the hypergradient estimate
    ``h = grad_x F - grad^2_xy G z`` feeds a momentum ``m <- beta m + (1 - beta) h``
    and ``x <- x - stepsize m / ||m||`` (normalization copes with an upper-level
    smoothness constant that grows with the gradient norm).

    Args:
      problem: a :class:`jaxopt_lab.bilevel.BilevelProblem`.
      stepsize: normalized outer step ``eta``.
      momentum: ``beta``.
      inner_stepsize: inner and adjoint step (``<= 0``: ``1/L`` by power iteration).
      refine_steps: initialization refinement steps (static).
      update_interval: ``I``, iterations between lower-level updates (static).
      inner_steps: ``N``, steps per lower-level update (static).
      sampler: optional ``sampler(key, data) -> batch``; the objectives are then
        evaluated on batches (stochastic BO-REP). ``None`` uses ``data``.
      key: PRNG key for the sampler (default ``PRNGKey(0)``).
      maxiter, tol: stop when ``||h|| <= tol``.

    Returns:
      ``run(x0, y0, data)`` returns ``OptStep(BilevelParams(x, y), BOREPState)``.

    References:
      Hao, Gong, Liu, "Bilevel Optimization under Unbounded Smoothness: A New
      Algorithm and Convergence Analysis", 2024 (arXiv:2401.09587).
    """

    _: dataclasses.KW_ONLY
    stepsize: float = 0.01
    momentum: float = 0.9
    inner_stepsize: float = 0.0
    refine_steps: int = 50
    update_interval: int = 2
    inner_steps: int = 5
    sampler: Callable | None = None
    key: jax.Array | None = None
    maxiter: int = 1000
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_int(self.refine_steps, "refine_steps", minimum=0)
        check_int(self.update_interval, "update_interval", minimum=1)
        check_int(self.inner_steps, "inner_steps", minimum=1)
        if self.sampler is not None:
            check_callable(self.sampler, "sampler")

    def _positive_options(self):
        return ("stepsize", "momentum")

    def _batch(self, key, data):
        return data if self.sampler is None else self.sampler(key, data)

    def init_state(self, init_params: BilevelParams, data=None) -> BOREPState:
        """Initial state; the lower-level refinement happens in the first update."""
        x, y = init_params
        value = self.problem.outer_fun(x, y, data)
        key = jax.random.PRNGKey(0) if self.key is None else self.key
        return BOREPState(
            jnp.asarray(0),
            jnp.asarray(jnp.inf, value.dtype),
            jnp.asarray(Status.RUNNING, jnp.int32),
            value,
            tu.tree_zeros_like(x),
            tu.tree_zeros_like(y),
            key,
            self._inner_stepsize(x, y, data).astype(value.dtype),
        )

    def update(self, params: BilevelParams, state: BOREPState, data=None) -> OptStep:
        """One BO-REP iteration."""
        x, y = params
        p, eta = self.problem, state.inner_stepsize
        key, k_in, k_out = jax.random.split(state.key, 3)
        first = state.iter_num == 0
        periodic = (state.iter_num % self.update_interval) == 0
        inner_batch = self._batch(k_in, data)
        steps = lambda yy, n: _inner.gd_steps(lambda z: p.inner_grad(x, z, inner_batch), yy, eta, n)
        if self.refine_steps > 0:
            y = jax.lax.cond(first, lambda yy: steps(yy, self.refine_steps), lambda yy: yy, y)
        y = jax.lax.cond(periodic, lambda yy: steps(yy, self.inner_steps), lambda yy: yy, y)
        batch = self._batch(k_out, data)
        value, _, gy = p.outer_grads(x, y, batch)
        z = state.adjoint
        z = tu.tree_add_scalar_mul(z, -eta, tu.tree_sub(p.inner_hvp(x, y, batch, z), gy))
        h = p.hypergrad_from_adjoint(x, y, batch, z)
        m = jax.tree_util.tree_map(
            lambda a, b: self.momentum * a + (1 - self.momentum) * b, state.momentum, h
        )
        mnorm = tu.tree_l2_norm(m)
        x = tu.tree_add_scalar_mul(x, -self.stepsize / jnp.maximum(mnorm, 1e-30), m)
        state = state._replace(
            iter_num=state.iter_num + 1, error=tu.tree_l2_norm(h), value=value, momentum=m, adjoint=z, key=key
        )
        return OptStep(BilevelParams(x, y), state)
