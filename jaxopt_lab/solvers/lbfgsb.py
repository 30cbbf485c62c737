"""L-BFGS-B: limited-memory BFGS for bound constraints (generalized Cauchy point)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab import base
from jaxopt_lab import linear_solve as ls_lib
from jaxopt_lab import tree_util as tu
from jaxopt_lab.solvers import _linesearch


class LbfgsbState(NamedTuple):
    """State of :class:`LBFGSB`.

    Attributes:
      iter_num: iterations done.
      value, grad: objective and gradient at the current params.
      stepsize: last accepted step along ``x_bar - x``.
      error: norm of the projected gradient step ``x - P(x - g)``.
      s_history, y_history: ring buffers ``(history_size, n)`` of flat differences.
      theta: the scaling ``B_0 = theta I``.
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
    theta: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array


def _compact(S, Y, theta, ptr):
    """``W = [Y, theta S]`` and ``M`` with ``B = theta I - W M W^T`` (BLNZ eq. 3.2-3.4)."""
    m = S.shape[0]
    valid = jnp.any(S != 0, axis=1)
    age = (jnp.arange(m) - ptr) % m  # chronological order, oldest first
    SY = S @ Y.T
    L = jnp.where(age[:, None] > age[None, :], SY, 0) * valid[:, None] * valid[None, :]
    D = jnp.where(valid, jnp.diag(SY), -1.0)  # empty slots: harmless identity blocks
    SS = theta * (S @ S.T) + jnp.diag(jnp.where(valid, 0.0, 1.0))
    K = jnp.block([[-jnp.diag(D), L.T], [L, SS]])
    W = jnp.concatenate([Y.T, theta * S.T], axis=1)
    return W, jnp.linalg.inv(K)


def _cauchy_point(x, g, lower, upper, W, M, theta):
    """Generalized Cauchy point along the projected steepest descent path (BLNZ section 4)."""
    n = x.shape[0]
    big = jnp.inf
    tb = jnp.where(g < 0, (x - upper) / g, jnp.where(g > 0, (x - lower) / g, big))
    d = jnp.where(tb > 0, -g, 0.0)
    order = jnp.argsort(tb)
    p = W.T @ d
    c = jnp.zeros_like(p)
    fp = -jnp.dot(d, d)
    fpp = -theta * fp - p @ (M @ p)
    fpp0 = -theta * fp
    dt_min = -fp / jnp.maximum(fpp, 1e-30 * fpp0)
    xcp = x

    def cond(carry):
        i, t_old, _, _, _, _, _, _, dt_min, stop = carry
        return (i < n) & ~stop

    def body(carry):
        i, t_old, xcp, d, p, c, fp, fpp, dt_min, _ = carry
        b = order[i]
        tj = tb[b]
        dt = tj - t_old
        stop = (dt_min < dt) | ~jnp.isfinite(tj)
        # Past breakpoint b: variable b becomes fixed at its bound.
        zb = jnp.where(d[b] > 0, upper[b], lower[b]) - x[b]
        gb, wb = g[b], W[b]
        c_new = c + dt * p
        fp_new = fp + dt * fpp + gb * gb + theta * gb * zb - gb * (wb @ (M @ c_new))
        fpp_new = fpp - theta * gb * gb - 2.0 * gb * (wb @ (M @ p)) - gb * gb * (wb @ (M @ wb))
        fpp_new = jnp.maximum(fpp_new, jnp.finfo(x.dtype).eps * fpp0)
        p_new = p + gb * wb
        skip = tj <= 0  # variables fixed from the start were removed from d already
        upd = ~stop & ~skip
        sel = lambda new, old: jnp.where(upd, new, old)
        xcp = xcp.at[b].set(jnp.where(upd, x[b] + zb, xcp[b]))
        return (i + 1, sel(tj, t_old), xcp, d.at[b].set(sel(0.0, d[b])), sel(p_new, p), sel(c_new, c),
                sel(fp_new, fp), sel(fpp_new, fpp), sel(-fp_new / fpp_new, dt_min), stop)

    zero = jnp.zeros([], x.dtype)
    init = (jnp.asarray(0), zero, xcp, d, p, c, fp, fpp, dt_min, jnp.asarray(False))
    _, t_old, xcp, d, p, c, _, _, dt_min, _ = jax.lax.while_loop(cond, body, init)
    dt_min = jnp.maximum(dt_min, 0.0)
    t = t_old + dt_min
    xcp = jnp.where(d != 0, x + t * d, xcp)
    return jnp.clip(xcp, lower, upper), c + dt_min * p


def _subspace_min(x, g, lower, upper, xcp, c, W, M, theta):
    """Direct primal subspace minimization over the free variables (BLNZ section 5.1)."""
    free = (xcp > lower) & (xcp < upper)
    r = jnp.where(free, g + theta * (xcp - x) - W @ (M @ c), 0.0)
    Wf = W * free[:, None]
    v = M @ (Wf.T @ r)
    N = jnp.eye(M.shape[0], dtype=x.dtype) - (M @ (Wf.T @ Wf)) / theta
    v = jnp.linalg.solve(N, v)
    du = -(r / theta) - (Wf @ v) / theta**2
    du = jnp.where(free, du, 0.0)
    # Morales and Nocedal (2011): project the subspace step; keep the truncated
    # step of the 1995 paper if the projection is not a descent direction.
    xbar = jnp.clip(xcp + du, lower, upper)
    ratio = jnp.where(du > 0, (upper - xcp) / jnp.where(du > 0, du, 1.0),
                      jnp.where(du < 0, (lower - xcp) / jnp.where(du < 0, du, 1.0), jnp.inf))
    alpha = jnp.minimum(1.0, jnp.min(ratio))
    xtrunc = xcp + alpha * du
    return jnp.where(jnp.dot(g, xbar - x) < 0, xbar, xtrunc)


@dataclasses.dataclass(eq=False)
class LBFGSB(base.IterativeSolver):
    """L-BFGS-B for ``min f(x)`` subject to ``lower <= x <= upper``.

    Each iteration builds the compact L-BFGS model ``B = theta I - W M W^T``, finds
    the generalized Cauchy point (the first local minimizer of the model along the
    projected steepest-descent path, over the sorted breakpoints), minimizes the
    model over the variables still free there, projects that point onto the box
    and searches along the resulting feasible direction with a strong-Wolfe line
    search capped at the box (``t <= 1``). ``run(init_params, bounds, *args)`` with
    ``bounds = (lower, upper)`` pytrees matching the params (``+-inf`` allowed).

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter, tol: iteration cap; stop when ``||x - P(x - g)|| <= tol``.
      history_size: number of stored pairs (static).
      maxls: line-search evaluations per iteration.
      c1, c2: Wolfe constants (SciPy uses ``1e-3`` and ``0.9``).
      stepsize, linesearch, linesearch_init, stop_if_linesearch_fails, condition,
        decrease_factor, increase_factor, max_stepsize, min_stepsize, theta, use_gamma:
        accepted for jaxopt compatibility.
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
    stepsize: float = 0.0
    linesearch: str = "zoom"
    linesearch_init: str = "increase"
    stop_if_linesearch_fails: bool = False
    condition: str | None = None
    maxls: int = 20
    c1: float = 1e-3
    c2: float = 0.9
    decrease_factor: float | None = None
    increase_factor: float = 1.5
    max_stepsize: float = 1.0
    min_stepsize: float = 1e-6
    theta: float = 1.0
    history_size: int = 10
    use_gamma: bool = True

    def __post_init__(self):
        super().__post_init__()
        base.check_int(self.history_size, "history_size", minimum=1)
        base.check_int(self.maxls, "maxls", minimum=1)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        if not args or not isinstance(args[0], tuple | list) or len(args[0]) != 2:
            raise TypeError("LBFGSB.run needs `bounds=(lower, upper)` after `init_params`.")
        lower, upper = args[0]
        leaves = jax.tree_util.tree_leaves((lower, upper))
        if lower is not None and upper is not None and all(base.is_concrete(v) for v in leaves):
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
        lower, upper = bounds
        def flat(b, fill):
            if b is None:
                return jnp.full_like(x, fill)
            b = jax.tree_util.tree_map(lambda a, p: jnp.broadcast_to(a, jnp.shape(p)),
                                       _match(b, params), params)
            return ravel_pytree(b)[0]

        return flat(lower, -jnp.inf).astype(x.dtype), flat(upper, jnp.inf).astype(x.dtype)

    def _error(self, x, g, lo, up):
        return jnp.linalg.norm(x - jnp.clip(x - g, lo, up))

    def init_state(self, init_params, bounds, *args, **kwargs) -> LbfgsbState:
        """Evaluate ``fun`` at the projection of ``init_params`` and allocate the history.

        Args:
          init_params: initial point.
          bounds: ``(lower, upper)``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`LbfgsbState`.
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        x, _ = ravel_pytree(init_params)
        g = ravel_pytree(grad)[0]
        lo, up = self._flat_bounds(init_params, bounds)
        dtype = x.dtype
        z = jnp.zeros((self.history_size, x.shape[0]), dtype)
        one = jnp.asarray(1, jnp.int32)
        return LbfgsbState(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=grad, stepsize=jnp.asarray(1.0, dtype),
            error=self._error(x, g, lo, up), s_history=z, y_history=z, theta=jnp.asarray(1.0, dtype),
            aux=aux, failed_linesearch=jnp.asarray(False), num_fun_eval=one, num_grad_eval=one,
            num_linesearch_iter=jnp.asarray(0, jnp.int32), status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: LbfgsbState, bounds, *args, **kwargs) -> base.OptStep:
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
        x = jnp.clip(x, lo, up)
        ptr = state.iter_num % self.history_size
        W, M = _compact(state.s_history, state.y_history, state.theta, ptr)
        xcp, c = _cauchy_point(x, g, lo, up, W, M, state.theta)
        xbar = _subspace_min(x, g, lo, up, xcp, c, W, M, state.theta)
        d = xbar - x
        descent = jnp.dot(d, g) < 0
        # Safeguard: fall back to the projected gradient step if the model step is not a descent one.
        d = jnp.where(descent, d, jnp.clip(x - g, lo, up) - x)
        first = jnp.all(state.s_history == 0)
        dnorm = jnp.linalg.norm(d)
        init_t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.maximum(dnorm, 1e-30)), 1.0)
        vg = lambda z: (lambda r: (r[0], ravel_pytree(r[1])[0]))(
            self._value_and_grad_fun()(unravel(z), *args, **kwargs))
        ls = _linesearch.strong_wolfe(vg, x, state.value, g, d, init_t, state.aux, c1=self.c1, c2=self.c2,
                                      maxls=self.maxls, max_stepsize=1.0)
        x_new = jnp.clip(ls.params, lo, up)
        s, y = x_new - x, ls.grad - g
        sy, yy = jnp.dot(s, y), jnp.dot(y, y)
        good = (sy > jnp.finfo(x.dtype).eps * yy) & ~ls.failed
        S = state.s_history.at[ptr].set(jnp.where(good, s, 0.0))
        Y = state.y_history.at[ptr].set(jnp.where(good, y, 0.0))
        theta = jnp.where(good, yy / jnp.where(good, sy, 1.0), state.theta)
        dtype = jnp.result_type(state.value)
        new_state = LbfgsbState(
            iter_num=state.iter_num + 1, value=jnp.asarray(ls.value, dtype), grad=unravel(ls.grad),
            stepsize=ls.stepsize, error=self._error(x_new, ls.grad, lo, up).astype(dtype),
            s_history=S, y_history=Y, theta=theta, aux=ls.aux, failed_linesearch=ls.failed,
            num_fun_eval=state.num_fun_eval + ls.num_evals, num_grad_eval=state.num_grad_eval + ls.num_evals,
            num_linesearch_iter=state.num_linesearch_iter + ls.num_evals,
            status=jnp.where(ls.failed, base.Status.LINESEARCH_FAILED, base.Status.RUNNING).astype(jnp.int32),
        )
        return base.OptStep(unravel(x_new), new_state)

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
