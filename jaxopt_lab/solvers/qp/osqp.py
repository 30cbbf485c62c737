"""OSQP: ADMM for convex quadratic programs, with infeasibility detection."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive, is_concrete
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import KKTSolution, OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.qp.eq_qp import check_qp_options, linear_operator, quadratic_operators


class BoxOSQPState(NamedTuple):
    """State of :class:`BoxOSQP` / :class:`OSQP`.

    Attributes:
      iter_num: ADMM iterations done.
      error: ``max(||A x - z||_inf, ||Q x + c + A^T y||_inf)``.
      status: :class:`jaxopt_lab.Status` (``INFEASIBLE`` on a primal or dual
        infeasibility certificate).
      primal_residuals, dual_residuals: the two terms of ``error``.
      rho_bar: current ADMM penalty.
      primal_infeasible, dual_infeasible: which certificate was found.
    """

    iter_num: jax.Array
    error: jax.Array
    status: jax.Array
    primal_residuals: jax.Array
    dual_residuals: jax.Array
    rho_bar: jax.Array
    primal_infeasible: jax.Array
    dual_infeasible: jax.Array


def _inf(v):
    return jnp.max(jnp.abs(v)) if jnp.size(v) else jnp.zeros((), jnp.result_type(v))


def _bounds(params_ineq, z):
    """``(l, u)`` in the dtype of ``z``: wider bounds must not promote ``z`` and ``y``."""
    return tuple(jnp.asarray(b).astype(jnp.result_type(z)) for b in params_ineq)


@dataclasses.dataclass(eq=False)
class BoxOSQP(IterativeSolver):
    """``min 0.5 x^T Q x + c^T x`` subject to ``l <= A x <= u``, by OSQP's ADMM.

    Iterates, with ``z`` the constrained copy of ``A x`` and ``y`` its multiplier,
    ``(Q + sigma I + rho A^T A) x~ = sigma x - c + A^T (rho z - y)``, relaxation
    ``alpha`` (``momentum``), ``z = clip(alpha A x~ + (1 - alpha) z + y / rho, l, u)``
    and a dual ascent on ``y``; ``rho`` adapts every ``stepsize_updates_frequency``
    iterations to balance the residuals. Successive differences of ``y`` (resp.
    ``x``) certify primal (resp. dual) infeasibility, which ends the solve with
    ``Status.INFEASIBLE``; so does an empty box ``l > u`` given traced (under
    ``jit``/``vmap``; concrete, it raises ``ValueError``), at once, with the initial
    point returned unchanged. Implicit derivatives with respect to ``Q, c, A, l, u``
    come from the KKT conditions written with the projection,
    ``Q x + c + A^T y = 0``, ``A x = z``, ``z = clip(z + y, l, u)``.

    Args:
      matvec_Q: optional ``matvec_Q(params_Q, x)``; otherwise ``Q`` is a matrix.
      matvec_A: optional ``matvec_A(params_A, x)``; otherwise ``A`` is a matrix.
      fun: optional quadratic objective ``fun(x, params_obj)`` replacing ``(Q, c)``.
      check_primal_dual_infeasability: look for infeasibility certificates
        (``"auto"`` means True).
      sigma: proximal regularization of ``x`` (may be traced).
      momentum: relaxation ``alpha`` in ``(0, 2)`` (may be traced).
      eq_qp_solve: ``"cg"`` (matrix-free, warm-started) or ``"cholesky"`` (dense).
      rho_start, rho_min, rho_max: initial penalty and its range.
      stepsize_updates_frequency: iterations between ``rho`` updates (static).
      primal_infeasible_tol, dual_infeasible_tol: certificate tolerances.
      maxiter: maximum iterations.
      tol: stop when both residuals are ``<= tol`` (checked every iteration).
      termination_check_frequency: accepted for jaxopt compatibility.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default:
        :func:`jaxopt_lab.linalg.linear_solve.solve_normal_cg`).

    Returns:
      ``run(init_params=None, params_obj=(Q, c), params_eq=A, params_ineq=(l, u))``
      returns ``OptStep(KKTSolution(primal=(x, z), dual_eq=y), BoxOSQPState)``.

    References:
      Stellato, Banjac, Goulart, Bemporad and Boyd, "OSQP: an operator splitting
      solver for quadratic programs", 2020 (arXiv:1711.08013); Banjac et al.,
      "Infeasibility detection in the alternating direction method of multipliers
      for convex optimization", 2019.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "matvec_Q", "matvec_A", "fun", "check_primal_dual_infeasability", "sigma", "momentum",
        "eq_qp_solve", "rho_start", "rho_min", "rho_max", "stepsize_updates_frequency",
        "primal_infeasible_tol", "dual_infeasible_tol", "maxiter", "tol", "termination_check_frequency",
        "verbose", "implicit_diff", "implicit_diff_solve", "jit", "unroll",
    )

    matvec_Q: Callable | None = None
    matvec_A: Callable | None = None
    fun: Callable | None = None
    _: dataclasses.KW_ONLY
    check_primal_dual_infeasability: bool | str = "auto"
    sigma: float = 1e-6
    momentum: float = 1.6
    eq_qp_solve: str = "cg"
    rho_start: float = 0.1
    rho_min: float = 1e-6
    rho_max: float = 1e6
    stepsize_updates_frequency: int = 10
    primal_infeasible_tol: float = 1e-3
    dual_infeasible_tol: float = 1e-3
    maxiter: int = 4000
    tol: float = 1e-3
    termination_check_frequency: int = 5

    def __post_init__(self):
        check_qp_options(self)
        if self.eq_qp_solve not in ("cg", "cholesky"):
            raise ValueError(f"`eq_qp_solve` must be 'cg' or 'cholesky', got {self.eq_qp_solve!r}.")
        if self.eq_qp_solve == "cholesky" and (self.matvec_Q or self.matvec_A or self.fun):
            raise ValueError("`eq_qp_solve='cholesky'` needs dense Q and A (no matvec_Q/matvec_A/fun).")
        check_int(self.stepsize_updates_frequency, "stepsize_updates_frequency", minimum=1)
        for name in ("sigma", "rho_start", "rho_min", "rho_max", "momentum"):
            check_positive(getattr(self, name), name)
        if is_concrete(self.momentum) and not float(self.momentum) < 2:
            raise ValueError(f"`momentum` must be in (0, 2), got {self.momentum}.")

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or ls.solve_normal_cg

    # -- operators -------------------------------------------------------------
    def _A_op(self, params_eq):
        return linear_operator(self.matvec_A, params_eq)

    def _ops(self, params_obj, params_eq, x_example):
        Qv, c_of = quadratic_operators(self.matvec_Q, self.fun, params_obj)
        Av = self._A_op(params_eq)
        ATv = lambda y: jax.linear_transpose(Av, x_example)(y)[0]
        return Qv, c_of(x_example), Av, ATv

    def _x_example(self, params_obj):
        if self.fun is not None:
            raise ValueError("with `fun`, pass `init_params` (its primal fixes the shape of x).")
        return jnp.zeros_like(params_obj[1])

    def _initial(self, init_params, params_obj, params_eq):
        if init_params is not None:
            return init_params
        x = self._x_example(params_obj)
        z = jax.eval_shape(self._A_op(params_eq), x)
        z = jnp.zeros(z.shape, z.dtype)
        return KKTSolution((x, z), jnp.zeros_like(z))

    def _check_run_args(self, init_params, args, kwargs) -> None:
        params_obj, params_eq, params_ineq = (list(args) + [None] * 3)[:3]
        if params_obj is None or params_ineq is None:
            raise ValueError("`params_obj=(Q, c)` and `params_ineq=(l, u)` are required.")
        l, u = params_ineq
        # numpy, not jnp: an outer jit stages jnp ops even on concrete (closed-over) bounds.
        # Traced bounds go to init_state, where an empty box gives Status.INFEASIBLE.
        if is_concrete(l) and is_concrete(u) and np.any(np.asarray(l) > np.asarray(u)):
            raise ValueError("`params_ineq` has l > u for some rows (empty box).")

    def run(self, init_params=None, params_obj=None, params_eq=None, params_ineq=None) -> OptStep:
        """Solve the QP.

        Args:
          init_params: optional ``KKTSolution((x, z), y)`` warm start.
          params_obj: ``(Q, c)`` (or ``fun``'s parameters).
          params_eq: ``A`` (or ``matvec_A``'s parameters).
          params_ineq: ``(l, u)``.

        Returns:
          ``OptStep(KKTSolution((x, z), y), BoxOSQPState)``.
        """
        self._check_run_args(init_params, (params_obj, params_eq, params_ineq), {})
        init = self._initial(init_params, params_obj, params_eq)
        return super().run(init, params_obj, params_eq, params_ineq)

    def init_state(self, init_params, params_obj=None, params_eq=None, params_ineq=None) -> BoxOSQPState:
        """A state with infinite error and ``rho = rho_start`` (``INFEASIBLE`` if some ``l > u``).

        Args:
          init_params: ``KKTSolution((x, z), y)``.
          params_obj, params_eq, params_ineq: the QP data.

        Returns:
          A :class:`BoxOSQPState`.
        """
        dtype = jnp.result_type(init_params.primal[0])
        inf, f = jnp.asarray(jnp.inf, dtype), jnp.asarray(False)
        # An empty box l > u (traced, e.g. one lane of a vmap) is primal infeasible as given.
        lower, upper = params_ineq
        empty = jnp.any(jnp.asarray(lower) > jnp.asarray(upper))
        status = jnp.where(empty, Status.INFEASIBLE, Status.RUNNING).astype(jnp.int32)
        return BoxOSQPState(jnp.asarray(0, jnp.int32), inf, status,
                            inf, inf, jnp.asarray(self.rho_start, dtype), empty, f)

    def _solve_x(self, Qv, Av, ATv, params_obj, params_eq, rho, rhs, x0):
        if self.eq_qp_solve == "cholesky":
            Q, A = params_obj[0], params_eq
            M = Q + self.sigma * jnp.eye(Q.shape[0], dtype=Q.dtype) + rho * A.T @ A
            return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(M), rhs)
        mv = lambda v: tu.tree_add(tu.tree_add_scalar_mul(Qv(v), self.sigma, v),
                                   tu.tree_scalar_mul(rho, ATv(Av(v))))
        return ls.solve_cg(mv, rhs, init=x0)

    def update(self, params, state: BoxOSQPState, params_obj=None, params_eq=None,
               params_ineq=None) -> OptStep:
        """One ADMM iteration (with infeasibility checks and ``rho`` adaptation).

        Args:
          params: current ``KKTSolution((x, z), y)``.
          state: current :class:`BoxOSQPState`.
          params_obj, params_eq, params_ineq: the QP data.

        Returns:
          ``OptStep(KKTSolution((x, z), y), state)``.
        """
        (x, z), y = params.primal, params.dual_eq
        l, u = _bounds(params_ineq, z)
        Qv, c, Av, ATv = self._ops(params_obj, params_eq, x)
        rho, alpha = state.rho_bar, self.momentum
        rhs = tu.tree_add(tu.tree_add_scalar_mul(tu.tree_negative(c), self.sigma, x), ATv(rho * z - y))
        x_t = self._solve_x(Qv, Av, ATv, params_obj, params_eq, rho, rhs, x)
        x_new = tu.tree_add(tu.tree_scalar_mul(alpha, x_t), tu.tree_scalar_mul(1 - alpha, x))
        z_relax = alpha * Av(x_t) + (1 - alpha) * z
        z_new = jnp.clip(z_relax + y / rho, l, u)
        y_new = y + rho * (z_relax - z_new)

        Ax, ATy, Qx = Av(x_new), ATv(y_new), Qv(x_new)
        r_prim = _inf(Ax - z_new)
        r_dual = tu.tree_inf_norm(tu.tree_add(tu.tree_add(Qx, c), ATy))
        tiny = jnp.finfo(r_prim.dtype).tiny
        prim_scale = jnp.maximum(jnp.maximum(_inf(Ax), _inf(z_new)), tiny)
        dual_scale = jnp.maximum(jnp.maximum(tu.tree_inf_norm(Qx), tu.tree_inf_norm(ATy)),
                                 jnp.maximum(tu.tree_inf_norm(c), tiny))
        ratio = (r_prim / prim_scale) / jnp.maximum(r_dual / dual_scale, tiny)
        new_rho = jnp.clip(rho * jnp.sqrt(jnp.maximum(ratio, tiny)), self.rho_min, self.rho_max)
        k = state.iter_num + 1
        rho_next = jnp.where((k % self.stepsize_updates_frequency == 0) & jnp.isfinite(new_rho),
                             new_rho, rho)

        p_inf = d_inf = jnp.asarray(False)
        if self.check_primal_dual_infeasability:
            dy = y_new - y
            ndy = _inf(dy)
            support = (jnp.sum(jnp.where(dy > 0, u * jnp.where(dy > 0, dy, 0), 0.0))
                       + jnp.sum(jnp.where(dy < 0, l * jnp.where(dy < 0, dy, 0), 0.0)))
            eps_p = self.primal_infeasible_tol
            p_inf = (ndy > tiny) & (_inf(ATv(dy)) <= eps_p * ndy) & (support < -eps_p * ndy)
            dx = tu.tree_sub(x_new, x)
            ndx = tu.tree_inf_norm(dx)
            Adx, eps_d = Av(dx), self.dual_infeasible_tol * ndx
            in_cone = jnp.all(jnp.where(jnp.isfinite(u), Adx <= eps_d, True)
                              & jnp.where(jnp.isfinite(l), Adx >= -eps_d, True))
            d_inf = ((ndx > tiny) & (tu.tree_inf_norm(Qv(dx)) <= eps_d)
                     & (tu.tree_vdot(c, dx) < -eps_d) & in_cone)
        status = jnp.where(p_inf | d_inf, Status.INFEASIBLE, state.status).astype(jnp.int32)
        new_state = BoxOSQPState(k, jnp.maximum(r_prim, r_dual).astype(state.error.dtype), status,
                                 r_prim, r_dual, rho_next, p_inf, d_inf)
        return OptStep(KKTSolution((x_new, z_new), y_new), new_state)

    def optimality_fun(self, params, params_obj=None, params_eq=None, params_ineq=None):
        """KKT residual ``((Q x + c + A^T y, z - clip(z + y, l, u)), A x - z)``.

        Args:
          params: ``KKTSolution((x, z), y)``.
          params_obj, params_eq, params_ineq: the QP data.

        Returns:
          A ``KKTSolution`` with the structure of ``params``.
        """
        (x, z), y = params.primal, params.dual_eq
        l, u = _bounds(params_ineq, z)
        Qv, c, Av, ATv = self._ops(params_obj, params_eq, x)
        stat = tu.tree_add(tu.tree_add(Qv(x), c), ATv(y))
        return KKTSolution((stat, z - jnp.clip(z + y, l, u)), Av(x) - z)


@dataclasses.dataclass(eq=False)
class OSQP(BoxOSQP):
    """``min 0.5 x^T Q x + c^T x`` s.t. ``A x = b``, ``G x <= h``, through :class:`BoxOSQP`.

    The constraints are stacked as ``[b; -inf] <= [A; G] x <= [b; h]``; all of
    :class:`BoxOSQP`'s options apply (infeasible problems end with
    ``Status.INFEASIBLE``, derivatives flow to ``Q, c, A, b, G, h``).

    Args:
      matvec_Q: optional ``matvec_Q(params_Q, x)``.
      matvec_A: optional ``matvec_A(params_A, x)`` for the equality constraints.
      matvec_G: optional ``matvec_G(params_G, x)`` for the inequality constraints.
      fun: optional quadratic objective ``fun(x, params_obj)``.
      **options: see :class:`BoxOSQP`.

    Returns:
      ``run(init_params=None, params_obj=(Q, c), params_eq=(A, b), params_ineq=(G, h))``
      returns ``OptStep(KKTSolution(x, dual_eq, dual_ineq), BoxOSQPState)``.

    References:
      Stellato, Banjac, Goulart, Bemporad and Boyd, "OSQP: an operator splitting
      solver for quadratic programs", 2020 (arXiv:1711.08013).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = ("matvec_Q", "matvec_A", "matvec_G", "fun")

    matvec_G: Callable | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.matvec_G is not None:
            check_callable(self.matvec_G, "matvec_G")

    def _A_op(self, params_eq):
        (A, G) = params_eq
        ops = []
        if A is not None:
            ops.append(linear_operator(self.matvec_A, A))
        if G is not None:
            ops.append(linear_operator(self.matvec_G, G))
        return lambda x: jnp.concatenate([op(x) for op in ops])

    def run(self, init_params=None, params_obj=None, params_eq=None, params_ineq=None) -> OptStep:
        """Solve the QP.

        Args:
          init_params: optional ``KKTSolution`` of a previous solve (warm start).
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)`` or None.
          params_ineq: ``(G, h)`` or None.

        Returns:
          ``OptStep(KKTSolution(x, dual_eq, dual_ineq), BoxOSQPState)``.
        """
        if params_eq is None and params_ineq is None:
            raise ValueError("OSQP needs `params_eq=(A, b)` and/or `params_ineq=(G, h)`.")
        # The absent block's empty bound takes the data's dtype (a bare jnp.zeros((0,)) is
        # float64 under x64 and would promote float32 bounds, z and y).
        dtype = jnp.result_type(*(jnp.asarray(v[1]) for v in (params_eq, params_ineq) if v is not None))
        A, b = params_eq if params_eq is not None else (None, jnp.zeros((0,), dtype))
        G, h = params_ineq if params_ineq is not None else (None, jnp.zeros((0,), dtype))
        b, h = jnp.asarray(b), jnp.asarray(h)
        p = b.shape[0]
        lower = jnp.concatenate([b, jnp.full(h.shape, -jnp.inf, h.dtype)])
        upper = jnp.concatenate([b, h])
        box_init = None
        if init_params is not None:
            y = jnp.concatenate([init_params.dual_eq if params_eq is not None else b,
                                 init_params.dual_ineq if params_ineq is not None else h])
            x = init_params.primal
            box_init = KKTSolution((x, self._A_op((A, G))(x)), y)
        out = super().run(box_init, params_obj, (A, G), (lower, upper))
        (x, _), y = out.params.primal, out.params.dual_eq
        sol = KKTSolution(x, y[:p] if params_eq is not None else None,
                               y[p:] if params_ineq is not None else None)
        return OptStep(sol, out.state)
