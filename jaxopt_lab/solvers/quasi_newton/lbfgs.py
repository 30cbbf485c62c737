"""L-BFGS with a strong-Wolfe or backtracking line search, designed for ``vmap``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int
from jaxopt_lab.solvers.quasi_newton._helpers import curvature_pair, first_stepsize
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonSolver, QuasiNewtonState

LbfgsState = QuasiNewtonState  # L-BFGS's state (its name in earlier releases and in jaxopt)


class LbfgsApprox(NamedTuple):
    """L-BFGS's memory.

    Attributes:
      s_history, y_history: ring buffers of the last ``history_size`` parameter
        and gradient differences (leading axis ``history_size``).
      rho_history: ``1 / <s, y>`` for each stored pair (0 for empty slots).
      gamma: initial inverse-Hessian scaling ``<s, y> / <y, y>``.
    """

    s_history: Any
    y_history: Any
    rho_history: jax.Array
    gamma: jax.Array


def _history_dot(hist, tree, m):
    """``(m,)`` inner products of every stored pair with ``tree``."""
    parts = [h.reshape(m, -1) @ x.reshape(-1) for h, x in
             zip(jax.tree_util.tree_leaves(hist), jax.tree_util.tree_leaves(tree), strict=True)]
    return sum(parts[1:], parts[0])


def _history_gram(hist_a, hist_b, m):
    """``(m, m)`` matrix of inner products ``<a_i, b_j>``."""
    parts = [a.reshape(m, -1) @ b.reshape(m, -1).T for a, b in
             zip(jax.tree_util.tree_leaves(hist_a), jax.tree_util.tree_leaves(hist_b), strict=True)]
    return sum(parts[1:], parts[0])


def _history_combine(hist, coef):
    """``sum_i coef_i * hist_i`` as a pytree."""
    return jax.tree_util.tree_map(lambda h: jnp.tensordot(coef.astype(h.dtype), h, axes=1), hist)


def inverse_hessian_product(grad, s_hist, y_hist, rho_hist, gamma, ptr):
    """``H g`` for the L-BFGS inverse-Hessian approximation, in compact form.

    Uses ``H = gamma I + [S, gamma Y] M [S, gamma Y]^T`` with
    ``M = [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]]``, ``R`` the upper
    triangle of ``S^T Y`` and ``D`` its diagonal, in chronological order. Every
    step is a dense product or an ``m x m`` triangular solve: no loop over the
    history and no indexing by a traced position, so under ``vmap`` (where each
    lane has its own ring position) it stays a few batched matrix products
    instead of gathers and scatters. Empty or skipped slots (``rho = 0``, zero
    pairs) decouple exactly.

    Args:
      grad: the vector ``g`` (a pytree).
      s_hist, y_hist: ring buffers of pairs (leading axis ``m``).
      rho_hist: ``1 / <s_i, y_i>`` (0 for empty slots).
      gamma: initial scaling ``H_0 = gamma I``.
      ptr: the next write position (the oldest pair).

    Returns:
      ``H g``, a pytree like ``grad``.

    References:
      Byrd, Nocedal and Schnabel, "Representations of quasi-Newton matrices and
      their use in limited memory methods", Math. Programming, 1994.
    """
    m = rho_hist.shape[0]
    dtype = rho_hist.dtype
    # Permutation matrix from storage to chronological order (oldest first).
    chron = (ptr + jnp.arange(m)) % m
    P = jax.nn.one_hot(chron, m, dtype=dtype)
    empty = P @ (rho_hist == 0).astype(dtype)
    sy = P @ _history_gram(s_hist, y_hist, m).astype(dtype) @ P.T
    yy = P @ _history_gram(y_hist, y_hist, m).astype(dtype) @ P.T
    u = P @ _history_dot(s_hist, grad, m).astype(dtype)
    w = gamma * (P @ _history_dot(y_hist, grad, m).astype(dtype))
    diag = jnp.diagonal(sy) * (1 - empty)
    R = jnp.triu(sy, 1) + jnp.diag(diag + empty)
    r = jax.scipy.linalg.solve_triangular(R, u, lower=False)
    v = diag * r + gamma * (yy @ r) - w
    p = jax.scipy.linalg.solve_triangular(R.T, v, lower=True)
    p_st, r_st = P.T @ p, P.T @ r
    out = tu.tree_add(tu.tree_scalar_mul(gamma, grad), _history_combine(s_hist, p_st))
    return tu.tree_add_scalar_mul(out, -gamma, _history_combine(y_hist, r_st))


@dataclasses.dataclass(eq=False, kw_only=True)
class LBFGS(QuasiNewtonSolver):
    """Limited-memory BFGS for smooth unconstrained minimization.

    Each iteration computes ``d = -H g`` by the two-loop recursion over the last
    ``history_size`` curvature pairs and takes a step along ``d`` found by a line
    search (strong Wolfe by default). The line search is a single while-loop with
    one evaluation per trial and no branches, so that ``vmap`` over many problems
    (a hyperparameter sweep) costs about one batched evaluation per iteration.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` returning a real scalar (or
        ``(value, aux)`` with ``has_aux``; ``(value, grad)`` with ``value_and_grad``).
        Params may be complex (jaxopt's convention: the step is along
        ``-conj(jax.grad(fun))``, inner products are ``Re <x, y>``).
      value_and_grad: whether ``fun`` returns the gradient too.
      has_aux: whether ``fun`` returns auxiliary output.
      maxiter: maximum iterations.
      tol: stop when the gradient norm is ``<= tol``.
      stepsize, linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize: the line-search options of
        :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions` (``stepsize > 0``
        fixes the step; default strong Wolfe with ``c1=1e-4``, ``c2=0.9``, ``maxls=30``, by
        bracketing and zoom; ``linesearch="more-thuente"`` for Moré and Thuente's search). The
        unit step is tried first, scaled by ``gamma``; the first iteration tries
        ``1 / ||grad||``.
      history_size: number of stored curvature pairs (static).
      use_gamma: scale the initial inverse Hessian by ``<s, y> / <y, y>``.
      stop_if_linesearch_fails: stop when the line search finds no step (default,
        unlike jaxopt's False): ``STALLED`` when no decrease is representable in the
        dtype (``tol`` below its reach), ``NONFINITE`` when the gradient was NaN where
        ``f`` was finite, else ``LINESEARCH_FAILED``. With False the memory is cleared
        and the next iteration restarts along ``-grad`` (a failure with an empty memory
        still stops).
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns an ``OptStep(params, QuasiNewtonState)`` (``LbfgsState``; its
      ``approx`` is an :class:`LbfgsApprox`, whose fields read as the state's own).

    References:
      Liu and Nocedal, "On the limited memory BFGS method for large scale
      optimization", 1989; Nocedal and Wright, "Numerical Optimization", 2006.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "stepsize", "linesearch",
        "linesearch_init", "stop_if_linesearch_fails", "condition", "maxls", "decrease_factor",
        "increase_factor", "max_stepsize", "min_stepsize", "history_size", "use_gamma", "implicit_diff",
        "implicit_diff_solve", "jit", "unroll", "verbose",
    )

    maxiter: int = 500
    tol: float = 1e-3
    history_size: int = 10
    use_gamma: bool = True
    stop_if_linesearch_fails: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_int(self.history_size, "history_size", minimum=1)

    def _init_approx(self, x, value, grad) -> LbfgsApprox:
        m = self.history_size
        stack = lambda p: jax.tree_util.tree_map(
            lambda a: jnp.zeros((m,) + jnp.shape(a), jnp.result_type(a)), p)
        dtype = jnp.result_type(value)
        return LbfgsApprox(stack(x), stack(x), jnp.zeros((m,), dtype), jnp.asarray(1.0, dtype))

    def _direction(self, x, grad, state, ctx):
        mem = state.approx
        dtype = mem.rho_history.dtype
        gamma = mem.gamma if self.use_gamma else jnp.asarray(1.0, dtype)
        hd = inverse_hessian_product(grad, mem.s_history, mem.y_history, mem.rho_history, gamma,
                                     state.iter_num % self.history_size)
        direction = tu.tree_negative(hd)
        # Fall back to steepest descent if the quasi-Newton direction is not a descent one.
        descent = tu.tree_vdot(grad, direction) < 0
        direction = tu.tree_where(descent, direction, tu.tree_negative(grad))
        first = jnp.all(mem.rho_history == 0) | ~descent
        return direction, jnp.where(first, first_stepsize(state.error, dtype), 1.0)

    def _update_approx(self, state, x, grad, direction, ls, x_new) -> LbfgsApprox:
        mem, m = state.approx, self.history_size
        s, y, sy, yy, good = curvature_pair(x, x_new, grad, ls.grad, ls.failed, mem.rho_history.dtype)
        # A skipped pair leaves an empty slot (rho = 0), so the ring order stays exact. Writes
        # by a one-hot mask rather than .at[ptr]: under vmap a traced position would turn
        # into a scatter.
        slot = jnp.arange(m) == state.iter_num % m
        put = lambda hist, v: jax.tree_util.tree_map(
            lambda h, a: jnp.where(slot.reshape((m,) + (1,) * a.ndim),
                                   jnp.where(good, a, 0).astype(h.dtype)[None], h), hist, v)
        rho = jnp.where(slot, jnp.where(good, 1.0 / jnp.where(good, sy, 1.0), 0.0), mem.rho_history)
        gamma = jnp.where(good, sy / jnp.where(good, yy, 1.0), mem.gamma)
        return LbfgsApprox(put(mem.s_history, s), put(mem.y_history, y), rho, gamma)

    def _can_restart(self, approx) -> jax.Array:
        # With stop_if_linesearch_fails=False a failure clears the memory and the next
        # iteration restarts along -grad; with an empty memory it ends the solve.
        return jnp.asarray(not self.stop_if_linesearch_fails) & jnp.any(approx.rho_history != 0)
