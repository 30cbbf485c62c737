"""Levenberg-Marquardt with Nielsen's damping update and optional geodesic acceleration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable, check_positive
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.least_squares._step import LeastSquaresSolver, half_squared_norm


class LevenbergMarquardtState(NamedTuple):
    """State of :class:`LevenbergMarquardt`.

    Attributes:
      iter_num: iterations done.
      damping_factor: current damping ``mu``.
      increase_factor: Nielsen's ``nu`` (grows after each rejected step).
      residual: ``r(params)``.
      value: ``0.5 ||r(params)||^2``.
      delta: last trial step.
      error: ``||J^T r||`` at ``params``.
      gradient: ``J^T r`` at ``params``.
      aux: auxiliary output of ``residual_fun``.
      num_fun_eval: residual evaluations so far.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    damping_factor: jax.Array
    increase_factor: jax.Array
    residual: Any
    value: jax.Array
    delta: Any
    error: jax.Array
    gradient: Any
    aux: Any
    num_fun_eval: jax.Array
    status: jax.Array


def _dense_jacobian(f, params):
    flat, unravel = ravel_pytree(params)
    return jax.jacfwd(lambda v: ravel_pytree(f(unravel(v)))[0])(flat), unravel


@dataclasses.dataclass(eq=False)
class LevenbergMarquardt(LeastSquaresSolver):
    """Levenberg-Marquardt for nonlinear least squares ``min 0.5 ||r(x)||^2``.

    Each step solves ``(J^T J + mu I) d = -J^T r``. The gain ratio
    ``rho = (f(x) - f(x + d)) / (0.5 d^T (mu d - J^T r))`` decides: a step with
    ``rho > 0`` is accepted and ``mu`` shrinks by ``max(1/3, 1 - (2 rho - 1)^3)``;
    otherwise the step is rejected and ``mu`` grows by ``nu`` (doubling each time).
    The first ``mu`` is ``damping_parameter * max diag(J^T J)``.

    With ``geodesic=True`` the step adds half the geodesic acceleration (Transtrum and
    Sethna): with the velocity ``v = -(J^T J + mu I)^{-1} J^T r`` and the second
    directional derivative ``r_vv = d^2/dt^2 r(x + t v)`` at ``t = 0`` (two nested JVPs),
    the acceleration is ``a = -(J^T J + mu I)^{-1} J^T r_vv`` and the trial step is
    ``d = v + a / 2``. A step whose ratio ``||a|| / ||v||`` exceeds
    ``contribution_ratio_threshold`` is rejected like one with ``rho <= 0`` (the
    second-order model is not trusted there), as in jaxopt. On problems whose residual
    curves strongly along the Gauss-Newton direction (narrow curved valleys) this needs
    fewer iterations; each iteration costs one more linear solve and two JVPs.

    Args:
      residual_fun: ``r(params, *args, **kwargs)`` (or ``(r, aux)`` with ``has_aux``).
      maxiter: maximum iterations.
      damping_parameter: initial damping relative to ``max diag(J^T J)`` (may be traced).
      stop_criterion: ``"grad-l2-norm"`` (stop when ``||J^T r|| <= tol``; the only
        criterion carried over).
      tol: tolerance on ``||J^T r||``.
      xtol, gtol: accepted for jaxopt compatibility (they belong to the Madsen-Nielsen
        criterion, not carried over).
      geodesic: add the geodesic acceleration to each step (see above).
      contribution_ratio_threshold: largest accepted ``||a|| / ||v||`` with ``geodesic``
        (default 0.75, jaxopt's value; may be traced).
      solver: ``"cholesky"`` or ``"inv"`` (dense, on the materialized Jacobian), or a
        matrix-free linear solver ``solve(matvec, b)`` such as
        :func:`jaxopt_lab.linalg.linear_solve.solve_cg` (default).
      jac_fun: optional ``jac_fun(params, *args, **kwargs)`` returning the dense
        Jacobian (1-D params only); implies the dense path.
      materialize_jac: build the dense Jacobian with ``jax.jacfwd`` and use Cholesky.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, LevenbergMarquardtState)``.

    References:
      Levenberg, "A method for the solution of certain non-linear problems in least
      squares", 1944; Marquardt, "An algorithm for least-squares estimation of
      nonlinear parameters", 1963; Madsen, Nielsen and Tingleff, "Methods for
      Non-Linear Least Squares Problems", 2004 (section 3.2); Transtrum and Sethna,
      "Improvements to the Levenberg-Marquardt algorithm for nonlinear least-squares
      minimization", 2012 (arXiv:1201.5885).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "residual_fun", "maxiter", "damping_parameter", "stop_criterion", "tol", "xtol", "gtol",
        "solver", "geodesic", "verbose", "jac_fun", "materialize_jac", "implicit_diff",
        "implicit_diff_solve", "has_aux", "jit", "unroll",
    )

    _: dataclasses.KW_ONLY
    maxiter: int = 30
    damping_parameter: float = 1e-6
    stop_criterion: str = "grad-l2-norm"
    tol: float = 1e-3
    xtol: float = 1e-3
    gtol: float = 1e-3
    solver: str | Callable = ls.solve_cg
    geodesic: bool = False
    contribution_ratio_threshold: float = 0.75
    jac_fun: Callable | None = None
    materialize_jac: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_positive(self.damping_parameter, "damping_parameter")
        if self.stop_criterion != "grad-l2-norm":
            raise ValueError("`stop_criterion` must be 'grad-l2-norm' (the Madsen-Nielsen "
                             f"criterion is not carried over), got {self.stop_criterion!r}.")
        check_positive(self.contribution_ratio_threshold, "contribution_ratio_threshold")
        if not callable(self.solver) and self.solver not in ("cholesky", "inv"):
            raise ValueError(f"`solver` must be 'cholesky', 'inv' or a callable, got {self.solver!r}.")
        if self.jac_fun is not None:
            check_callable(self.jac_fun, "jac_fun")

    def _dense(self) -> bool:
        return self.materialize_jac or self.jac_fun is not None or not callable(self.solver)

    def _eval(self, params, args, kwargs):
        """Residual, aux, ``J^T r`` and a damped solve ``(mu, b) -> (J^T J + mu I)^{-1} b``."""
        if not self._dense():
            r, aux, jvp, vjp = self._linearize(params, args, kwargs)
            diag_max = None

            # Unrolling: the library's CG iterates in a masked scan (reverse-mode derivatives).
            base = getattr(self.solver, "func", self.solver)  # functools.partial
            unroll = self._unrolled() and base in (ls.solve_cg, ls.solve_normal_cg)
            extra = {"unroll": True} if unroll else {}

            def solve(mu, b):
                return self.solver(lambda v: tu.tree_add_scalar_mul(vjp(jvp(v)), mu, v), b, **extra)

            return r, aux, vjp(r), solve, diag_max, vjp
        f = lambda p: self.residual_fun(p, *args, **kwargs)
        out = f(params)
        r, aux = out if self.has_aux else (out, None)
        if self.jac_fun is not None:
            J, unravel = jnp.asarray(self.jac_fun(params, *args, **kwargs)), lambda v: v
        else:
            J, unravel = _dense_jacobian(lambda p: f(p)[0] if self.has_aux else f(p), params)
        rflat = ravel_pytree(r)[0]
        JtJ = J.T @ J
        eye = jnp.eye(JtJ.shape[0], dtype=JtJ.dtype)

        def solve(mu, b):
            M = JtJ + mu * eye
            bflat = ravel_pytree(b)[0]
            if self.solver == "inv":
                return unravel(jnp.linalg.inv(M) @ bflat)
            return unravel(jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(M), bflat))

        jt = lambda u: unravel(J.T @ ravel_pytree(u)[0])
        return r, aux, unravel(J.T @ rflat), solve, jnp.max(jnp.diag(JtJ)), jt

    def init_state(self, init_params, *args, **kwargs) -> LevenbergMarquardtState:
        """Evaluate the residual and choose the first damping.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``residual_fun``.

        Returns:
          A :class:`LevenbergMarquardtState`.
        """
        r, aux, g, _, diag_max, _ = self._eval(init_params, args, kwargs)
        if diag_max is None:
            # max diag(J^T J) = max_i ||J e_i||^2, from the columns of J.
            f = lambda p: self.residual_fun(p, *args, **kwargs)
            f = (lambda p, f=f: f(p)[0]) if self.has_aux else f
            J, _ = _dense_jacobian(f, init_params)
            diag_max = jnp.max(jnp.sum(J * J, axis=0))
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(r))
        return LevenbergMarquardtState(
            iter_num=jnp.asarray(0, jnp.int32),
            damping_factor=(self.damping_parameter * diag_max).astype(dtype),
            increase_factor=jnp.asarray(2.0, dtype), residual=r,
            value=half_squared_norm(r, dtype),
            delta=tu.tree_zeros_like(init_params), error=tu.tree_l2_norm(g).astype(dtype),
            gradient=g, aux=aux, num_fun_eval=jnp.asarray(1, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: LevenbergMarquardtState, *args, **kwargs) -> OptStep:
        """One damped step, accepted or rejected by the gain ratio.

        Args:
          params: current point.
          state: current :class:`LevenbergMarquardtState`.
          *args, **kwargs: passed to ``residual_fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        mu, nu = state.damping_factor, state.increase_factor
        _, _, g, solve, _, jt = self._eval(params, args, kwargs)
        delta = solve(mu, tu.tree_negative(g))
        trusted = jnp.asarray(True)
        if self.geodesic:
            accel = solve(mu, tu.tree_negative(jt(self._second_directional(params, delta, args, kwargs))))
            # ||a|| / ||v|| <= threshold, written without the division (v = 0 at a solution).
            trusted = tu.tree_l2_norm(accel) <= self.contribution_ratio_threshold * tu.tree_l2_norm(delta)
            delta = tu.tree_add_scalar_mul(delta, 0.5, accel)
        trial = tu.tree_add(params, delta)
        r_t, aux_t, g_t, _, _, _ = self._eval(trial, args, kwargs)
        value_t = half_squared_norm(r_t, state.value.dtype)
        predicted = 0.5 * tu.tree_vdot(delta, tu.tree_sub(tu.tree_scalar_mul(mu, delta), g))
        rho = (state.value - value_t) / jnp.where(predicted > 0, predicted, 1.0)
        accept = (predicted > 0) & (rho > 0) & jnp.isfinite(value_t) & trusted
        shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
        new_mu = jnp.where(accept, mu * shrink, mu * nu).astype(mu.dtype)
        new_nu = jnp.where(accept, 2.0, 2.0 * nu).astype(nu.dtype)
        pick = lambda a, b: tu.tree_where(accept, a, b)
        new_state = LevenbergMarquardtState(
            iter_num=state.iter_num + 1, damping_factor=new_mu, increase_factor=new_nu,
            residual=pick(r_t, state.residual), value=jnp.where(accept, value_t, state.value),
            delta=delta,
            error=jnp.where(accept, tu.tree_l2_norm(g_t).astype(state.error.dtype), state.error),
            gradient=pick(g_t, state.gradient), aux=pick(aux_t, state.aux),
            num_fun_eval=state.num_fun_eval + 1, status=state.status,
        )
        return OptStep(pick(trial, params), new_state)

    def _second_directional(self, params, v, args, kwargs):
        """``r_vv = d^2/dt^2 r(params + t v)`` at ``t = 0`` (a pytree like the residuals)."""
        if self.jac_fun is not None:
            vflat = ravel_pytree(v)[0]
            jv = lambda p: jnp.asarray(self.jac_fun(p, *args, **kwargs)) @ vflat
            return jax.jvp(jv, (params,), (v,))[1]
        f = lambda p: self.residual_fun(p, *args, **kwargs)
        f = (lambda p, f=f: f(p)[0]) if self.has_aux else f
        jv = lambda p: jax.jvp(f, (p,), (v,))[1]
        return jax.jvp(jv, (params,), (v,))[1]
