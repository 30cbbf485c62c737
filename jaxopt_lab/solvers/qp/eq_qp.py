"""Equality-constrained quadratic programs, solved through their KKT system."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive, check_tolerance
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import KKTSolution, OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls


class EqQPState(NamedTuple):
    """State of :class:`EqualityConstrainedQP`.

    Attributes:
      iter_num: refinement steps done.
      error: norm of the KKT residual.
      primal_residual: ``||A x - b||``.
      status: ``CONVERGED``, ``MAX_ITER``, ``INFEASIBLE`` (``A x = b`` has no solution) or
        ``UNBOUNDED`` (``Q`` has negative curvature on the null space of ``A``: the KKT
        point is a saddle and the objective is unbounded below on ``A x = b``).
    """

    iter_num: jax.Array
    error: jax.Array
    primal_residual: jax.Array
    status: jax.Array


def quadratic_operators(matvec_Q, fun, params_obj):
    """``(v -> Q v, c)`` from a matrix, a ``matvec_Q`` or a quadratic ``fun``.

    Args:
      matvec_Q: ``matvec_Q(params_Q, x)`` or None (``params_obj[0]`` is a matrix).
      fun: a quadratic ``fun(x, params_obj)`` used instead of ``(Q, c)``, or None.
      params_obj: ``(Q, c)`` (or the parameters of ``fun``).

    Returns:
      A function ``x -> Q x`` and a function ``example -> c``.
    """
    if fun is not None:
        grad = jax.grad(fun)
        c_of = lambda x: grad(tu.tree_zeros_like(x), params_obj)
        return (lambda v: jax.jvp(lambda x: grad(x, params_obj), (tu.tree_zeros_like(v),), (v,))[1],
                c_of)
    Q, c = params_obj
    if matvec_Q is None:
        return (lambda v: jnp.dot(Q, v)), (lambda x: c)
    return (lambda v: matvec_Q(Q, v)), (lambda x: c)


def check_qp_options(solver) -> None:
    """The option checks shared by the QP solvers given ``matvec_Q`` / ``matvec_A`` / ``fun``.

    Not ``IterativeSolver.__post_init__``: ``fun`` is optional here (``None`` means the
    problem comes as matrices), and so are ``matvec_Q``, ``matvec_A`` and
    ``implicit_diff_solve``; each one given must be callable.

    Args:
      solver: an :class:`EqualityConstrainedQP` or :class:`jaxopt_lab.BoxOSQP`.

    Raises:
      ValueError: ``maxiter < 1``, or ``tol`` negative, NaN or infinite.
      TypeError: one of the optional functions is given but not callable.
    """
    check_int(solver.maxiter, "maxiter", minimum=1)
    check_tolerance(solver.tol, "tol")
    for name in ("matvec_Q", "matvec_A", "fun", "implicit_diff_solve"):
        if getattr(solver, name) is not None:
            check_callable(getattr(solver, name), name)


def linear_operator(matvec, A):
    """``v -> A v`` from a matrix or a ``matvec(A, v)``.

    Args:
      matvec: ``matvec(A, v)``, or ``None`` to treat ``A`` as a matrix.
      A: a matrix, or the parameters passed to ``matvec``.

    Returns:
      A function ``v -> A v`` (``jnp.dot(A, v)`` when ``matvec`` is ``None``).
    """
    return (lambda v: jnp.dot(A, v)) if matvec is None else (lambda v: matvec(A, v))


@dataclasses.dataclass(eq=False)
class EqualityConstrainedQP(IterativeSolver):
    """``min 0.5 x^T Q x + c^T x`` subject to ``A x = b``, by one KKT solve.

    Solves ``[[Q, A^T], [A, 0]] [x; y] = [-c; b]`` matrix-free with ``solve`` and
    improves the solution by iterative refinement (``refine_maxiter`` corrections,
    inner systems regularized by ``refine_regularization``). Implicit derivatives
    with respect to ``(Q, c)`` and ``(A, b)`` come from the KKT conditions.

    The KKT point minimizes the QP only if the reduced Hessian ``Z^T Q Z`` (``Z`` a
    basis of the null space of ``A``) is positive semidefinite; with a negative
    eigenvalue it is a saddle and the objective is unbounded below on ``A x = b``. The
    solver checks that inertia (``check_inertia``: ``Q`` and ``A`` made dense, ``Z``
    from an SVD of ``A``, eigenvalues of ``Z^T Q Z``; ``O(n^3)``) and reports
    ``Status.UNBOUNDED`` instead of ``CONVERGED``, still returning the KKT point.

    Args:
      matvec_Q: optional ``matvec_Q(params_Q, x)``; otherwise ``Q`` is a matrix.
      matvec_A: optional ``matvec_A(params_A, x)``; otherwise ``A`` is a matrix.
      fun: optional quadratic objective ``fun(x, params_obj)`` replacing ``(Q, c)``.
      solve: linear solver for the (symmetric indefinite) KKT system.
      refine_regularization: ridge of the refinement's inner solves (may be traced).
      refine_maxiter: number of refinement corrections (static).
      check_inertia: check the reduced Hessian for negative curvature (static): True,
        False, or ``"auto"`` (default: when ``x`` has at most 1000 entries).
      maxiter: accepted for jaxopt compatibility (refinement steps of ``update``).
      tol: KKT residual under which the solve counts as converged.
      implicit_diff_solve: linear solver for implicit differentiation (default: ``solve``).
      jit: jit-compile ``run``.

    Returns:
      ``run(init_params=None, params_obj=(Q, c), params_eq=(A, b))`` returns
      ``OptStep(KKTSolution(x, y), EqQPState)``; an inconsistent ``A x = b`` gives
      ``Status.INFEASIBLE``, a saddle (negative curvature on ``A x = b``)
      ``Status.UNBOUNDED``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2006, section 16.1.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "matvec_Q", "matvec_A", "fun", "solve", "refine_regularization", "refine_maxiter", "maxiter",
        "tol", "implicit_diff_solve", "jit",
    )

    matvec_Q: Callable | None = None
    matvec_A: Callable | None = None
    fun: Callable | None = None
    _: dataclasses.KW_ONLY
    solve: Callable = ls.solve_gmres
    refine_regularization: float = 0.0
    refine_maxiter: int = 10
    check_inertia: bool | str = "auto"
    maxiter: int = 1000
    tol: float = 1e-5

    def __post_init__(self):
        check_qp_options(self)
        check_callable(self.solve, "solve")
        check_int(self.refine_maxiter, "refine_maxiter", minimum=0)
        check_positive(self.refine_regularization, "refine_regularization", allow_zero=True)
        if self.check_inertia not in (True, False, "auto"):
            raise ValueError(f"`check_inertia` must be True, False or 'auto', got {self.check_inertia!r}.")

    def _check_run_args(self, init_params, args, kwargs) -> None:
        params_obj, params_eq = (list(args) + [None, None])[:2]
        if params_obj is None or params_eq is None:
            raise ValueError("`params_obj=(Q, c)` and `params_eq=(A, b)` are required.")
        if self.matvec_Q is None and self.fun is None:
            Q, c = params_obj
            if jnp.ndim(Q) != 2 or jnp.shape(Q)[0] != jnp.shape(Q)[1] or jnp.shape(Q)[1] != jnp.size(c):
                raise ValueError(f"`params_obj` Q must be (n, n) with c of size n, got "
                                 f"{jnp.shape(Q)} and {jnp.shape(c)}.")
        if self.matvec_A is None:
            A, b = params_eq
            if jnp.ndim(A) != 2 or jnp.shape(A)[0] != jnp.size(b):
                raise ValueError(f"`params_eq` A must be (p, n) with b of size p, got "
                                 f"{jnp.shape(A)} and {jnp.shape(b)}.")
            if self.matvec_Q is None and self.fun is None and jnp.shape(A)[1] != jnp.size(params_obj[1]):
                raise ValueError(f"`params_eq` A has {jnp.shape(A)[1]} columns but `params_obj` c has "
                                 f"size {jnp.size(params_obj[1])}.")

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or self.solve

    def _kkt(self, params_obj, params_eq, example_x):
        Qv, c_of = quadratic_operators(self.matvec_Q, self.fun, params_obj)
        A, b = params_eq
        Av = linear_operator(self.matvec_A, A)
        ATv = lambda y: jax.linear_transpose(Av, example_x)(y)[0]
        matvec = lambda z: (tu.tree_add(Qv(z[0]), ATv(z[1])), Av(z[0]))
        return matvec, (tu.tree_negative(c_of(example_x)), b)

    def _example_x(self, params_obj, params_eq):
        A, b = params_eq
        if self.matvec_A is None:
            return jnp.zeros(jnp.shape(A)[1], jnp.result_type(A, b))
        if self.fun is None and self.matvec_Q is None:
            return jnp.zeros_like(params_obj[1])
        return tu.tree_zeros_like(params_obj[1])

    def _negative_curvature(self, params_obj, params_eq, example_x):
        """Whether ``Z^T Q Z`` has an eigenvalue below ``-10 sqrt(n) eps ||Q||_F``.

        ``Q`` and ``A`` are made dense column by column (one matvec per entry of ``x``),
        ``Z`` spans the right singular vectors of ``A`` whose singular values are at most
        ``max(n, p) eps s_max``, and the quadratic form's symmetric part is used.
        """
        x_flat, unravel = ravel_pytree(example_x)
        n = x_flat.shape[0]
        if self.check_inertia is False or (self.check_inertia == "auto" and n > 1000):
            return jnp.asarray(False)
        Qv, _ = quadratic_operators(self.matvec_Q, self.fun, params_obj)
        Av = linear_operator(self.matvec_A, params_eq[0])
        eye = jnp.eye(n, dtype=x_flat.dtype)
        Q = jax.vmap(lambda e: ravel_pytree(Qv(unravel(e)))[0])(eye).T
        A = jax.vmap(lambda e: ravel_pytree(Av(unravel(e)))[0])(eye).T
        Q = 0.5 * (Q + Q.T)
        eps = jnp.finfo(Q.dtype).eps
        p = A.shape[0]
        if p == 0:
            Z = eye
        else:
            _, sv, vt = jnp.linalg.svd(A, full_matrices=True)
            rank_tol = max(n, p) * eps * sv[0]
            in_null = jnp.concatenate([sv <= rank_tol, jnp.ones(n - sv.shape[0], bool)])
            Z = jnp.where(in_null[None, :], vt.T, 0.0)  # range directions zeroed (eigenvalue 0)
        lam_min = jnp.linalg.eigvalsh(Z.T @ Q @ Z)[0]
        return lam_min < -10.0 * jnp.sqrt(n) * eps * jnp.linalg.norm(Q)

    def _state(self, z, params_obj, params_eq, iter_num):
        matvec, rhs = self._kkt(params_obj, params_eq, z[0])
        res = tu.tree_sub(matvec(z), rhs)
        prim = tu.tree_l2_norm(res[1])
        error = tu.tree_l2_norm(res)
        scale = 1.0 + tu.tree_l2_norm(params_eq[1])
        infeasible = ~(prim <= jnp.sqrt(self.tol) * scale)
        status = jnp.where(error <= self.tol, Status.CONVERGED,
                           jnp.where(infeasible, Status.INFEASIBLE, Status.MAX_ITER))
        # A KKT point with negative curvature on A x = b is a saddle: unbounded below.
        saddle = self._negative_curvature(params_obj, params_eq, z[0]) & ~infeasible
        status = jnp.where(saddle, Status.UNBOUNDED, status)
        return EqQPState(jnp.asarray(iter_num, jnp.int32), error, prim, status.astype(jnp.int32))

    def init_state(self, init_params=None, params_obj=None, params_eq=None) -> EqQPState:
        """The KKT residual at ``init_params`` (zeros when None).

        Args:
          init_params: a ``KKTSolution`` or None.
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)``.

        Returns:
          An :class:`EqQPState`.
        """
        z = self._as_pair(init_params, params_obj, params_eq)
        return self._state(z, params_obj, params_eq, 0)

    def _as_pair(self, init_params, params_obj, params_eq):
        if init_params is None:
            x = self._example_x(params_obj, params_eq)
            return (x, tu.tree_zeros_like(params_eq[1]))
        return (init_params.primal, init_params.dual_eq)

    def update(self, params, state: EqQPState, params_obj=None, params_eq=None) -> OptStep:
        """One refinement correction of the KKT solution.

        Args:
          params: current ``KKTSolution``.
          state: current :class:`EqQPState`.
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)``.

        Returns:
          ``OptStep(KKTSolution, state)``.
        """
        z = (params.primal, params.dual_eq)
        matvec, rhs = self._kkt(params_obj, params_eq, z[0])
        dz = self.solve(matvec, tu.tree_sub(rhs, matvec(z)), ridge=self.refine_regularization)
        z = tu.tree_add(z, dz)
        return OptStep(KKTSolution(z[0], z[1]),
                            self._state(z, params_obj, params_eq, state.iter_num + 1))

    def _run_loop(self, init_params, params_obj=None, params_eq=None) -> OptStep:
        z0 = self._as_pair(init_params, params_obj, params_eq)
        matvec, rhs = self._kkt(params_obj, params_eq, z0[0])
        z = ls.solve_iterative_refinement(matvec, rhs, ridge=self.refine_regularization,
                                          solve=self.solve, maxiter=self.refine_maxiter, init=z0)
        state = self._state(z, params_obj, params_eq, self.refine_maxiter)
        return OptStep(KKTSolution(z[0], z[1]), state)

    def run(self, init_params=None, params_obj=None, params_eq=None) -> OptStep:
        """Solve the QP.

        Args:
          init_params: optional ``KKTSolution`` warm start (gets no derivative).
          params_obj: ``(Q, c)`` (or ``fun``'s parameters).
          params_eq: ``(A, b)``.

        Returns:
          ``OptStep(KKTSolution(primal, dual_eq), EqQPState)``.
        """
        return super().run(init_params, params_obj, params_eq)

    def optimality_fun(self, params, params_obj, params_eq):
        """KKT residual ``(Q x + c + A^T y, A x - b)`` as a ``KKTSolution``.

        Args:
          params: a ``KKTSolution``.
          params_obj: ``(Q, c)``.
          params_eq: ``(A, b)``.

        Returns:
          A ``KKTSolution`` of residuals.
        """
        z = (params.primal, params.dual_eq)
        matvec, rhs = self._kkt(params_obj, params_eq, z[0])
        r = tu.tree_sub(matvec(z), rhs)
        return KKTSolution(r[0], r[1])
