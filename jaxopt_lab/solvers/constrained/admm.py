"""ADMM for ``min fun(x, *args) + g(A x)`` with ``g`` given by its proximal operator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_int, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import KKTSolution, OptStep, Status
from jaxopt_lab.solvers.constrained import _step


class ADMMState(NamedTuple):
    """State of :class:`ADMM`.

    Attributes:
      iter_num: iterations done.
      value: ``fun`` at the current ``x`` (the part of the objective given as a function).
      error: ``max(||r|| / (sqrt(p) k + max(||Ax||, ||z||)), ||s|| / (sqrt(n) k + ||A^T y||))``
        with ``k = atol / tol``: ``error <= tol`` is exactly Boyd et al.'s stopping test
        ``||r|| <= eps_pri`` and ``||s|| <= eps_dual`` (``inf`` before the first iteration).
      primal_residual: ``||r|| = ||A x - z||``.
      dual_residual: ``||s|| = ||rho A^T (z - z_prev)||``.
      z: the splitting variable (``A x`` at a solution).
      dual: the multiplier ``y`` of ``A x - z = 0`` (unscaled: the scaled dual is
        ``u = y / rho``, so changing ``rho`` rescales ``u`` and keeps ``y``).
      rho: the current penalty.
      inner_tol: tolerance of the next inner x-update solve.
      inner_iter_num: inner solver iterations so far (0 with ``quadratic=True``).
      factor: Cholesky factor of ``Q + rho A^T A`` (``quadratic=True``; else empty).
      factor_rho: the ``rho`` of ``factor``.
      hessian: ``Q`` (``quadratic=True``; else empty).
      linear: ``c`` (``quadratic=True``; else empty).
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    z: Any
    dual: Any
    rho: jax.Array
    inner_tol: jax.Array
    inner_iter_num: jax.Array
    factor: jax.Array
    factor_rho: jax.Array
    hessian: jax.Array
    linear: jax.Array
    status: jax.Array


# ----------------------------------------------------------------------------- shared pieces
def _relative_residual(r, s, scale_p, scale_d, size_p, size_d, tol, atol, dtype):
    """Boyd's test as one number: ``error <= tol`` iff ``r <= eps_pri`` and ``s <= eps_dual``.

    ``eps_pri = sqrt(size_p) atol + tol scale_p`` and ``eps_dual = sqrt(size_d) atol +
    tol scale_d``; with ``k = atol / tol`` (1 when ``atol`` is ``None``) the error is
    ``max(r / (sqrt(size_p) k + scale_p), s / (sqrt(size_d) k + scale_d))``.
    """
    if atol is None:
        k = jnp.ones((), dtype)
    else:
        k = jnp.where(tol > 0, atol / jnp.where(tol > 0, tol, 1.0), 0.0).astype(dtype)
    tiny = jnp.finfo(dtype).eps
    den_p = jnp.maximum(np.sqrt(size_p) * k + scale_p, tiny)
    den_d = jnp.maximum(np.sqrt(size_d) * k + scale_d, tiny)
    return jnp.maximum(r / den_p, s / den_d).astype(dtype)


@dataclasses.dataclass(eq=False)
class _ADMMBase(IterativeSolver):
    """What :class:`ADMM` and ``ConsensusADMM`` share: the options and their checks, the
    inner x-update solver, the quadratic data and factor, and the stopping test with the
    residual-balanced ``rho`` and the adaptive inner tolerance. A subclass writes its
    x-update, ``_factor(Q, rho)`` (the Cholesky factor of its x-update system) and its
    state, built from :meth:`_initial_fields` and :meth:`_next_fields`."""

    fun: Callable
    prox: Callable
    _: dataclasses.KW_ONLY
    rho: float = 1.0
    alpha: float = 1.0
    quadratic: bool = False
    residual_balancing: bool = True
    mu: float = 10.0
    tau: float = 2.0
    atol: float | None = None
    inner_solver: Any = None
    inner_maxiter: int = 100
    maxiter: int = 1000
    tol: float = 1e-4

    def __post_init__(self):
        super().__post_init__()
        check_callable(self.prox, "prox")
        check_positive(self.rho, "rho")
        for name, low, high in (("alpha", 0.0, 2.0), ("mu", 1.0, np.inf), ("tau", 1.0, np.inf)):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue
            if not np.all((np.asarray(value) > low) & (np.asarray(value) < high)):
                raise ValueError(f"`{name}` must be in ({low:g}, {high:g}), got {value!r}.")
        if self.atol is not None:
            check_positive(self.atol, "atol", allow_zero=True)
        check_int(self.inner_maxiter, "inner_maxiter", minimum=1)
        _step.check_inner_solver(self.inner_solver)

    def _inner_solver_for(self, fun: Callable, tol) -> Any:
        """The x-update solver on ``fun`` (L-BFGS by default), warm-started by the caller.

        It differentiates by unrolling: a ``lax.while_loop`` (forward mode), or a masked scan
        when the ADMM solver itself unrolls (reverse mode through the inner iterations).
        """
        return _step.inner_solver(self.inner_solver, fun, tol, self.inner_maxiter, self._unrolled())

    def _quadratic_data(self, x, args, kwargs):
        """``(Q, c)`` of ``fun(., *args, **kwargs) = 0.5 x'Qx + c'x + const``, read at zero."""
        f = lambda v: self._value_fun()(v, *args, **kwargs)
        zero = jnp.zeros_like(x)
        return jax.hessian(f)(zero), jax.grad(f)(zero)

    def _current_factor(self, state):
        """The Cholesky factor for ``state.rho``: the stored one unless ``rho`` has changed."""
        return jax.lax.cond(state.rho != state.factor_rho, lambda: self._factor(state.hessian, state.rho),
                            lambda: state.factor)

    def _initial_fields(self, rho, grad, quadratic_data, dtype) -> dict:
        """The state fields both solvers share, before the first iteration.

        Args:
          rho: the initial penalty.
          grad: the gradient of the objective at the initial point (the first inner
            tolerance is a tenth of its norm).
          quadratic_data: ``(Q, c)`` (``quadratic=True``; the factor of ``Q + rho I`` or
            ``Q + rho A^T A`` is made here) or ``None``.
          dtype: the state's floating dtype.
        """
        if quadratic_data is None:
            Q = factor = jnp.zeros((0, 0), dtype)
            c = jnp.zeros((0,), dtype)
        else:
            Q, c = quadratic_data
            factor = self._factor(Q, rho)
        inf = jnp.asarray(jnp.inf, dtype)
        return dict(iter_num=jnp.asarray(0, jnp.int32), error=inf, primal_residual=inf, dual_residual=inf,
                    rho=rho, inner_tol=(0.1 * tu.tree_l2_norm(grad)).astype(dtype),
                    inner_iter_num=jnp.asarray(0, jnp.int32), factor=factor, factor_rho=rho, hessian=Q,
                    linear=c, status=jnp.asarray(Status.RUNNING, jnp.int32))

    def _next_fields(self, state, r, s, scales, sizes, inner, factor, factor_rho) -> dict:
        """The state fields both solvers share, after an iteration with residuals ``r``, ``s``.

        The error is Boyd's test as one number (``error <= tol`` iff ``r <= eps_pri`` and
        ``s <= eps_dual``, with ``scales = (scale_p, scale_d)`` and ``sizes = (size_p,
        size_d)``); the next inner tolerance is ``0.1 (s + rho r)``, non-increasing and
        floored at ``0.1 eps_dual``; ``rho`` is residual-balanced (Boyd et al. 2011, eq.
        3.13: ``rho * tau`` if ``r > mu s``, ``rho / tau`` if ``s > mu r``) when
        ``residual_balancing`` is on.
        """
        rho, dtype = state.rho, state.rho.dtype
        (scale_p, scale_d), (size_p, size_d) = scales, sizes
        error = _relative_residual(r, s, scale_p, scale_d, size_p, size_d, self.tol, self.atol, dtype)
        atol = self.tol if self.atol is None else self.atol
        eps_dual = np.sqrt(size_d) * atol + self.tol * scale_d
        inner_tol = jnp.maximum(0.1 * eps_dual, jnp.minimum(state.inner_tol, 0.1 * (s + rho * r)))
        if self.residual_balancing:
            rho = jnp.where(r > self.mu * s, rho * self.tau,
                            jnp.where(s > self.mu * r, rho / self.tau, rho)).astype(dtype)
        return dict(iter_num=state.iter_num + 1, error=error, primal_residual=r, dual_residual=s, rho=rho,
                    inner_tol=inner_tol.astype(dtype), inner_iter_num=state.inner_iter_num + inner,
                    factor=factor, factor_rho=jnp.asarray(factor_rho, dtype), hessian=state.hessian,
                    linear=state.linear, status=state.status)

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or _step.solve_kkt_implicit


@dataclasses.dataclass(eq=False)
class ADMM(_ADMMBase):
    """Alternating direction method of multipliers for ``min fun(x, *args) + g(A x)``.

    ``g`` is known through its proximal operator ``prox(v, hyperparams_prox, scaling)``
    (the signature of :mod:`jaxopt_lab.prox`). With ``z = A x`` as a second variable and
    the scaled dual ``u`` (Boyd et al. 2011, section 3.1.1), each iteration is::

        x  = argmin fun(x) + rho/2 ||A x - z + u||^2      (inner solve)
        Ax^ = alpha A x + (1 - alpha) z                    (over-relaxation)
        z  = prox(Ax^ + u, hyperparams_prox, 1 / rho)
        u  = u + Ax^ - z

    The x-update runs an inner solver warm-started at the previous ``x`` (L-BFGS by
    default) to a tolerance that shrinks with the residuals; with ``quadratic=True``
    (``fun`` is ``0.5 x'Qx + c'x + const``, ``Q`` and ``c`` read from ``fun`` by
    automatic differentiation, so they may depend on ``*args``) it is a solve with a
    Cholesky factor of ``Q + rho A^T A`` kept in the state and refactored only when
    ``rho`` changes (under ``vmap`` that test becomes a select, so every iteration
    refactors; ``residual_balancing=False`` avoids it). With ``residual_balancing`` ``rho``
    is multiplied or divided by ``tau`` when one residual exceeds ``mu`` times the other
    (section 3.4.1); the dual is stored unscaled (``y = rho u``), so the scaled dual is
    rescaled with it.

    Stopping: ``r = A x - z``, ``s = rho A^T (z - z_prev)``; ``CONVERGED`` when
    ``||r|| <= sqrt(p) atol + tol max(||Ax||, ||z||)`` and ``||s|| <= sqrt(n) atol +
    tol ||A^T y||`` (section 3.3.1): ``tol`` is Boyd's relative tolerance ``eps_rel`` and
    ``atol`` his ``eps_abs`` (``None``: equal to ``tol``). ``NONFINITE`` on NaNs (the
    last finite iterate is returned), ``MAX_ITER`` otherwise; per lane under ``vmap``.

    Implicit derivatives of the solution with respect to ``hyperparams_prox`` and
    ``*args`` (forward and reverse mode) come from :meth:`optimality_fun`: the fixed point
    ``x = prox(x - s grad fun(x), hyperparams_prox, s)``, ``s = 1 / rho``, when ``A`` is
    ``None``; with ``A`` the KKT system of ``(x, y)``. Dense LU solves them (GMRES above
    512 unknowns) unless ``implicit_diff_solve`` is given.

    Args:
      fun: smooth convex objective ``fun(x, *args, **kwargs)`` (``(value, aux)`` with
        ``has_aux``).
      prox: ``prox(v, hyperparams_prox, scaling)``, the proximal operator of ``g``.
      A: ``None`` (identity, ``x`` may be a pytree) or a 2-D array ``(p, n)`` for a 1-D
        ``x`` of size ``n``. Its entries are traced but get no derivatives; pass data
        through ``*args`` for that.
      rho: initial penalty ``> 0`` (may be traced).
      alpha: over-relaxation in ``(0, 2)``; 1.5 to 1.8 often speeds up convergence.
      quadratic: ``fun`` is quadratic in ``x`` (1-D ``x``): closed-form x-updates.
      residual_balancing: adapt ``rho`` (static).
      mu, tau: residual-balancing ratio and factor (both ``> 1``).
      atol: Boyd's absolute tolerance ``eps_abs`` (``None``: ``tol``).
      inner_solver: the x-update solver, a solver whose ``fun`` is replaced by the
        x-update objective ``(x, v, rho, *args) -> fun(x, *args) + rho/2 ||Ax - v||^2``,
        or a factory ``inner_solver(fun) -> solver``. Default: :class:`jaxopt_lab.LBFGS`.
      inner_maxiter: iteration cap of each inner solve (static).
      maxiter: iterations.
      tol: Boyd's relative tolerance ``eps_rel``.
      implicit_diff, implicit_diff_solve, has_aux, jit, unroll, verbose, adjoint: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run(init_params, hyperparams_prox, *args, **kwargs)`` returns ``OptStep(x,
      ADMMState)``; ``state.z`` and ``state.dual`` hold the splitting variable and the
      multiplier.

    Example: training a two-layer ReLU network as a convex program (Pilanci and Ergen
    2020), split for ADMM as in Bai, Gautam and Sojoudi (2022). With sampled gate
    patterns ``D_i = diag(1[X h_i >= 0])``, ``i < P``, and ``u = (v_1..v_P, w_1..w_P)``
    (``2P`` blocks of size ``d``), the program is ``min 1/2 ||F u - y||^2 + beta sum_j
    ||u_j||`` s.t. ``K u >= 0``, where ``F = [D_1 X .. D_P X, -D_1 X .. -D_P X]`` and
    ``K = blockdiag((2 D_i - I) X)`` repeated for ``v`` and ``w``; ``A = [I; K]`` and
    ``g`` is the group norm on the first part plus the indicator of ``t >= 0`` on the
    second::

        loss = lambda u, F, y: 0.5 * jnp.sum((F @ u - y) ** 2)

        def prox(s, beta, scaling):
            g = s[:2 * P * d].reshape(2 * P, d)
            norms = jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-30)
            g = g * jnp.maximum(1.0 - beta * scaling / norms, 0.0)
            return jnp.concatenate([g.ravel(), jnp.maximum(s[2 * P * d:], 0.0)])

        A = jnp.concatenate([jnp.eye(2 * P * d), K])
        solver = ADMM(loss, prox, A=A, quadratic=True, tol=1e-8)
        u = solver.run(jnp.zeros(2 * P * d), beta, F, y).params

    The network is ``sum_i relu(X v_i) - relu(X w_i)``; the optimum equals a dense
    conic solver's (CVXPY) to 1e-6 relative at small size.

    References:
      Boyd, Parikh, Chu, Peleato and Eckstein, "Distributed Optimization and Statistical
      Learning via the Alternating Direction Method of Multipliers", Foundations and
      Trends in Machine Learning, 2011; Eckstein and Bertsekas, "On the Douglas-Rachford
      splitting method and the proximal point algorithm", 1992 (over-relaxation); Pilanci
      and Ergen, "Neural Networks are Convex Regularizers", 2020 (arXiv:2002.10553); Bai,
      Gautam and Sojoudi, "Efficient Global Optimization of Two-layer ReLU Networks:
      Quadratic-time Algorithms and Adversarial Training", 2022 (arXiv:2201.01965).
    """

    _: dataclasses.KW_ONLY
    A: Any = None

    def __post_init__(self):
        super().__post_init__()
        if self.A is not None:
            if callable(self.A) or isinstance(self.A, str):
                raise TypeError(f"`A` must be None or a 2-D array, got {type(self.A).__name__}.")
            if jnp.ndim(self.A) != 2:
                raise ValueError(f"`A` must be a 2-D array (p, n), got shape {jnp.shape(self.A)}.")
            if not isinstance(self.A, jax.Array | np.ndarray):
                object.__setattr__(self, "A", jnp.asarray(self.A))

    # ------------------------------------------------------------------ linear map
    def _Ax(self, x):
        return x if self.A is None else self.A @ x

    def _ATy(self, y):
        return y if self.A is None else self.A.T @ y

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        needs_vector = self.A is not None or self.quadratic
        if needs_vector and (not hasattr(init_params, "shape") or jnp.ndim(init_params) != 1):
            what = "`A`" if self.A is not None else "`quadratic=True`"
            raise ValueError(f"With {what}, `init_params` must be a 1-D array, got "
                             f"{type(init_params).__name__} of shape {jnp.shape(init_params)}.")
        if self.A is not None and jnp.shape(self.A)[1] != jnp.shape(init_params)[0]:
            raise ValueError(f"`A` has shape {jnp.shape(self.A)}: its {jnp.shape(self.A)[1]} columns must "
                             f"match the size {jnp.shape(init_params)[0]} of `init_params`.")

    # ------------------------------------------------------------------ x-update
    def _x_objective(self, x, v, rho, *args, **kwargs):
        ax_v = tu.tree_sub(self._Ax(x), v)
        return self._value_fun()(x, *args, **kwargs) + 0.5 * rho * tu.tree_l2_norm(ax_v, squared=True)

    def _factor(self, Q, rho):
        M = Q + rho * (jnp.eye(Q.shape[0], dtype=Q.dtype) if self.A is None else self.A.T @ self.A)
        return jnp.linalg.cholesky(M)

    def _x_update(self, x, v, state, args, kwargs):
        """``argmin fun(x) + rho/2 ||Ax - v||^2``: (x, inner iterations, factor, factor_rho)."""
        rho = state.rho
        if self.quadratic:
            factor = self._current_factor(state)
            rhs = rho * self._ATy(v) - state.linear
            x_new = jax.scipy.linalg.cho_solve((factor, True), rhs)
            return x_new, jnp.asarray(0, jnp.int32), factor, rho
        out = self._inner_solver_for(self._x_objective, state.inner_tol).run(x, v, rho, *args, **kwargs)
        inner = jnp.asarray(getattr(out.state, "iter_num", 0), jnp.int32)
        return out.params, inner, state.factor, state.factor_rho

    # ------------------------------------------------------------------ solver contract
    def init_state(self, init_params, hyperparams_prox=None, *args, **kwargs) -> ADMMState:
        """State at ``init_params`` with ``z = A x0`` and a zero dual.

        Args:
          init_params: initial ``x``.
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`ADMMState`.
        """
        del hyperparams_prox
        x = init_params
        value = self._value_fun()(x, *args, **kwargs)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(x))
        z = self._Ax(x)
        grad = jax.grad(self._value_fun())(x, *args, **kwargs)
        quadratic_data = self._quadratic_data(x, args, kwargs) if self.quadratic else None
        shared = self._initial_fields(jnp.asarray(self.rho, dtype), grad, quadratic_data, dtype)
        return ADMMState(value=jnp.asarray(value, dtype), z=z, dual=tu.tree_zeros_like(z), **shared)

    def update(self, params, state: ADMMState, hyperparams_prox=None, *args, **kwargs) -> OptStep:
        """One ADMM iteration (x-, z- and dual update, then residual balancing).

        Args:
          params: current ``x``.
          state: current :class:`ADMMState`.
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(x, state)``.
        """
        dtype = state.rho.dtype
        rho, z_prev = state.rho, state.z
        u = tu.tree_scalar_mul(1.0 / rho, state.dual)
        x, inner, factor, factor_rho = self._x_update(params, tu.tree_sub(z_prev, u), state, args, kwargs)
        ax = self._Ax(x)
        ax_hat = tu.tree_add(tu.tree_scalar_mul(self.alpha, ax), tu.tree_scalar_mul(1.0 - self.alpha, z_prev))
        z = self.prox(tu.tree_add(ax_hat, u), hyperparams_prox, 1.0 / rho)
        u = tu.tree_add(u, tu.tree_sub(ax_hat, z))
        y = tu.tree_scalar_mul(rho, u)
        r = tu.tree_l2_norm(tu.tree_sub(ax, z)).astype(dtype)
        s = (rho * tu.tree_l2_norm(self._ATy(tu.tree_sub(z, z_prev)))).astype(dtype)
        scale_p = jnp.maximum(tu.tree_l2_norm(ax), tu.tree_l2_norm(z)).astype(dtype)
        scale_d = tu.tree_l2_norm(self._ATy(y)).astype(dtype)
        size_p = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(z))
        size_d = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(x))
        sizes = (size_p, size_d)
        shared = self._next_fields(state, r, s, (scale_p, scale_d), sizes, inner, factor, factor_rho)
        value = jnp.asarray(self._value_fun()(x, *args, **kwargs), dtype)
        return OptStep(x, ADMMState(value=value, z=z, dual=y, **shared))

    def optimality_fun(self, params, hyperparams_prox=None, *args, **kwargs):
        """Residual that vanishes at a solution.

        ``A`` is ``None``: the proximal-gradient fixed point ``x - prox(x - s grad fun(x),
        hyperparams_prox, s)`` with ``s = 1 / rho``. With ``A``, ``params`` is a
        ``KKTSolution(x, y)`` (``y = state.dual``) and the residual is ``(grad fun(x) +
        A^T y, A x - prox(A x + s y, hyperparams_prox, s))``: stationarity, and ``y`` a
        subgradient of ``g`` at ``A x``.

        Args:
          params: ``x``, or ``KKTSolution(x, y)`` when ``A`` is given.
          hyperparams_prox: hyperparameters of ``prox``.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The residual, a pytree like ``params``.
        """
        s = 1.0 / jnp.asarray(self.rho)
        grad = jax.grad(self._value_fun())
        if self.A is None:
            x = params.primal if isinstance(params, KKTSolution) else params
            step = tu.tree_add_scalar_mul(x, -s, grad(x, *args, **kwargs))
            return tu.tree_sub(x, self.prox(step, hyperparams_prox, s))
        if not isinstance(params, KKTSolution):
            raise ValueError("With `A`, the optimality residual needs the multiplier: pass "
                             "`KKTSolution(x, state.dual)` as `params`.")
        x, y = params.primal, params.dual_eq
        ax = self.A @ x
        stationarity = grad(x, *args, **kwargs) + self.A.T @ y
        return KKTSolution(stationarity, ax - self.prox(ax + s * y, hyperparams_prox, s))

    # With ``A`` the implicit system is in (x, y): the loop returns both and ``run`` drops y.
    def _run_loop(self, init_params, *args, **kwargs) -> OptStep:
        out = super()._run_loop(init_params, *args, **kwargs)
        if self.A is None:
            return out
        return OptStep(KKTSolution(out.params, out.state.dual), out.state)

    def run(self, init_params, hyperparams_prox=None, *args, **kwargs) -> OptStep:
        """Run ADMM from ``init_params``.

        Args:
          init_params: initial ``x`` (gets no derivative).
          hyperparams_prox: hyperparameters of ``prox``; derivatives flow to them.
          *args, **kwargs: passed to ``fun``; derivatives flow to them.

        Returns:
          ``OptStep(x, ADMMState)``.
        """
        out = super().run(init_params, hyperparams_prox, *args, **kwargs)
        if isinstance(out.params, KKTSolution):
            return OptStep(out.params.primal, out.state)
        return out
