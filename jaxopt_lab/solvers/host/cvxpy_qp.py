"""Quadratic programs solved by CVXPY on the host, with implicit derivatives (optional extra)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import is_concrete
from jaxopt_lab.core.types import KKTSolution, OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.host._base import HostSolver


def _import_cvxpy():
    try:
        import cvxpy
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "CvxpyQP needs the optional dependency cvxpy: install it with "
            "`pip install 'jaxopt_lab[cvxpy]'` (or `pip install cvxpy`).") from err
    return cvxpy


# Outcome codes of the host solve (index into _CODE_STATUS / _CODE_TEXT).
_CODES = {"optimal": 0, "optimal_inaccurate": 1, "infeasible": 2, "infeasible_inaccurate": 2,
          "unbounded": 3, "unbounded_inaccurate": 3}
_CODE_STATUS = np.asarray([Status.CONVERGED, Status.MAX_ITER, Status.INFEASIBLE,
                           Status.INFEASIBLE, Status.NONFINITE], np.int32)
_CODE_TEXT = ("optimal", "optimal_inaccurate", "infeasible", "unbounded", "failed (solver error)")


class CvxpyQPState(NamedTuple):
    """State returned by :meth:`CvxpyQP.run`.

    Attributes:
      iter_num: iterations reported by the CVXPY backend (0 when it reports none).
      error: Euclidean norm of the KKT residual (:meth:`CvxpyQP.optimality_fun`).
      status: :class:`jaxopt_lab.Status`: ``CONVERGED`` (solved), ``MAX_ITER`` (CVXPY
        reports an inaccurate solution), ``INFEASIBLE`` (infeasible or unbounded) or
        ``NONFINITE`` (the backend failed, e.g. on NaN data).
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array


def _host_solve(backend, Q, c, A, b, G, h):
    """numpy in, numpy out: ``(x, y, z, iterations, code)``; zeros on failure."""
    cp = _import_cvxpy()
    dtype = c.dtype
    n, p, m = c.shape[0], b.shape[0], h.shape[0]
    Q, c, A, b, G, h = (np.asarray(a, np.float64) for a in (Q, c, A, b, G, h))
    x = cp.Variable(n)
    cons = ([A @ x == b] if p else []) + ([G @ x <= h] if m else [])
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(0.5 * (Q + Q.T))) + c @ x), cons)
    try:
        prob.solve(solver=backend)
        code = _CODES.get(prob.status, 4)
    except (cp.error.SolverError, ValueError):  # e.g. NaN data
        code = 4
    ok = code <= 1 and x.value is not None
    code = code if ok or code > 1 else 4
    xs = np.asarray(x.value if ok else np.zeros(n))
    ys = np.asarray(cons[0].dual_value if ok and p else np.zeros(p)).reshape(p)
    zs = np.asarray(cons[-1].dual_value if ok and m else np.zeros(m)).reshape(m)
    iters = (getattr(prob.solver_stats, "num_iters", None) or 0) if ok else 0
    return (xs.astype(dtype), ys.astype(dtype), zs.astype(dtype), np.int32(iters), np.int32(code))


@dataclasses.dataclass(eq=False)
class CvxpyQP(HostSolver):
    """``min 0.5 x^T Q x + c^T x`` s.t. ``A x = b``, ``G x <= h``, solved by CVXPY.

    A dense QP handed to CVXPY (``solver`` names its backend, e.g. ``"OSQP"`` or
    ``"CLARABEL"``), called from JAX through ``jax.pure_callback``: ``run`` works under
    ``jax.jit`` and ``jax.vmap`` (one host solve per instance) and compiles once per shape.
    Derivatives of the primal and dual solution with respect to ``(Q, c)``, ``(A, b)``
    and ``(G, h)`` come from the implicit function theorem applied to the KKT conditions
    (stationarity, primal feasibility, complementary slackness), in forward and reverse
    mode. Without cvxpy installed, construction raises an ``ImportError`` naming the
    ``cvxpy`` extra. Data of mismatched shapes raise a ``ValueError`` naming the argument.
    An infeasible or unbounded problem raises a ``ValueError`` when ``run`` is called
    eagerly; under a transformation it gives ``status = INFEASIBLE`` (and zeros).

    Args:
      solver: CVXPY solver name.
      adjoint, implicit_diff, implicit_diff_solve: implicit differentiation (see
        :class:`~jaxopt_lab.solvers.host._base.HostSolver`); the default linear solve of the
        KKT Jacobian is GMRES.

    Returns:
      ``run(init_params, params_obj, params_eq=None, params_ineq=None)
      -> OptStep(KKTSolution(primal, dual_eq, dual_ineq), CvxpyQPState)`` (jaxopt returns
      ``None`` as the state; here it carries ``status``, ``error`` and ``iter_num``).

    References:
      Diamond and Boyd, "CVXPY: A Python-Embedded Modeling Language for Convex
      Optimization", 2016 (arXiv:1603.00943); Amos and Kolter, "OptNet: Differentiable
      Optimization as a Layer in Neural Networks", 2017 (arXiv:1703.00443).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = ("solver", "implicit_diff_solve")

    solver: str = "OSQP"
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_gmres)

    def __post_init__(self):
        _import_cvxpy()
        if not isinstance(self.solver, str):
            raise TypeError(f"`solver` must be a CVXPY solver name (str), got {type(self.solver).__name__}.")
        super().__post_init__()

    @staticmethod
    def optimality_fun(sol, params_obj, params_eq, params_ineq):
        """KKT residual ``(Qx + c + A^T y + G^T z, A x - b, z * (G x - h))``.

        Args:
          sol: a ``KKTSolution(primal, dual_eq, dual_ineq)``.
          params_obj, params_eq, params_ineq: the QP data, as in :meth:`run`.

        Returns:
          A ``KKTSolution`` of residuals, zero at a KKT point.
        """
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
        return KKTSolution(r, out_eq, out_ineq)

    def l2_optimality_error(self, params, *args, **kwargs) -> jax.Array:
        """Norm of the KKT residual :meth:`optimality_fun` at ``params`` (a ``KKTSolution``).

        Args:
          params: a ``KKTSolution(primal, dual_eq, dual_ineq)``.
          *args, **kwargs: ``params_obj, params_eq, params_ineq``, as in :meth:`run`.

        Returns:
          A scalar, zero at a KKT point.
        """
        return tu.tree_l2_norm(self.optimality_fun(params, *args, **kwargs))

    @staticmethod
    def _check_shapes(params_obj, params_eq, params_ineq) -> None:
        if not isinstance(params_obj, tuple | list) or len(params_obj) != 2:
            raise TypeError("`params_obj` must be a pair (Q, c).")
        Q, c = params_obj
        n = np.shape(c)[0] if np.ndim(c) == 1 else -1
        if n < 0 or np.shape(Q) != (n, n):
            raise ValueError(f"`params_obj` = (Q, c) needs c of shape (n,) and Q of shape (n, n), got "
                             f"Q {np.shape(Q)} and c {np.shape(c)}.")
        for name, pair in (("params_eq", params_eq), ("params_ineq", params_ineq)):
            if pair is None:
                continue
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise TypeError(f"`{name}` must be a pair (matrix, vector) or None.")
            M, v = pair
            if np.ndim(M) != 2 or np.shape(M)[1] != n or np.shape(v) != (np.shape(M)[0],):
                raise ValueError(f"`{name}` needs a matrix of shape (k, {n}) and a vector of shape (k,), "
                                 f"got {np.shape(M)} and {np.shape(v)}.")

    def run(self, init_params, params_obj, params_eq=None, params_ineq=None) -> OptStep:
        """Solve the QP (``init_params`` is ignored: CVXPY chooses its own start).

        Args:
          init_params: ignored (jaxopt compatibility).
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)`` or None.
          params_ineq: ``(G, h)`` or None.

        Returns:
          ``OptStep(KKTSolution(primal, dual_eq, dual_ineq), CvxpyQPState)``.
        """
        del init_params
        self._check_shapes(params_obj, params_eq, params_ineq)
        out, code = _jitted_run(self, params_obj, params_eq, params_ineq)
        if is_concrete(code) and int(code) in (2, 3):
            raise ValueError(f"CvxpyQP: CVXPY reports the problem {_CODE_TEXT[int(code)]}.")
        return out

    def _host_run(self, init_params, params_obj, params_eq, params_ineq) -> OptStep:
        """CVXPY through ``jax.pure_callback``: ``OptStep(KKTSolution, (iterations, code))``."""
        del init_params
        n, dtype = params_obj[1].shape[0], jnp.result_type(params_obj[1])
        empty = (jnp.zeros((0, n), dtype), jnp.zeros((0,), dtype))
        A, b = params_eq if params_eq is not None else empty
        G, h = params_ineq if params_ineq is not None else empty
        shapes = (jax.ShapeDtypeStruct((n,), dtype), jax.ShapeDtypeStruct(b.shape, dtype),
                  jax.ShapeDtypeStruct(h.shape, dtype), jax.ShapeDtypeStruct((), jnp.int32),
                  jax.ShapeDtypeStruct((), jnp.int32))
        data = [jnp.asarray(a, dtype) for a in (params_obj[0], params_obj[1], A, b, G, h)]
        x, y, z, iters, code = jax.pure_callback(functools.partial(_host_solve, self.solver), shapes, *data,
                                                 vmap_method="sequential")
        sol = KKTSolution(x, None if params_eq is None else y, None if params_ineq is None else z)
        return OptStep(sol, (iters, code))


@jax.jit
def _jitted_run(qp, params_obj, params_eq, params_ineq):
    # ``qp`` is a pytree whose options are all static: equal options share one compilation.
    sol, (iters, code) = qp._run_differentiable(None, (params_obj, params_eq, params_ineq), {})
    error = tu.tree_l2_norm(CvxpyQP.optimality_fun(sol, params_obj, params_eq, params_ineq))
    status = jnp.asarray(_CODE_STATUS)[code]
    dtype = jnp.result_type(params_obj[1])
    return OptStep(sol, CvxpyQPState(iters, error.astype(dtype), status)), code
