"""L-BFGS-B: limited-memory BFGS for bound constraints (generalized Cauchy point)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive, is_concrete
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls_lib
from jaxopt_lab.solvers.quasi_newton._helpers import curvature_pair, first_stepsize, is_complex
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonSolver, QuasiNewtonState, step_as_given

LbfgsbState = QuasiNewtonState  # L-BFGS-B's state (its name in earlier releases and in jaxopt)


class LbfgsbApprox(NamedTuple):
    """L-BFGS-B's compact memory.

    Attributes:
      s_history, y_history: ring buffers ``(history_size, n)`` of flat differences.
      sy_history, ss_history: ``(history_size, history_size)`` products ``<s_i, y_j>``,
        ``<s_i, s_j>``, updated one row and column per iteration.
      theta: the scaling ``B_0 = theta I``.
      num_pairs: curvature pairs stored since the last reset; the next one goes to slot
        ``num_pairs % history_size`` (a pair failing the curvature test takes no slot).
    """

    s_history: jax.Array
    y_history: jax.Array
    sy_history: jax.Array
    ss_history: jax.Array
    theta: jax.Array
    num_pairs: jax.Array


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


@dataclasses.dataclass(eq=False, kw_only=True)
class LBFGSB(QuasiNewtonSolver):
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
      ``run`` returns an ``OptStep(params, QuasiNewtonState)`` (``LbfgsbState``; its
      ``approx`` is an :class:`LbfgsbApprox`, ``error`` the norm (``error_norm``) of the
      projected gradient step ``x - P(x - g)`` and ``stepsize`` the step along ``x_bar - x``).

    References:
      Byrd, Lu, Nocedal and Zhu, "A limited memory algorithm for bound constrained
      optimization", SIAM J. Sci. Comput., 1995; Morales and Nocedal, "Remark on
      Algorithm 778: L-BFGS-B", ACM TOMS, 2011.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "stepsize", "linesearch",
        "linesearch_init", "stop_if_linesearch_fails", "condition", "maxls", "decrease_factor",
        "increase_factor", "max_stepsize", "min_stepsize", "theta", "history_size", "use_gamma",
        "implicit_diff", "implicit_diff_solve", "jit", "unroll", "verbose",
    )
    # jaxopt's named leading run arguments (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("bounds",)

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

    def _check_init_params(self, init_params) -> None:
        super()._check_init_params(init_params)
        if is_complex(init_params):
            raise TypeError("`init_params` is complex; LBFGSB's bounds need real params (split a complex "
                            "variable into its real and imaginary parts, or use LBFGS without bounds).")

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        if not args or not (args[0] is None or isinstance(args[0], tuple | list) and len(args[0]) == 2):
            raise TypeError("LBFGSB.run needs `bounds=(lower, upper)` (or None) after `init_params`.")
        lower, upper = (None, None) if args[0] is None else args[0]
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
        bounds = (None, None) if bounds is None else bounds  # jaxopt: bounds=None is unbounded

        def flat(b, fill):
            if b is None:
                return jnp.full_like(x, fill)
            b = jax.tree_util.tree_map(lambda a, p: jnp.broadcast_to(a, jnp.shape(p)),
                                       _match(b, params), params)
            return ravel_pytree(b)[0]

        return flat(bounds[0], -jnp.inf).astype(x.dtype), flat(bounds[1], jnp.inf).astype(x.dtype)

    def _problem(self, params, args, kwargs):
        bounds, args = args[0], args[1:]
        x, unravel = ravel_pytree(params)
        lo, up = self._flat_bounds(params, bounds)
        vg = self._value_and_grad_fun()
        flat_vg = lambda z: (lambda r: (r[0], ravel_pytree(r[1])[0]))(vg(unravel(z), *args, **kwargs))
        return jnp.clip(x, lo, up), flat_vg, (lo, up, unravel)

    def _init_status(self, ctx) -> jax.Array:
        # An empty box (lower > upper somewhere, e.g. traced bounds under vmap): INFEASIBLE
        # at once, so the loop never runs and init_params come back unchanged.
        lo, up, _ = ctx
        return jnp.where(jnp.any(lo > up), Status.INFEASIBLE, Status.RUNNING)

    def _feasible(self, x, ctx):
        return jnp.clip(x, ctx[0], ctx[1])

    def _into(self, tree, ctx):
        return ravel_pytree(tree)[0]

    def _out(self, x, ctx):
        return ctx[2](x)

    def _error(self, x, g, ctx):
        pg = x - jnp.clip(x - g, ctx[0], ctx[1])
        return jnp.max(jnp.abs(pg)) if self.error_norm == "inf" else jnp.linalg.norm(pg)

    def _init_approx(self, x, value, grad) -> LbfgsbApprox:
        m, n, dtype = self.history_size, x.shape[0], x.dtype
        return LbfgsbApprox(jnp.zeros((m, n), dtype), jnp.zeros((m, n), dtype), jnp.zeros((m, m), dtype),
                            jnp.zeros((m, m), dtype), jnp.asarray(1.0, dtype), jnp.asarray(0, jnp.int32))

    def _direction(self, x, g, state, ctx):
        lo, up, _ = ctx
        mem = state.approx
        theta = mem.theta
        W = jnp.concatenate([mem.y_history.T, theta * mem.s_history.T], axis=1)
        M = _middle_matrix(mem.sy_history, mem.ss_history, theta, mem.num_pairs % self.history_size)
        xcp = _cauchy_point(x, g, lo, up, W, M, theta)
        d = _subspace_min(x, g, lo, up, xcp, W, M, theta) - x
        # Safeguard: the projected gradient step if the model step is not a descent one.
        d = jnp.where(jnp.dot(d, g) < 0, d, jnp.clip(x - g, lo, up) - x)
        # Unit step first; with no memory and an unbounded variable, 1 / ||d|| (as SciPy).
        boxed = jnp.all(jnp.isfinite(lo) & jnp.isfinite(up))
        first = (mem.num_pairs == 0) & ~boxed
        return d, jnp.where(first, first_stepsize(jnp.linalg.norm(d), x.dtype), 1.0)

    def _update_approx(self, state, x, g, d, ls, x_new) -> LbfgsbApprox:
        mem, m = state.approx, self.history_size
        s, y, sy, yy, good = curvature_pair(x, x_new, g, ls.grad, ls.failed, x.dtype)
        slot = (jnp.arange(m) == mem.num_pairs % m) & good  # one-hot writes (no scatter under vmap)
        S = jnp.where(slot[:, None], s, mem.s_history)
        Y = jnp.where(slot[:, None], y, mem.y_history)
        col, row, ss = S @ y, Y @ s, S @ s  # the new row and column of S^T Y and S^T S (if good)
        SY = jnp.where(slot[:, None], row[None, :], jnp.where(slot[None, :], col[:, None], mem.sy_history))
        SS = jnp.where(slot[:, None], ss[None, :], jnp.where(slot[None, :], ss[:, None], mem.ss_history))
        theta = jnp.where(good, yy / jnp.where(good, sy, 1.0), mem.theta)
        return LbfgsbApprox(S, Y, SY, SS, theta, mem.num_pairs + good.astype(jnp.int32))

    def _can_restart(self, approx) -> jax.Array:
        # A failed search with memory clears it and retries (SciPy); without memory it is final.
        return jnp.asarray(not self.stop_if_linesearch_fails) & (approx.num_pairs > 0)

    def _adjust_status(self, state, new_state):
        if self.ftol is None:
            return new_state
        value = new_state.value
        rel = (state.value - value) / jnp.maximum(jnp.maximum(jnp.abs(state.value), jnp.abs(value)), 1.0)
        stalled = ~new_state.failed_linesearch & (rel <= self.ftol) & (new_state.error > self.tol)
        status = jnp.where(stalled, Status.STALLED, new_state.status)
        return new_state._replace(status=status.astype(jnp.int32))

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
        return self._init(init_params, (bounds,) + args, kwargs)

    @step_as_given
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
        return self._step(params, state, (bounds,) + args, kwargs)

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
        lower, upper = (None, None) if bounds is None else bounds
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
