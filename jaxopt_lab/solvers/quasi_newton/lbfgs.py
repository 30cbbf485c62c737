"""L-BFGS with a strong-Wolfe or backtracking line search, designed for ``vmap``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class LbfgsState(NamedTuple):
    """State of :class:`LBFGS`.

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      stepsize: last accepted step.
      error: gradient norm.
      s_history, y_history: ring buffers of the last ``history_size`` parameter
        and gradient differences (leading axis ``history_size``).
      rho_history: ``1 / <s, y>`` for each stored pair (0 for empty slots).
      gamma: initial inverse-Hessian scaling ``<s, y> / <y, y>``.
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval: evaluations so far.
      num_linesearch_iter: line-search evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    error: jax.Array
    s_history: Any
    y_history: Any
    rho_history: jax.Array
    gamma: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array


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


@dataclasses.dataclass(eq=False)
class LBFGS(_linesearch.LineSearchOptions, IterativeSolver):
    """Limited-memory BFGS for smooth unconstrained minimization.

    Each iteration computes ``d = -H g`` by the two-loop recursion over the last
    ``history_size`` curvature pairs and takes a step along ``d`` found by a line
    search (strong Wolfe by default). The line search is a single while-loop with
    one evaluation per trial and no branches, so that ``vmap`` over many problems
    (a hyperparameter sweep) costs about one batched evaluation per iteration.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` returning a scalar (or
        ``(value, aux)`` with ``has_aux``; ``(value, grad)`` with ``value_and_grad``).
      value_and_grad: whether ``fun`` returns the gradient too.
      has_aux: whether ``fun`` returns auxiliary output.
      maxiter: maximum iterations.
      tol: stop when the gradient norm is ``<= tol``.
      stepsize, linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize: the line-search options of
        :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions` (``stepsize > 0``
        fixes the step; default strong Wolfe with ``c1=1e-4``, ``c2=0.9``, ``maxls=30``).
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
      ``run`` returns an ``OptStep(params, LbfgsState)``.

    References:
      Liu and Nocedal, "On the limited memory BFGS method for large scale
      optimization", 1989; Nocedal and Wright, "Numerical Optimization", 2006.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 500
    tol: float = 1e-3
    history_size: int = 10
    use_gamma: bool = True
    stop_if_linesearch_fails: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_int(self.history_size, "history_size", minimum=1)

    def init_state(self, init_params, *args, **kwargs) -> LbfgsState:
        """Evaluate ``fun`` at ``init_params`` and allocate the history.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`LbfgsState`.
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        m = self.history_size
        stack = lambda p: jax.tree_util.tree_map(
            lambda x: jnp.zeros((m,) + jnp.shape(x), jnp.result_type(x)), p
        )
        one = jnp.asarray(1, jnp.int32)
        return LbfgsState(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=grad,
            stepsize=jnp.asarray(1.0, dtype), error=tu.tree_l2_norm(grad).astype(dtype),
            s_history=stack(init_params), y_history=stack(init_params),
            rho_history=jnp.zeros((m,), dtype), gamma=jnp.asarray(1.0, dtype), aux=aux,
            failed_linesearch=jnp.asarray(False), num_fun_eval=one, num_grad_eval=one,
            num_linesearch_iter=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: LbfgsState, *args, **kwargs) -> OptStep:
        """One L-BFGS iteration.

        Args:
          params: current point.
          state: current :class:`LbfgsState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the iteration; a state whose status is
          neither ``RUNNING`` nor ``MAX_ITER`` comes back unchanged with no evaluation
          (a stopped lane costs nothing under ``vmap``).
        """
        vg = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)
        m = self.history_size
        dtype = state.rho_history.dtype
        ptr = state.iter_num % m
        hd = inverse_hessian_product(
            state.grad, state.s_history, state.y_history, state.rho_history,
            state.gamma if self.use_gamma else jnp.asarray(1.0, dtype), ptr)
        direction = tu.tree_negative(hd)
        slope = tu.tree_vdot(state.grad, direction)
        # Fall back to steepest descent if the quasi-Newton direction is not a descent one.
        descent = slope < 0
        direction = tu.tree_where(descent, direction, tu.tree_negative(state.grad))
        gnorm = state.error
        first = jnp.all(state.rho_history == 0) | ~descent
        init_t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.maximum(gnorm, 1e-30)), 1.0)

        stopped = _linesearch.stopped(state.status)
        ls = self._line_search(vg, params, state.value, state.grad, direction, init_t, state.aux,
                               done=stopped)

        s = tu.tree_sub(ls.params, params)
        y = tu.tree_sub(ls.grad, state.grad)
        sy = tu.tree_vdot(s, y).astype(dtype)
        yy = tu.tree_vdot(y, y).astype(dtype)
        # Keep the pair only with positive curvature (keeps H positive definite); a
        # skipped pair leaves an empty slot (rho = 0), so the ring order stays exact.
        good = (sy > jnp.finfo(dtype).eps * yy) & ~ls.failed
        # Writes by a one-hot mask rather than .at[ptr]: under vmap a traced
        # position would turn into a scatter.
        slot = jnp.arange(m) == ptr
        put = lambda hist, v: jax.tree_util.tree_map(
            lambda h, x: jnp.where(slot.reshape((m,) + (1,) * x.ndim),
                                   jnp.where(good, x, 0).astype(h.dtype)[None], h), hist, v
        )
        rho = jnp.where(slot, jnp.where(good, 1.0 / jnp.where(good, sy, 1.0), 0.0), state.rho_history)
        gamma = jnp.where(good, sy / jnp.where(good, yy, 1.0), state.gamma)
        new_state = LbfgsState(
            iter_num=state.iter_num + 1,
            value=jnp.asarray(ls.value, dtype), grad=ls.grad, stepsize=ls.stepsize,
            error=_linesearch.error_after(ls, dtype),
            s_history=put(state.s_history, s), y_history=put(state.y_history, y),
            rho_history=rho, gamma=gamma, aux=ls.aux, failed_linesearch=ls.failed,
            num_fun_eval=state.num_fun_eval + ls.num_evals,
            num_grad_eval=state.num_grad_eval + ls.num_evals,
            num_linesearch_iter=state.num_linesearch_iter + ls.num_evals,
            status=_linesearch.failure_status(ls),
        )
        if not self.stop_if_linesearch_fails:
            # A failure clears the memory and the next iteration restarts along -grad; it
            # ends the solve only when the gradient is NaN or the memory was already empty.
            final = ls.nonfinite | jnp.all(state.rho_history == 0)
            new_state = new_state._replace(
                rho_history=jnp.where(ls.failed, 0.0, new_state.rho_history),
                status=jnp.where(final, new_state.status, Status.RUNNING).astype(jnp.int32))
        return _linesearch.keep_if_stopped(stopped, params, state, ls.params, new_state)
