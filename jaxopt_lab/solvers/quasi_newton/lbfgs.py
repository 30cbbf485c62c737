"""L-BFGS with a strong-Wolfe or backtracking line search, designed for ``vmap``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int
from jaxopt_lab.solvers.quasi_newton._helpers import curvature_pair, first_stepsize
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonSolver, QuasiNewtonState

LbfgsState = QuasiNewtonState  # L-BFGS's state (its name in earlier releases and in jaxopt)


class LbfgsApprox(NamedTuple):
    """L-BFGS's memory.

    Attributes:
      s_history, y_history: the last ``history_size`` parameter and gradient
        differences (leading axis ``history_size``), oldest first, newest last.
      rho_history: ``1 / <s, y>`` for each stored pair (0 for empty slots).
      gamma: initial inverse-Hessian scaling ``<s, y> / <y, y>``.
    """

    s_history: Any
    y_history: Any
    rho_history: jax.Array
    gamma: jax.Array


# Memories up to this size unroll the two-loop recursion (fastest, no loop overhead); larger
# ones run it as two fori_loops, so that tracing and compile time do not grow with m.
_UNROLL_MAX = 16
# On CPU, memories of at most this many bytes per buffer (``m`` times the params) run the
# rolled loops instead (see :func:`inverse_hessian_product`).
_ROLLED_CPU_BYTES = 2048


def _leaf_dot(a, b):
    """``<a, b>`` of two arrays as a multiply and a sum (under ``vmap`` a fused reduction,
    where ``jnp.vdot`` would be a batched matrix product of 1 x n by n x 1 blocks)."""
    return jnp.sum(a * b)


def _pair_dot(hist, i, tree, dtype):
    """``<hist_i, tree>`` summed over the leaves, in ``dtype`` (``hist`` itself if ``i`` is None)."""
    parts = [_leaf_dot(h if i is None else h[i], x).astype(dtype) for h, x in
             zip(jax.tree_util.tree_leaves(hist), jax.tree_util.tree_leaves(tree), strict=True)]
    return sum(parts[1:], parts[0])


def _axpy(tree, coef, hist, i):
    """``tree + coef * hist_i`` leaf by leaf, dtype of ``tree`` kept (``hist`` itself if ``i`` is None)."""
    return jax.tree_util.tree_map(
        lambda x, h: (x + coef.astype(x.dtype) * (h if i is None else h[i])).astype(x.dtype), tree, hist)


def inverse_hessian_product(grad, s_hist, y_hist, rho_hist, gamma, ptr=0):
    """``H g`` for the L-BFGS inverse-Hessian approximation, by the two-loop recursion.

    The recursion runs over the ``m`` stored pairs in chronological order with the slot
    order known when tracing (``ptr`` a Python or NumPy int; the solver keeps its memory in
    chronological order, ``ptr = 0``), so it unrolls into ``2 m`` inner products and
    vector updates on static slices: no triangular solves, no ``m x m`` Gram matrices and
    no indexing by a traced position, which under ``vmap`` would become per-lane solves
    or gathers. A traced ``ptr`` rotates the buffers first. Memories larger than 16 pairs
    run the same recursion as two ``fori_loop``s (compile time independent of ``m``), and so
    do small memories on CPU (at most 2 kB per buffer, e.g. ``m = 10`` pairs of up to 50
    float32 or 25 float64 params, per lane under ``vmap``): XLA:CPU compiles such a loop
    into one kernel, 2-3x faster than the ``4 m`` operations of the unrolled recursion.
    Empty or skipped slots (``rho = 0``, zero pairs) are exact no-ops.

    Args:
      grad: the vector ``g`` (a pytree).
      s_hist, y_hist: buffers of pairs (leading axis ``m``; pytrees like ``grad``).
      rho_hist: ``1 / <s_i, y_i>`` (0 for empty slots).
      gamma: initial scaling ``H_0 = gamma I``.
      ptr: position of the oldest pair (a ring buffer's next write position); 0 when
        the buffers are in chronological order (oldest first).

    Returns:
      ``H g``, a pytree like ``grad``.

    References:
      Nocedal, "Updating quasi-Newton matrices with limited storage", Math. Comp., 1980;
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, Algorithm 7.4.
    """
    m = rho_hist.shape[0]
    dtype = rho_hist.dtype
    if not isinstance(ptr, int | np.integer):
        (s_hist, y_hist, rho_hist), ptr = _chronological(s_hist, y_hist, rho_hist, ptr), 0
    rolled = lambda g, s, y, r, c: _two_loop_rolled(g, *_chronological(s, y, r, ptr), c, dtype)
    if m > _UNROLL_MAX:
        return rolled(grad, s_hist, y_hist, rho_hist, gamma)
    unrolled = lambda *a: _two_loop_unrolled(*a, [(ptr + k) % m for k in range(m)], dtype)
    if _nbytes(s_hist) > _ROLLED_CPU_BYTES:
        return unrolled(grad, s_hist, y_hist, rho_hist, gamma)
    # A small memory on CPU: the rolled loops, which XLA:CPU compiles into one kernel each
    # (a while loop touching about 1 kB per pass), where the unrolled recursion is 4 m
    # separately dispatched operations: 2-3x faster at d <= 30 (float32), also under vmap.
    # Elsewhere (GPU) the unrolled recursion, which fuses and needs no loop predicate.
    return jax.lax.platform_dependent(grad, s_hist, y_hist, rho_hist, gamma, cpu=rolled,
                                      default=unrolled)


def _nbytes(tree) -> int:
    """Bytes of the arrays of a pytree (per ``vmap`` lane when traced under ``vmap``)."""
    return sum(int(np.prod(jnp.shape(a))) * jnp.result_type(a).itemsize
               for a in jax.tree_util.tree_leaves(tree))


def _chronological(s_hist, y_hist, rho_hist, ptr):
    """The buffers rotated so that the oldest pair (at ``ptr``) comes first (as they are if ``ptr`` is 0)."""
    if isinstance(ptr, int | np.integer) and ptr % rho_hist.shape[0] == 0:
        return s_hist, y_hist, rho_hist
    roll = lambda h: jnp.roll(h, -ptr, axis=0)
    return jax.tree_util.tree_map(roll, s_hist), jax.tree_util.tree_map(roll, y_hist), roll(rho_hist)


def _two_loop_unrolled(grad, s_hist, y_hist, rho_hist, gamma, order, dtype):
    """The two-loop recursion unrolled over the slots in ``order`` (oldest first)."""
    q, alpha = grad, {}
    for i in reversed(order):  # newest first
        alpha[i] = rho_hist[i] * _pair_dot(s_hist, i, q, dtype)
        q = _axpy(q, -alpha[i], y_hist, i)
    r = jax.tree_util.tree_map(lambda x: (gamma * x).astype(x.dtype), q)
    for i in order:  # oldest first
        beta = rho_hist[i] * _pair_dot(y_hist, i, r, dtype)
        r = _axpy(r, alpha[i] - beta, s_hist, i)
    return r


def _two_loop_rolled(grad, s_hist, y_hist, rho_hist, gamma, dtype):
    """The two-loop recursion over chronological buffers as two ``fori_loop``s."""
    m = rho_hist.shape[0]
    pick = lambda hist, i: jax.tree_util.tree_map(
        lambda h: jax.lax.dynamic_index_in_dim(h, i, keepdims=False), hist)

    def newest_first(k, carry):
        q, alpha = carry
        i = m - 1 - k
        a = rho_hist[i] * _pair_dot(pick(s_hist, i), None, q, dtype)
        return _axpy(q, -a, pick(y_hist, i), None), alpha.at[i].set(a)

    q, alpha = jax.lax.fori_loop(0, m, newest_first, (grad, jnp.zeros((m,), dtype)))

    def oldest_first(i, r):
        beta = rho_hist[i] * _pair_dot(pick(y_hist, i), None, r, dtype)
        return _axpy(r, alpha[i] - beta, pick(s_hist, i), None)

    r = jax.tree_util.tree_map(lambda x: (gamma * x).astype(x.dtype), q)
    return jax.lax.fori_loop(0, m, oldest_first, r)


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
        hd = inverse_hessian_product(grad, mem.s_history, mem.y_history, mem.rho_history, gamma)
        direction = tu.tree_negative(hd)
        # Fall back to steepest descent if the quasi-Newton direction is not a descent one.
        descent = tu.tree_vdot(grad, direction) < 0
        direction = tu.tree_where(descent, direction, tu.tree_negative(grad))
        first = jnp.all(mem.rho_history == 0) | ~descent
        return direction, jnp.where(first, first_stepsize(state.error, dtype), 1.0)

    def _update_approx(self, state, x, grad, direction, ls, x_new) -> LbfgsApprox:
        mem = state.approx
        dtype = mem.rho_history.dtype
        s, y, sy, yy, good = curvature_pair(x, x_new, grad, ls.grad, ls.failed, dtype)
        # The buffers stay in chronological order (newest last): every step shifts them by
        # one slot and writes the new pair at the end, one concatenation per leaf, so the
        # direction needs no ring position. A skipped pair enters as an empty slot (rho = 0,
        # zero vectors), as in a ring buffer.
        put = lambda hist, v: jax.tree_util.tree_map(
            lambda h, a: jnp.concatenate([h[1:], jnp.where(good, a, 0).astype(h.dtype)[None]]), hist, v)
        rho = jnp.concatenate([mem.rho_history[1:],
                               jnp.where(good, 1.0 / jnp.where(good, sy, 1.0), 0.0)[None].astype(dtype)])
        gamma = jnp.where(good, sy / jnp.where(good, yy, 1.0), mem.gamma)
        return LbfgsApprox(put(mem.s_history, s), put(mem.y_history, y), rho, gamma)

    def _can_restart(self, approx) -> jax.Array:
        # With stop_if_linesearch_fails=False a failure clears the memory and the next
        # iteration restarts along -grad; with an empty memory it ends the solve.
        return jnp.asarray(not self.stop_if_linesearch_fails) & jnp.any(approx.rho_history != 0)
