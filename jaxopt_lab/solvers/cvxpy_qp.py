"""Quadratic programs solved by CVXPY on the host, with implicit derivatives (optional extra)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import base
from jaxopt_lab import implicit_diff as idf
from jaxopt_lab import linear_solve as ls


def _import_cvxpy():
    try:
        import cvxpy
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "CvxpyQP needs the optional dependency cvxpy: install it with "
            "`pip install 'jaxopt_lab[cvxpy]'` (or `pip install cvxpy`).") from err
    return cvxpy


@dataclasses.dataclass(eq=False)
class CvxpyQP:
    """``min 0.5 x^T Q x + c^T x`` s.t. ``A x = b``, ``G x <= h``, solved by CVXPY.

    A dense QP handed to CVXPY (``solver`` names its backend, e.g. ``"OSQP"``). It
    runs on the host: ``run`` cannot be called under ``jax.jit``/``jax.vmap``.
    Derivatives of the primal and dual solution with respect to ``(Q, c)``,
    ``(A, b)`` and ``(G, h)`` come from the implicit function theorem applied to the
    KKT conditions (stationarity, primal feasibility, complementary slackness).
    Constructing it without cvxpy installed raises an ``ImportError`` naming the
    ``cvxpy`` extra.

    Args:
      solver: CVXPY solver name.
      implicit_diff_solve: linear solver for the KKT Jacobian (default: GMRES).

    Returns:
      ``run(init_params, params_obj, params_eq=None, params_ineq=None)
      -> OptStep(KKTSolution(primal, dual_eq, dual_ineq), None)``.

    References:
      Diamond and Boyd, "CVXPY: A Python-Embedded Modeling Language for Convex
      Optimization", 2016 (arXiv:1603.00943); Amos and Kolter, "OptNet: Differentiable
      Optimization as a Layer in Neural Networks", 2017 (arXiv:1703.00443).
    """

    solver: str = "OSQP"
    implicit_diff_solve: Callable | None = None

    def __post_init__(self):
        _import_cvxpy()

    @staticmethod
    def optimality_fun(sol, params_obj, params_eq, params_ineq):
        """KKT residual ``(Qx + c + A^T y + G^T z, A x - b, z * (G x - h))``."""
        x, y, z = sol
        Q, c = params_obj
        r = Q @ x + c
        out_eq = out_ineq = None
        if params_eq is not None:
            A, b = params_eq
            r = r + A.T @ y
            out_eq = A @ x - b
        if params_ineq is not None:
            G, h = params_ineq
            r = r + G.T @ z
            out_ineq = z * (G @ x - h)
        return base.KKTSolution(r, out_eq, out_ineq)

    def _host_solve(self, init_params, params_obj, params_eq, params_ineq):
        del init_params
        cp = _import_cvxpy()
        for leaf in jax.tree_util.tree_leaves((params_obj, params_eq, params_ineq)):
            if isinstance(leaf, jax.core.Tracer):
                raise TypeError("CvxpyQP.run calls CVXPY on the host and cannot run under jax.jit/jax.vmap.")
        Q, c = (np.asarray(a, np.float64) for a in params_obj)
        x = cp.Variable(c.shape[0])
        cons = []
        if params_eq is not None:
            A, b = (np.asarray(a, np.float64) for a in params_eq)
            cons.append(A @ x == b)
        if params_ineq is not None:
            G, h = (np.asarray(a, np.float64) for a in params_ineq)
            cons.append(G @ x <= h)
        prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(Q)) + c @ x), cons)
        prob.solve(solver=self.solver)
        if x.value is None:
            raise ValueError(f"CvxpyQP: CVXPY reports the problem {prob.status}.")
        dtype = jnp.result_type(params_obj[1])
        y = None if params_eq is None else jnp.asarray(cons[0].dual_value, dtype)
        z = None if params_ineq is None else jnp.asarray(cons[-1].dual_value, dtype)
        return base.OptStep(base.KKTSolution(jnp.asarray(x.value, dtype), y, z), None)

    def run(self, init_params, params_obj, params_eq=None, params_ineq=None) -> base.OptStep:
        """Solve the QP (``init_params`` is ignored: CVXPY chooses its own start).

        Args:
          init_params: ignored (jaxopt compatibility).
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)`` or None.
          params_ineq: ``(G, h)`` or None.

        Returns:
          ``OptStep(KKTSolution(primal, dual_eq, dual_ineq), None)``.
        """
        solve = self.implicit_diff_solve or ls.solve_gmres
        decorated = idf.custom_root(self.optimality_fun, has_aux=True, solve=solve)(self._host_solve)
        return decorated(init_params, params_obj, params_eq, params_ineq)
