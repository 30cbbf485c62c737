"""Coordinate descent for box-constrained quadratic programs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import is_concrete
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls


class BoxCDQPState(NamedTuple):
    """State of :class:`BoxCDQP`.

    Attributes:
      iter_num: sweeps done.
      error: ``||x - clip(x - (Q x + c), l, u)||``, zero exactly at the solution.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array


def _box_residual(x, Q, c, l, u):
    return x - jnp.clip(x - (Q @ x + c), l, u)


@dataclasses.dataclass(eq=False)
class BoxCDQP(IterativeSolver):
    """``min 0.5 x^T Q x + c^T x`` subject to ``l <= x <= u`` by cyclic coordinate descent.

    Each sweep minimizes exactly over each coordinate in turn,
    ``x_i <- clip(x_i - (Q x + c)_i / Q_ii, l_i, u_i)``, keeping the gradient
    ``Q x + c`` up to date with one column of ``Q`` per coordinate. Converges
    linearly for positive definite ``Q`` (Luo and Tseng). Typical use: SVM duals.

    Args:
      maxiter: maximum sweeps.
      tol: stop when the projected-gradient residual is ``<= tol``.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default:
        :func:`jaxopt_lab.linalg.linear_solve.solve_normal_cg`; derivatives flow to ``Q, c, l, u``).

    Returns:
      ``run(init_params, params_obj=(Q, c), params_ineq=(l, u))`` returns
      ``OptStep(x, BoxCDQPState)``. An empty box (``l > u`` somewhere) raises
      ``ValueError`` when concrete; traced (under ``jit``/``vmap``) the solve ends at
      once with ``Status.INFEASIBLE`` and ``init_params`` unchanged.

    References:
      Luo and Tseng, "On the convergence of the coordinate descent method for convex
      differentiable minimization", 1992; Wright, "Coordinate descent algorithms",
      2015 (arXiv:1502.04759).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "maxiter", "tol", "verbose", "implicit_diff", "implicit_diff_solve", "jit", "unroll",
    )
    # jaxopt's named leading run arguments (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("params_obj", "params_ineq")

    _: dataclasses.KW_ONLY
    maxiter: int = 500
    tol: float = 1e-4

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or ls.solve_normal_cg

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        (Q, c), (l, u) = self._unpack(args, kwargs)
        n = jnp.size(init_params)
        if jnp.ndim(init_params) != 1:
            raise ValueError(f"`init_params` must be a 1-D array, got shape {jnp.shape(init_params)}.")
        if jnp.shape(Q) != (n, n) or jnp.shape(c) != (n,):
            raise ValueError(f"`params_obj` must be (Q, c) with shapes ({n}, {n}) and ({n},), got "
                             f"{jnp.shape(Q)} and {jnp.shape(c)}.")
        for name, v in (("lower", l), ("upper", u)):
            if jnp.ndim(v) > 0 and jnp.shape(v) != (n,):
                raise ValueError(f"`params_ineq` {name} must have shape ({n},), got {jnp.shape(v)}.")
        if is_concrete(l) and is_concrete(u) and np.any(np.asarray(l) > np.asarray(u)):
            raise ValueError("`params_ineq` has lower > upper for some coordinates (empty box).")

    @staticmethod
    def _unpack(args, kwargs):
        names = ("params_obj", "params_ineq")
        vals = dict(zip(names, args, strict=False))
        vals.update(kwargs)
        missing = [n for n in names if vals.get(n) is None]
        if missing:
            raise ValueError(f"BoxCDQP needs {' and '.join(missing)}.")
        return vals["params_obj"], vals["params_ineq"]

    def init_state(self, init_params, *args, **kwargs) -> BoxCDQPState:
        """The residual at ``init_params``; ``INFEASIBLE`` at once if some ``l > u``.

        Args:
          init_params: initial point (1-D array).
          *args, **kwargs: ``params_obj=(Q, c)``, ``params_ineq=(l, u)``.

        Returns:
          A :class:`BoxCDQPState`.
        """
        (Q, c), (l, u) = self._unpack(args, kwargs)
        err = jnp.linalg.norm(_box_residual(init_params, Q, c, l, u))
        # An empty box (traced bounds, e.g. one lane of a vmap): INFEASIBLE before any sweep.
        status = jnp.where(jnp.any(jnp.asarray(l) > jnp.asarray(u)), Status.INFEASIBLE,
                           Status.RUNNING)
        return BoxCDQPState(jnp.asarray(0, jnp.int32), err, status.astype(jnp.int32))

    def update(self, params, state: BoxCDQPState, *args, **kwargs) -> OptStep:
        """One cyclic sweep over all coordinates.

        Args:
          params: current point.
          state: current :class:`BoxCDQPState`.
          *args, **kwargs: ``params_obj=(Q, c)``, ``params_ineq=(l, u)``.

        Returns:
          ``OptStep(x, state)`` after the sweep.
        """
        (Q, c), (l, u) = self._unpack(args, kwargs)
        n = params.shape[0]
        lo, hi = jnp.broadcast_to(l, (n,)), jnp.broadcast_to(u, (n,))

        def coord(i, carry):
            x, g = carry
            qii = Q[i, i]
            xi = jnp.clip(x[i] - g[i] / jnp.where(qii > 0, qii, 1.0), lo[i], hi[i])
            # A zero diagonal (linear in x_i): go to the bound the gradient points to.
            xi = jnp.where(qii > 0, xi, jnp.where(g[i] > 0, lo[i], jnp.where(g[i] < 0, hi[i], x[i])))
            delta = xi - x[i]
            return x.at[i].set(xi), g + delta * Q[:, i]

        x, _ = jax.lax.fori_loop(0, n, coord, (params, Q @ params + c))
        err = jnp.linalg.norm(_box_residual(x, Q, c, l, u)).astype(state.error.dtype)
        return OptStep(x, BoxCDQPState(state.iter_num + 1, err, state.status))

    def optimality_fun(self, params, *args, **kwargs):
        """``x - clip(x - (Q x + c), l, u)``, zero exactly at the solution.

        Args:
          params: a point.
          *args, **kwargs: ``params_obj=(Q, c)``, ``params_ineq=(l, u)``.

        Returns:
          An array like ``params``.
        """
        (Q, c), (l, u) = self._unpack(args, kwargs)
        return _box_residual(params, Q, c, l, u)
