"""Entropic optimal transport by log-domain Sinkhorn iterations, with implicit derivatives."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import all_concrete, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status


class SinkhornState(NamedTuple):
    """State of :class:`Sinkhorn`.

    Attributes:
      iter_num: iterations done.
      error: ``||P 1 - a||_1 + ||P^T 1 - b||_1`` at the current potentials (after an
        iteration the second term is zero to rounding and only the first is computed).
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array


def log_plan(params, cost, epsilon):
    """``log P = (f_i + g_j - C_ij) / epsilon`` for potentials ``params = (f, g)``.

    Args:
      params: ``(f, g)``, shapes ``(n,)`` and ``(m,)``.
      cost: ``C``, shape ``(n, m)``.
      epsilon: entropic regularization.

    Returns:
      ``log P``, shape ``(n, m)``.
    """
    f, g = params
    return (f[:, None] + g[None, :] - cost) / epsilon


def marginal_error(params, cost, a, b, epsilon):
    """``||P 1 - a||_1 + ||P^T 1 - b||_1`` computed in the log domain.

    Args:
      params: ``(f, g)``.
      cost, a, b: the problem.
      epsilon: entropic regularization.

    Returns:
      A scalar.
    """
    lp = log_plan(params, cost, epsilon)
    rows = jnp.exp(jax.nn.logsumexp(lp, axis=1))
    cols = jnp.exp(jax.nn.logsumexp(lp, axis=0))
    return jnp.sum(jnp.abs(rows - a)) + jnp.sum(jnp.abs(cols - b))


def gauge_penalty(a, epsilon, n, m):
    """Weight ``rho`` of ``rho/2 (sum f - sum g)^2``, which fixes the potentials' free shift.

    ``(f + t, g - t)`` gives the same plan for every ``t``; the penalty makes the
    optimality Jacobian non-singular (its curvature along ``(1, -1)`` is about that of the
    others, ``sum(a) / (epsilon (n + m))``).

    Args:
      a: first marginal.
      epsilon: entropic regularization.
      n, m: problem sizes.

    Returns:
      ``rho``.
    """
    return jnp.sum(a) / (epsilon * (n + m) ** 2)


def dual_objective(params, cost, a, b, epsilon):
    """The convex (negated) entropic dual, plus the gauge penalty.

    ``Phi(f, g) = epsilon sum_ij exp((f_i + g_j - C_ij) / epsilon) - <f, a> - <g, b>
    + rho/2 (sum f - sum g)^2``; its gradient is ``(P 1 - a, P^T 1 - b)`` (plus the
    penalty's) and its minimizers are the optimal potentials with ``sum f = sum g``.

    Args:
      params: ``(f, g)``.
      cost, a, b: the problem.
      epsilon: entropic regularization.

    Returns:
      ``Phi(f, g)``, a scalar.

    References:
      Peyre and Cuturi, "Computational Optimal Transport", 2019 (arXiv:1803.00567),
      Proposition 4.4 (the entropic dual).
    """
    f, g = params
    n, m = cost.shape
    mass = epsilon * jnp.exp(jax.nn.logsumexp(log_plan(params, cost, epsilon)))
    gap = jnp.sum(f) - jnp.sum(g)
    return mass - f @ a - g @ b + 0.5 * gauge_penalty(a, epsilon, n, m) * gap**2


def center(params):
    """Shift ``(f, g)`` to ``(f - t, g + t)`` with ``sum f = sum g`` (the plan is unchanged).

    Args:
      params: ``(f, g)``.

    Returns:
      The centered ``(f, g)``.
    """
    f, g = params
    t = (jnp.sum(f) - jnp.sum(g)) / (f.shape[0] + g.shape[0])
    return f - t, g + t


@dataclasses.dataclass(eq=False)
class Sinkhorn(IterativeSolver):
    """Entropic optimal transport between histograms by log-domain Sinkhorn iterations.

    Solves ``min_P <C, P> - epsilon H(P)`` over ``{P >= 0, P 1 = a, P^T 1 = b}`` through
    its dual potentials ``params = (f, g)``: one iteration is
    ``f = epsilon log a - epsilon LSE_j((g_j - C_ij) / epsilon)`` followed by the same
    update of ``g`` (so the column marginals are exact after each step), computed with
    log-sum-exp so that small ``epsilon`` does not underflow. The plan is
    :meth:`transport_plan` ``P_ij = exp((f_i + g_j - C_ij) / epsilon)``.

    ``run(init_params, cost, a, b)``: derivatives with respect to ``cost``, ``a`` and
    ``b`` come from the implicit function theorem on the dual optimality conditions
    ``P 1 = a, P^T 1 = b`` (:meth:`optimality_fun`, the gradient of
    :func:`dual_objective`, whose free shift of the potentials is fixed by a penalty; the
    potentials are kept centered, ``sum f = sum g``). Works under ``jit`` and ``vmap``
    (a batch of problems of one shape). ``a`` and ``b`` must be positive with equal sums.

    Args:
      epsilon: entropic regularization ``> 0`` (traced).
      maxiter: maximum iterations (static).
      tol: stop when the marginal error ``||P 1 - a||_1 + ||P^T 1 - b||_1 <= tol``.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep((f, g), SinkhornState)``.

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS
      2013 (arXiv:1306.0895); Peyre and Cuturi, "Computational Optimal Transport", 2019
      (arXiv:1803.00567), Section 4.4 (log-domain iterations).
    """

    _positional: ClassVar[tuple[str, ...]] = ()

    _: dataclasses.KW_ONLY
    epsilon: float = 1e-1
    maxiter: int = 1000
    tol: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.epsilon, "epsilon")

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        _check_problem(init_params, *args, **kwargs)

    def transport_plan(self, params, cost) -> jax.Array:
        """The plan ``P_ij = exp((f_i + g_j - C_ij) / epsilon)`` of potentials ``(f, g)``.

        Args:
          params: ``(f, g)``.
          cost: ``C``, shape ``(n, m)``.

        Returns:
          ``P``, shape ``(n, m)``.
        """
        return jnp.exp(log_plan(params, cost, self.epsilon))

    def optimality_fun(self, params, cost, a, b):
        """Gradient of :func:`dual_objective`: ``(P 1 - a, P^T 1 - b)`` plus the gauge term.

        Args:
          params: ``(f, g)``.
          cost, a, b: the problem.

        Returns:
          A pytree like ``params``, zero at the centered optimal potentials.
        """
        return jax.grad(dual_objective)(params, cost, a, b, self.epsilon)

    def init_state(self, init_params, cost, a, b) -> SinkhornState:
        """The marginal error of ``init_params``.

        Args:
          init_params: ``(f, g)`` (e.g. zeros of shapes ``(n,)`` and ``(m,)``).
          cost, a, b: the problem.

        Returns:
          A :class:`SinkhornState`.
        """
        _check_problem(init_params, cost, a, b)
        err = marginal_error(init_params, cost, a, b, self.epsilon)
        return SinkhornState(jnp.asarray(0, jnp.int32), err.astype(cost.dtype),
                             jnp.asarray(Status.RUNNING, jnp.int32))

    def _sinkhorn_step(self, params, cost, a, b):
        f, g = params
        eps = self.epsilon
        f = eps * jnp.log(a) - eps * jax.nn.logsumexp((g[None, :] - cost) / eps, axis=1)
        g = eps * jnp.log(b) - eps * jax.nn.logsumexp((f[:, None] - cost) / eps, axis=0)
        return center((f, g))

    def update(self, params, state: SinkhornState, cost, a, b) -> OptStep:
        """One Sinkhorn iteration (the ``f`` then the ``g`` update).

        Args:
          params: ``(f, g)``.
          state: current :class:`SinkhornState`.
          cost, a, b: the problem.

        Returns:
          ``OptStep((f, g), state)``.
        """
        new = self._sinkhorn_step(params, cost, a, b)
        # The g update makes the column marginals exact (to rounding): only the rows are measured.
        rows = jnp.exp(jax.nn.logsumexp(log_plan(new, cost, self.epsilon), axis=1))
        err = jnp.sum(jnp.abs(rows - a)).astype(state.error.dtype)
        return OptStep(new, SinkhornState(state.iter_num + 1, err, state.status))


def _check_problem(init_params, cost, a, b) -> None:
    """Shapes (and, when concrete, positivity and equal masses) of a transport problem."""
    cost, a, b = jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b)
    if cost.ndim != 2 or a.shape != cost.shape[:1] or b.shape != cost.shape[1:]:
        raise ValueError(f"`cost` must be (n, m) with `a` (n,) and `b` (m,); got {cost.shape}, {a.shape}, "
                         f"{b.shape}.")
    if not (isinstance(init_params, tuple | list) and len(init_params) == 2
            and jnp.shape(init_params[0]) == a.shape and jnp.shape(init_params[1]) == b.shape):
        raise ValueError(f"`init_params` must be potentials (f, g) of shapes {a.shape} and {b.shape}.")
    if all_concrete(a, b):
        a_, b_ = np.asarray(a), np.asarray(b)
        if np.any(a_ <= 0) or np.any(b_ <= 0):
            raise ValueError("`a` and `b` must be positive (drop the zero-mass points).")
        if not np.isclose(a_.sum(), b_.sum(), rtol=1e-6):
            raise ValueError(f"`a` and `b` must have equal sums, got {a_.sum()} and {b_.sum()}.")
