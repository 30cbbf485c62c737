"""L-BFGS-B: limited-memory BFGS for bound constraints (generalized Cauchy point)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive, is_concrete
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls_lib
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class LbfgsbState(NamedTuple):
    """State of :class:`LBFGSB`.

    Attributes:
      iter_num: iterations done.
      value, grad: objective and gradient at the current params.
      stepsize: last accepted step along ``x_bar - x``.
      error: norm (``error_norm``) of the projected gradient step ``x - P(x - g)``.
      s_history, y_history: ring buffers ``(history_size, n)`` of flat differences.
      sy_history, ss_history: ``(history_size, history_size)`` products ``<s_i, y_j>``,
        ``<s_i, s_j>``, updated one row and column per iteration.
      theta: the scaling ``B_0 = theta I``.
      num_pairs: curvature pairs stored since the last reset; the next one goes to slot
        ``num_pairs % history_size`` (a pair failing the curvature test takes no slot).
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval, num_linesearch_iter: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    error: jax.Array
    s_history: jax.Array
    y_history: jax.Array
    sy_history: jax.Array
    ss_history: jax.Array
    theta: jax.Array
    num_pairs: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array


def _middle_matrix(SY, SS, theta, ptr):
    """``M`` with ``B = theta I - W M W^T``, ``W = [Y, theta S]`` (BLNZ eq. 3.2-3.4); ``O(m^3)``."""
    m = SY.shape[0]
    valid = jnp.diagonal(SY) > 0  # stored pairs have <s, y> > 0; empty slots are zero
    age = (jnp.arange(m) - ptr) % m  # chronological order, oldest first
    L = jnp.where((age[:, None] > age[None, :]) & valid[:, None] & valid[None, :], SY, 0)
    D = jnp.where(valid, jnp.diagonal(SY), -1.0)  # empty slots: decoupled identity blocks
    K = jnp.block([[-jnp.diag(D), L.T], [L, theta * SS + jnp.diag(jnp.where(valid, 0.0, 1.0))]])
    return jnp.linalg.inv(K)


def _cauchy_point(x, g, lo, up, W, M, theta):
    """Generalized Cauchy point: first minimizer of the model along ``P(x - t g)`` (BLNZ section 4).

    All segments between sorted breakpoints are evaluated at once: with ``F_k`` the
    variables still free on segment ``k``, the model slope and curvature there are
    ``f'_k = -(1 - theta T_k) |g_F|^2 - p_k^T M c_k`` and ``f''_k = theta |g_F|^2 - p_k^T M p_k``
    with ``p_k = -W_F^T g_F`` and ``c_k = W^T (x(T_k) - x)``, which are suffix and prefix
    sums over the sorted order. ``O(n log n + n m^2)``, no sequential loop.
    """
    tb = jnp.where(g < 0, (x - up) / g, jnp.where(g > 0, (x - lo) / g, jnp.inf))
    order = jnp.argsort(tb)
    ts, gs, Ws = tb[order], g[order], W[order]
    fin = jnp.isfinite(ts)
    zb = jnp.where(fin, jnp.where(gs < 0, up[order], lo[order]) - x[order], 0.0)  # step to the bound
    zero = jnp.zeros((1,) + Ws.shape[1:], W.dtype)
    suffix = lambda a: jnp.concatenate([jnp.cumsum(a[::-1], axis=0)[::-1], zero[:, : a.shape[1]]])
    G = suffix((gs * gs)[:, None])[:, 0]  # |g_F|^2 on segments 0..n
    p = -suffix(gs[:, None] * Ws)
    T = jnp.concatenate([jnp.zeros((1,), x.dtype), ts])  # segment starts
    dT = jnp.concatenate([ts, jnp.full((1,), jnp.inf, x.dtype)]) - T
    c = jnp.concatenate([zero, jnp.cumsum(zb[:, None] * Ws, axis=0)]) + jnp.where(
        jnp.isfinite(T), T, 0.0)[:, None] * p
    Mp = p @ M
    fp = -(1.0 - theta * T) * G - jnp.sum(Mp * c, axis=1)
    fpp = jnp.maximum(theta * G - jnp.sum(Mp * p, axis=1), jnp.finfo(x.dtype).eps * theta * G)
    dt = jnp.where(fpp > 0, -fp / jnp.where(fpp > 0, fpp, 1.0), 0.0)
    stop = jnp.isfinite(T) & ((fp >= 0) | (dt < dT))
    k = jnp.argmax(stop)
    t = T[k] + jnp.where(fp[k] >= 0, 0.0, jnp.maximum(dt[k], 0.0))
    return jnp.clip(x - t * g, lo, up)


def _subspace_min(x, g, lo, up, xcp, W, M, theta):
    """Direct primal minimization of the model over the free variables (BLNZ section 5.1)."""
    c = W.T @ (xcp - x)
    free = (xcp > lo) & (xcp < up)
    Wf = jnp.where(free[:, None], W, 0.0)
    r = jnp.where(free, g + theta * (xcp - x) - W @ (M @ c), 0.0)
    N = jnp.eye(M.shape[0], dtype=x.dtype) - (M @ (Wf.T @ Wf)) / theta
    v = jnp.linalg.solve(N, M @ (Wf.T @ r))
    du = jnp.where(free, -(r + (Wf @ v) / theta) / theta, 0.0)
    # Morales and Nocedal (2011): project the subspace step; keep the 1995 truncated step
    # if the projected point does not give a descent direction.
    xbar = jnp.clip(xcp + du, lo, up)
    room = jnp.where(du > 0, up - xcp, jnp.where(du < 0, lo - xcp, jnp.inf))
    alpha = jnp.minimum(1.0, jnp.min(jnp.where(du != 0, room / jnp.where(du != 0, du, 1.0), jnp.inf)))
    return jnp.where(jnp.dot(g, xbar - x) < 0, xbar, xcp + alpha * du)


@dataclasses.dataclass(eq=False)
class LBFGSB(_linesearch.LineSearchOptions, IterativeSolver):
    """L-BFGS-B for ``min f(x)`` subject to ``lower <= x <= upper``.

    Each iteration uses the compact L-BFGS model ``B = theta I - W M W^T`` (``W`` is
    ``n x 2m``, ``M`` is ``2m x 2m``; no ``n x n`` matrix), finds the generalized Cauchy
    point (the first local minimizer of the model along the projected steepest-descent
    path), minimizes the model over the variables still free there, projects onto the
    box and searches along the feasible direction, unit step first, with a strong-Wolfe
    search capped at ``max_stepsize`` (SciPy's constants ``c1=1e-3``, ``c2=0.9``). A
    failed search clears the memory and retries along the projected gradient, as SciPy
    does; it stops with ``LINESEARCH_FAILED`` only when that fails too (or at once with
    ``stop_if_linesearch_fails``). ``run(init_params, bounds, *args)`` with
    ``bounds = (lower, upper)`` pytrees matching the params (or scalars; ``None`` or
    ``+-inf`` for no bound); ``bounds=`` may be given as a keyword. An empty box
    (``lower > upper`` somewhere) raises ``ValueError`` when the bounds are concrete and
    ends the solve at once with ``Status.INFEASIBLE`` when they are traced (per lane under
    ``vmap``).

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter: iteration cap.
      tol: ``CONVERGED`` when ``||x - P(x - g)|| <= tol`` (the only way to converge).
      error_norm: ``"l2"`` (default) or ``"inf"`` (SciPy's ``pgtol`` test) for that norm.
      ftol: if set, stop with ``STALLED`` (never ``CONVERGED``) when
        ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`` (SciPy's ``factr * eps``).
      history_size: number of stored pairs (static).
      stop_if_linesearch_fails: stop at the first failed line search.
      stepsize, linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize: line-search options
        (:class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions`).
      theta, use_gamma: accepted for jaxopt compatibility (``theta`` is always
        ``<y, y> / <s, y>`` of the last pair, as in SciPy).
      implicit_diff_solve: default normal-equation CG (the optimality map
        ``x - P(x - g)`` has a non-symmetric Jacobian at active bounds).

    Returns:
      ``run`` returns an ``OptStep(params, LbfgsbState)``.

    References:
      Byrd, Lu, Nocedal and Zhu, "A limited memory algorithm for bound constrained
      optimization", SIAM J. Sci. Comput., 1995; Morales and Nocedal, "Remark on
      Algorithm 778: L-BFGS-B", ACM TOMS, 2011.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 50
    tol: float = 1e-3
    error_norm: str = "l2"
    ftol: float | None = None
    stop_if_linesearch_fails: bool = False
    maxls: int = 20
    c1: float = 1e-3
    decrease_factor: float | None = None
    max_stepsize: float = 1.0
    theta: float = 1.0
    history_size: int = 10
    use_gamma: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_int(self.history_size, "history_size", minimum=1)
        if self.error_norm not in ("l2", "inf"):
            raise ValueError(f"`error_norm` must be 'l2' or 'inf', got {self.error_norm!r}.")
        check_positive(self.ftol, "ftol", allow_zero=True)

    def run(self, init_params, *args, **kwargs) -> OptStep:
        """``run(init_params, bounds, *args, **kwargs)``; ``bounds`` may also be a keyword."""
        if "bounds" in kwargs:
            args = (kwargs.pop("bounds"),) + args
        return super().run(init_params, *args, **kwargs)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        if not args or not isinstance(args[0], tuple | list) or len(args[0]) != 2:
            raise TypeError("LBFGSB.run needs `bounds=(lower, upper)` after `init_params`.")
        lower, upper = args[0]
        leaves = jax.tree_util.tree_leaves((lower, upper))
        if lower is not None and upper is not None and all(is_concrete(v) for v in leaves):
            lo = np.concatenate([np.ravel(np.asarray(v)) for v in jax.tree_util.tree_leaves(lower)])
            up = np.concatenate([np.ravel(np.asarray(v)) for v in jax.tree_util.tree_leaves(upper)])
            n = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(init_params))
            if lo.shape[0] not in (1, n) or up.shape[0] not in (1, n):
                raise ValueError(f"`bounds` must match the params ({n} entries), got {lo.shape[0]} and "
                                 f"{up.shape[0]}.")
            if np.any(lo > up):
                raise ValueError("`bounds`: lower > upper somewhere (empty box).")

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve if self.implicit_diff_solve is not None else ls_lib.solve_normal_cg

    def _flat_bounds(self, params, bounds):
        x, _ = ravel_pytree(params)

        def flat(b, fill):
            if b is None:
                return jnp.full_like(x, fill)
            b = jax.tree_util.tree_map(lambda a, p: jnp.broadcast_to(a, jnp.shape(p)),
                                       _match(b, params), params)
            return ravel_pytree(b)[0]

        return flat(bounds[0], -jnp.inf).astype(x.dtype), flat(bounds[1], jnp.inf).astype(x.dtype)

    def _error(self, x, g, lo, up):
        pg = x - jnp.clip(x - g, lo, up)
        return jnp.max(jnp.abs(pg)) if self.error_norm == "inf" else jnp.linalg.norm(pg)

    def _flat_vg(self, unravel, args, kwargs):
        vg = self._value_and_grad_fun()
        return lambda z: (lambda r: (r[0], ravel_pytree(r[1])[0]))(vg(unravel(z), *args, **kwargs))

    def init_state(self, init_params, bounds, *args, **kwargs) -> LbfgsbState:
        """Evaluate ``fun`` at the projection of ``init_params`` onto the box; empty memory.

        The status is ``INFEASIBLE`` from the start when the box is empty.

        Args:
          init_params: initial point.
          bounds: ``(lower, upper)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`LbfgsbState`.
        """
        x, unravel = ravel_pytree(init_params)
        lo, up = self._flat_bounds(init_params, bounds)
        x = jnp.clip(x, lo, up)
        (value, aux), g = self._flat_vg(unravel, args, kwargs)(x)
        dtype, m = x.dtype, self.history_size
        one = jnp.asarray(1, jnp.int32)
        # An empty box (lower > upper somewhere, e.g. traced bounds under vmap): INFEASIBLE
        # at once, so the loop never runs and init_params come back unchanged.
        status = jnp.where(jnp.any(lo > up), Status.INFEASIBLE, Status.RUNNING)
        return LbfgsbState(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=unravel(g),
            stepsize=jnp.asarray(1.0, dtype),
            error=self._error(x, g, lo, up).astype(dtype), s_history=jnp.zeros((m, x.shape[0]), dtype),
            y_history=jnp.zeros((m, x.shape[0]), dtype), sy_history=jnp.zeros((m, m), dtype),
            ss_history=jnp.zeros((m, m), dtype), theta=jnp.asarray(1.0, dtype),
            num_pairs=jnp.asarray(0, jnp.int32), aux=aux,
            failed_linesearch=jnp.asarray(False), num_fun_eval=one, num_grad_eval=one,
            num_linesearch_iter=jnp.asarray(0, jnp.int32), status=status.astype(jnp.int32),
        )

    def update(self, params, state: LbfgsbState, bounds, *args, **kwargs) -> OptStep:
        """One L-BFGS-B iteration (Cauchy point, subspace step, line search).

        Args:
          params: current point (inside the box).
          state: current :class:`LbfgsbState`.
          bounds: ``(lower, upper)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        x, unravel = ravel_pytree(params)
        g = ravel_pytree(state.grad)[0]
        lo, up = self._flat_bounds(params, bounds)
        x, dtype, m = jnp.clip(x, lo, up), x.dtype, self.history_size
        theta, ptr = state.theta, state.num_pairs % m
        W = jnp.concatenate([state.y_history.T, theta * state.s_history.T], axis=1)
        M = _middle_matrix(state.sy_history, state.ss_history, theta, ptr)
        xcp = _cauchy_point(x, g, lo, up, W, M, theta)
        d = _subspace_min(x, g, lo, up, xcp, W, M, theta) - x
        # Safeguard: the projected gradient step if the model step is not a descent one.
        d = jnp.where(jnp.dot(d, g) < 0, d, jnp.clip(x - g, lo, up) - x)
        empty = state.num_pairs == 0
        # Unit step first; with no memory and an unbounded variable, 1 / ||d|| (as SciPy).
        boxed = jnp.all(jnp.isfinite(lo) & jnp.isfinite(up))
        inv_dnorm = 1.0 / jnp.maximum(jnp.linalg.norm(d), 1e-30)
        init_t = jnp.where(empty & ~boxed, jnp.minimum(1.0, inv_dnorm), 1.0)
        stopped = _linesearch.stopped(state.status)
        ls = self._line_search(self._flat_vg(unravel, args, kwargs), x, state.value, g, d, init_t, state.aux,
                               done=stopped)
        failed = ls.failed
        x_new = jnp.where(failed, x, jnp.clip(ls.params, lo, up))
        g_new = jnp.where(failed, g, ls.grad)
        value = jnp.where(failed, state.value, jnp.asarray(ls.value, jnp.result_type(state.value)))
        s, y = x_new - x, g_new - g
        sy, yy = jnp.dot(s, y), jnp.dot(y, y)
        good = (sy > jnp.finfo(dtype).eps * yy) & ~failed
        slot = (jnp.arange(m) == ptr) & good  # one-hot writes (no scatter under vmap)
        S = jnp.where(slot[:, None], s, state.s_history)
        Y = jnp.where(slot[:, None], y, state.y_history)
        col, row, ss = S @ y, Y @ s, S @ s  # the new row and column of S^T Y and S^T S (if good)
        SY = jnp.where(slot[:, None], row[None, :], jnp.where(slot[None, :], col[:, None], state.sy_history))
        SS = jnp.where(slot[:, None], ss[None, :], jnp.where(slot[None, :], ss[:, None], state.ss_history))
        theta = jnp.where(good, yy / jnp.where(good, sy, 1.0), theta)
        # A failed search with memory clears it and retries (SciPy); without memory it is final.
        reset = failed & ~empty & (not self.stop_if_linesearch_fails)
        clear = lambda a: jnp.where(reset, jnp.zeros_like(a), a)
        error = self._error(x_new, g_new, lo, up).astype(dtype)
        error = jnp.where(failed & ls.nonfinite, jnp.nan, error)
        status = jnp.where(failed & (~reset | ls.nonfinite), _linesearch.failure_status(ls),
                           Status.RUNNING)
        if self.ftol is not None:
            rel = (state.value - value) / jnp.maximum(jnp.maximum(jnp.abs(state.value), jnp.abs(value)), 1.0)
            stalled = ~failed & (rel <= self.ftol) & (error > self.tol)
            status = jnp.where(stalled, Status.STALLED, status)
        new_state = LbfgsbState(
            iter_num=state.iter_num + 1, value=value, grad=unravel(g_new), stepsize=ls.stepsize.astype(dtype),
            error=error, s_history=clear(S), y_history=clear(Y), sy_history=clear(SY), ss_history=clear(SS),
            theta=jnp.where(reset, jnp.ones_like(theta), theta),
            num_pairs=jnp.where(reset, 0, state.num_pairs + good.astype(jnp.int32)),
            aux=tu.tree_where(failed, state.aux, ls.aux) if state.aux is not None else ls.aux,
            failed_linesearch=failed, num_fun_eval=state.num_fun_eval + ls.num_evals,
            num_grad_eval=state.num_grad_eval + ls.num_evals,
            num_linesearch_iter=state.num_linesearch_iter + ls.num_evals, status=status.astype(jnp.int32),
        )
        return _linesearch.keep_if_stopped(stopped, params, state, unravel(x_new), new_state)

    def optimality_fun(self, params, bounds, *args, **kwargs):
        """Projected-gradient residual ``x - P(x - grad f(x))``, zero exactly at KKT points.

        Args:
          params: a point.
          bounds: ``(lower, upper)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A pytree shaped like ``params``.
        """
        grad = self._value_and_grad_fun()(params, *args, **kwargs)[1]
        lower, upper = bounds
        lower = jax.tree_util.tree_map(lambda p: -jnp.inf, params) if lower is None else lower
        upper = jax.tree_util.tree_map(lambda p: jnp.inf, params) if upper is None else upper
        step = tu.tree_sub(params, grad)
        proj = jax.tree_util.tree_map(lambda a, lo, up: jnp.clip(a, lo, up), step,
                                      _match(lower, params), _match(upper, params))
        return tu.tree_sub(params, proj)


def _match(b, params):
    if jax.tree_util.tree_structure(b) == jax.tree_util.tree_structure(params):
        return b
    return jax.tree_util.tree_map(lambda _: b, params)
