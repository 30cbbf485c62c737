"""Sinkhorn-Newton-Sparse: Sinkhorn warm-up, then Newton steps on the dual with a sparsified Hessian."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.optimal_transport.sinkhorn import (
    Sinkhorn,
    center,
    dual_objective,
    gauge_penalty,
    log_plan,
    marginal_error,
)


class SinkhornNewtonSparseState(NamedTuple):
    """State of :class:`SinkhornNewtonSparse`.

    Attributes:
      iter_num: iterations done (Sinkhorn and Newton).
      error: ``||P 1 - a||_1 + ||P^T 1 - b||_1`` at the current potentials.
      stepsize: step of the last Newton iteration (0 when it fell back to a Sinkhorn step,
        1 during the Sinkhorn stage).
      num_cg: CG iterations (sparse Hessian-vector products) so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    stepsize: jax.Array
    num_cg: jax.Array
    status: jax.Array


def largest_entries(P, nnz: int, steps: int = 60):
    """The entries of ``P >= 0`` above a threshold that keeps at most ``nnz`` of them.

    The threshold is found by bisection on ``log P`` (``steps`` passes counting the
    entries above it, ``O(nm)`` each, no sort); the kept entries are gathered into
    ``nnz`` slots (unused slots hold value 0). With distinct values this is the ``nnz``
    largest entries.

    Args:
      P: non-negative ``(n, m)`` array.
      nnz: slots (static).
      steps: bisection steps (static).

    Returns:
      ``(values, rows, cols)``, each of shape ``(nnz,)``.
    """
    n, m = P.shape
    flat = P.reshape(-1)
    if nnz >= flat.size:
        idx = jnp.arange(flat.size)
        return flat, idx // m, idx % m
    logp = jnp.log(jnp.maximum(flat, jnp.finfo(flat.dtype).tiny))
    count = lambda t: jnp.sum(logp >= t)

    def bisect(_, bounds):
        lo, hi = bounds  # count(lo) > nnz >= count(hi)
        mid = 0.5 * (lo + hi)
        over = count(mid) > nnz
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    lo0 = jnp.min(logp) - 1.0
    hi0 = jnp.max(logp) + 1.0
    _, hi = jax.lax.fori_loop(0, steps, bisect, (lo0, hi0))
    keep = logp >= hi
    (idx,) = jnp.nonzero(keep, size=nnz, fill_value=0)
    values = jnp.where(jnp.arange(nnz) < jnp.sum(keep), flat[idx], 0.0)
    return values, idx // m, idx % m


def sparse_hessian_matvec(P, rows_sum, cols_sum, nnz: int, epsilon, rho):
    """``v -> H v`` for the dual Hessian with ``P`` kept at its ``nnz`` largest entries.

    ``H = (1/epsilon) [[diag(P 1), S], [S^T, diag(P^T 1)]] + rho u u^T`` with ``S`` the
    thresholded plan and ``u = (1, -1)`` (the gauge penalty); the diagonal keeps the exact
    marginals, so ``H`` stays diagonally dominant (positive semi-definite). A product
    costs ``O(n + m + nnz)``.

    Args:
      P: the plan, shape ``(n, m)``.
      rows_sum, cols_sum: ``P 1`` and ``P^T 1``.
      nnz: entries of ``P`` kept (static).
      epsilon: entropic regularization.
      rho: weight of the gauge penalty.

    Returns:
      ``(matvec, diagonal)``: the product on pytrees ``(v_f, v_g)`` and the diagonal of ``H``.

    References:
      Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao and Ying, "Accelerating
      Sinkhorn Algorithm with Sparse Newton Iterations", ICLR 2024 (arXiv:2401.12253).
    """
    n, m = P.shape
    vals, rows, cols = largest_entries(P, nnz)

    def matvec(v):
        vf, vg = v
        gap = rho * (jnp.sum(vf) - jnp.sum(vg))
        out_f = (rows_sum * vf + jax.ops.segment_sum(vals * vg[cols], rows, n)) / epsilon + gap
        out_g = (cols_sum * vg + jax.ops.segment_sum(vals * vf[rows], cols, m)) / epsilon - gap
        return out_f, out_g

    diagonal = (rows_sum / epsilon + rho, cols_sum / epsilon + rho)
    return matvec, diagonal


@dataclasses.dataclass(eq=False)
class SinkhornNewtonSparse(Sinkhorn):
    """Sinkhorn-Newton-Sparse (SNS): ``sinkhorn_steps`` Sinkhorn iterations, then sparse Newton.

    Stage 1 runs log-domain Sinkhorn iterations (:class:`Sinkhorn`) to enter the region
    where the plan is concentrated. Stage 2 takes Newton steps on the convex dual
    :func:`~jaxopt_lab.solvers.optimal_transport.sinkhorn.dual_objective`: the Hessian
    ``(1/epsilon) [[diag(P 1), P], [P^T, diag(P^T 1)]]`` is sparsified by keeping the
    ``ceil(density * n * m)`` largest entries of ``P`` (a threshold found by bisection,
    :func:`largest_entries`; :func:`sparse_hessian_matvec`),
    the Newton system is solved by Jacobi-preconditioned CG (``O(nnz)`` per product) and
    the step size comes from an Armijo test on the dual objective over the steps
    ``1, 1/2, ..., 2^(1 - num_steps)``, all evaluated at once (``vmap``). Where no step
    passes, the iteration is a Sinkhorn step instead. Near the solution the plan is
    approximately sparse and the sparsified Newton step converges super-linearly, where
    Sinkhorn is linear with a rate that degrades as ``epsilon`` shrinks.

    Solution, derivatives, ``vmap`` and the problem contract are those of :class:`Sinkhorn`.

    Args:
      epsilon: entropic regularization ``> 0`` (traced).
      sinkhorn_steps: Sinkhorn iterations before the Newton stage (static).
      density: fraction of the plan's entries kept in the Hessian, in ``(0, 1]`` (static:
        it sets the sparse pattern's size).
      cg_maxiter: CG iterations per Newton step (static).
      cg_tol: relative CG tolerance.
      num_steps: step sizes tried by the line search (static).
      armijo: sufficient-decrease constant in ``(0, 1)``.
      maxiter, tol, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`Sinkhorn`.

    Returns:
      ``run`` returns ``OptStep((f, g), SinkhornNewtonSparseState)``.

    References:
      Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao and Ying, "Accelerating
      Sinkhorn Algorithm with Sparse Newton Iterations", ICLR 2024 (arXiv:2401.12253),
      Algorithm 1.
    """

    _: dataclasses.KW_ONLY
    sinkhorn_steps: int = 20
    density: float = 0.1
    cg_maxiter: int = 100
    cg_tol: float = 1e-10
    num_steps: int = 30
    armijo: float = 1e-4
    maxiter: int = 200

    def __post_init__(self):
        super().__post_init__()
        check_int(self.sinkhorn_steps, "sinkhorn_steps", minimum=0)
        check_int(self.cg_maxiter, "cg_maxiter", minimum=1)
        check_int(self.num_steps, "num_steps", minimum=1)
        check_positive(self.cg_tol, "cg_tol")
        if not (isinstance(self.density, float | int) and 0 < self.density <= 1):
            raise ValueError(f"`density` must be a number in (0, 1], got {self.density!r}.")
        if not (0 < self.armijo < 1):
            raise ValueError(f"`armijo` must be in (0, 1), got {self.armijo!r}.")

    def _static_option(self, name, value) -> bool:
        return name == "density"  # sets the size of the sparse pattern

    def init_state(self, init_params, cost, a, b) -> SinkhornNewtonSparseState:
        """The marginal error of ``init_params``.

        Args:
          init_params: ``(f, g)``.
          cost, a, b: the problem.

        Returns:
          A :class:`SinkhornNewtonSparseState`.
        """
        s = super().init_state(init_params, cost, a, b)
        dtype = s.error.dtype
        return SinkhornNewtonSparseState(s.iter_num, s.error, jnp.ones([], dtype),
                                         jnp.asarray(0, jnp.int32), s.status)

    def _newton_step(self, params, cost, a, b):
        eps = self.epsilon
        n, m = cost.shape
        nnz = max(1, min(n * m, math.ceil(self.density * n * m)))
        rho = gauge_penalty(a, eps, n, m)
        P = jnp.exp(log_plan(params, cost, eps))
        rows_sum, cols_sum = jnp.sum(P, axis=1), jnp.sum(P, axis=0)
        value, grad = jax.value_and_grad(dual_objective)(params, cost, a, b, eps)
        matvec, (df, dg) = sparse_hessian_matvec(P, rows_sum, cols_sum, nnz, eps, rho)
        pre = lambda v: (v[0] / df, v[1] / dg)
        neg = jax.tree_util.tree_map(jnp.negative, grad)
        d, info = ls.solve_cg(matvec, neg, tol=self.cg_tol, maxiter=self.cg_maxiter, M=pre,
                              return_info=True)
        slope = jnp.vdot(grad[0], d[0]) + jnp.vdot(grad[1], d[1])
        ts = 0.5 ** jnp.arange(self.num_steps, dtype=cost.dtype)
        trial = lambda t: center(jax.tree_util.tree_map(lambda p, q: p + t * q, params, d))
        cands = jax.vmap(trial)(ts)
        vals = jax.vmap(lambda z: dual_objective(z, cost, a, b, eps))(cands)
        # Armijo on the dual, with the rounding of its value credited (so that the full step
        # is taken once the decrease is below rounding, where Newton converges fastest).
        slack = 4 * jnp.finfo(cost.dtype).eps * jnp.abs(value)
        ok = jnp.isfinite(vals) & (vals <= value + self.armijo * ts * slope + slack) & (slope < 0)
        i = jnp.argmax(ok)  # the largest passing step
        found = ok[i]
        pick = jax.tree_util.tree_map(lambda c: c[i], cands)
        return pick, jnp.where(found, ts[i], 0.0), found, info.iterations

    def update(self, params, state: SinkhornNewtonSparseState, cost, a, b) -> OptStep:
        """A Sinkhorn iteration in stage 1, a sparse Newton iteration in stage 2.

        Args:
          params: ``(f, g)``.
          state: current :class:`SinkhornNewtonSparseState`.
          cost, a, b: the problem.

        Returns:
          ``OptStep((f, g), state)``.
        """
        dtype = state.error.dtype

        def sinkhorn(_):
            return self._sinkhorn_step(params, cost, a, b), jnp.ones([], dtype), jnp.asarray(0, jnp.int32)

        def newton(_):
            new, t, found, cg = self._newton_step(params, cost, a, b)
            fallback = self._sinkhorn_step(params, cost, a, b)
            new = jax.tree_util.tree_map(lambda u, v: jnp.where(found, u, v), new, fallback)
            return new, t.astype(dtype), cg.astype(jnp.int32)

        new, t, cg = jax.lax.cond(state.iter_num < self.sinkhorn_steps, sinkhorn, newton, None)
        err = marginal_error(new, cost, a, b, self.epsilon).astype(dtype)
        return OptStep(new, SinkhornNewtonSparseState(state.iter_num + 1, err, t, state.num_cg + cg,
                                                      jnp.asarray(state.status, jnp.int32)))


__all__ = ["SinkhornNewtonSparse", "SinkhornNewtonSparseState", "largest_entries", "sparse_hessian_matvec"]
