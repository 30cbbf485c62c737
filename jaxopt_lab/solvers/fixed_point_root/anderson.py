"""Anderson acceleration of fixed-point maps, and of any solver's iterations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.fixed_point_root._step import FixedPointSolver, params_dtype


def _stack(params, m):
    return jax.tree_util.tree_map(lambda x: jnp.zeros((m,) + jnp.shape(x), jnp.result_type(x)), params)


def _put(hist, i, value):
    return jax.tree_util.tree_map(lambda h, v: h.at[i].set(v.astype(h.dtype)), hist, value)


def _check_mixing_options(solver) -> None:
    """The checks of the Anderson options shared by both solvers."""
    check_int(solver.history_size, "history_size", minimum=1)
    check_int(solver.mixing_frequency, "mixing_frequency", minimum=1)
    check_positive(solver.beta, "beta")
    check_positive(solver.ridge, "ridge", allow_zero=True)


def anderson_mix(xs, fs, valid, beta, ridge):
    """Type-II Anderson mixing of a history of points and their images.

    Solves ``min_a ||sum_i a_i (f_i - x_i)||^2 + ridge s ||a||^2`` with ``sum_i a_i = 1``
    (``s`` the mean squared residual norm, making the ridge scale-free)
    over the valid slots and returns ``sum_i a_i (beta f_i + (1 - beta) x_i)``.

    Args:
      xs, fs: pytrees whose leaves are stacked along a leading axis of size ``m``.
      valid: boolean ``(m,)`` mask of the filled slots.
      beta: mixing parameter.
      ridge: Tikhonov regularization of the Gram system.

    Returns:
      The mixed point, a pytree like one slot of ``xs``.
    """
    m = valid.shape[0]
    g = jax.tree_util.tree_map(lambda f, x: (f - x).reshape(m, -1), fs, xs)
    gram = sum(jnp.real(jnp.conj(a) @ a.T) for a in jax.tree_util.tree_leaves(g))
    both = valid[:, None] & valid[None, :]
    eye = jnp.eye(m, dtype=gram.dtype)
    # The ridge is relative to the residuals' scale (mean squared norm), so the mixing
    # does not degrade to plain averaging as the residuals shrink.
    scale = jnp.sum(jnp.where(valid, jnp.diag(gram), 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    scale = jnp.where(scale > 0, scale, 1.0)
    H = jnp.where(both, gram, 0.0) + ridge * scale * eye + jnp.where(valid, 0.0, 1.0) * eye
    alpha = jnp.linalg.solve(H, valid.astype(gram.dtype))
    alpha = alpha / jnp.sum(alpha)
    mix = lambda f, x: jnp.tensordot(alpha.astype(f.dtype), beta * f + (1 - beta) * x, axes=1)
    return jax.tree_util.tree_map(mix, fs, xs)


class AndersonState(NamedTuple):
    """State of :class:`AndersonAcceleration`.

    Attributes:
      iter_num: iterations done.
      error: ``||T(params) - params||``.
      params_history, map_history: last ``history_size`` points and their images.
      aux: auxiliary output of ``fixed_point_fun``.
      num_fun_eval: evaluations of the map.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    params_history: Any
    map_history: Any
    aux: Any
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class AndersonAcceleration(FixedPointSolver):
    """Anderson acceleration (type II) of a fixed-point iteration ``x = T(x)``.

    Every ``mixing_frequency`` iterations the next point is the affine combination
    of the last ``history_size`` images ``T(x_i)`` whose residuals ``T(x_i) - x_i``
    combine to the smallest norm (a ridge-regularized least-squares problem with
    the weights summing to one); other iterations apply ``T`` once.

    Args:
      fixed_point_fun: ``T(params, *args, **kwargs)`` (or ``(params, aux)``).
      history_size: number of stored points (static).
      mixing_frequency: mix every this many iterations (static).
      beta: damping, the mix uses ``beta T(x_i) + (1 - beta) x_i`` (may be traced).
      maxiter: maximum iterations.
      tol: stop when ``||T(x) - x|| <= tol``.
      ridge: regularization of the mixing system (may be traced).
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default:
        :func:`jaxopt_lab.linalg.linear_solve.solve_normal_cg`).

    Returns:
      ``run`` returns ``OptStep(params, AndersonState)``.

    References:
      Anderson, "Iterative procedures for nonlinear integral equations", 1965;
      Walker and Ni, "Anderson acceleration for fixed-point iterations", 2011.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fixed_point_fun", "history_size", "mixing_frequency", "beta", "maxiter", "tol", "ridge",
        "has_aux", "verbose", "implicit_diff", "implicit_diff_solve", "jit", "unroll",
    )

    _supports_half = False  # the mixing weights come from a LAPACK solve (no 16-bit kernels)

    fixed_point_fun: Callable
    _: dataclasses.KW_ONLY
    history_size: int = 5
    mixing_frequency: int = 1
    beta: float = 1.0
    ridge: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        _check_mixing_options(self)

    def init_state(self, init_params, *args, **kwargs) -> AndersonState:
        """Evaluate ``T(init_params)`` and start the history.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fixed_point_fun``.

        Returns:
          An :class:`AndersonState`.
        """
        m = self.history_size
        f0, aux = self._map(init_params, args, kwargs)
        dtype = params_dtype(init_params)
        return AndersonState(
            iter_num=jnp.asarray(0, jnp.int32),
            error=tu.tree_l2_norm(tu.tree_sub(f0, init_params)).astype(dtype),
            params_history=_put(_stack(init_params, m), 0, init_params),
            map_history=_put(_stack(init_params, m), 0, f0), aux=aux,
            num_fun_eval=jnp.asarray(1, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: AndersonState, *args, **kwargs) -> OptStep:
        """One accelerated step.

        Args:
          params: current point (the newest entry of the history).
          state: current :class:`AndersonState`.
          *args, **kwargs: passed to ``fixed_point_fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        m, k = self.history_size, state.iter_num
        valid = jnp.arange(m) < jnp.minimum(k + 1, m)
        mixed = anderson_mix(state.params_history, state.map_history, valid, self.beta, self.ridge)
        plain = jax.tree_util.tree_map(lambda h: h[k % m], state.map_history)
        new_params = tu.tree_where(k % self.mixing_frequency == 0, mixed, plain)
        f, aux = self._map(new_params, args, kwargs)
        slot = (k + 1) % m
        new_state = AndersonState(
            iter_num=k + 1,
            error=tu.tree_l2_norm(tu.tree_sub(f, new_params)).astype(state.error.dtype),
            params_history=_put(state.params_history, slot, new_params),
            map_history=_put(state.map_history, slot, f), aux=aux,
            num_fun_eval=state.num_fun_eval + 1, status=state.status,
        )
        return OptStep(new_params, new_state)

class AndersonWrapperState(NamedTuple):
    """State of :class:`AndersonWrapper`.

    Attributes:
      iter_num: iterations done.
      error: the wrapped solver's error.
      params_history, map_history: points and the wrapped solver's images of them.
      inner_state: state of the wrapped solver.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    params_history: Any
    map_history: Any
    inner_state: Any
    status: jax.Array


@dataclasses.dataclass(eq=False)
class AndersonWrapper(IterativeSolver):
    """Anderson acceleration of another solver, its ``update`` taken as the map.

    The mixed point replaces the wrapped solver's iterate and the wrapped solver's state
    is restarted there (``init_state``), as in jaxopt, so solvers with momentum
    (accelerated ``GradientDescent``, ``OptaxSolver`` with momentum) can be wrapped.

    Args:
      solver: a jaxopt_lab solver (its ``update`` is the fixed-point map).
      history_size: number of stored points (static).
      mixing_frequency: mix every this many iterations (None: every iteration).
      beta: damping of the mix (may be traced).
      ridge: regularization of the mixing system (may be traced).
      maxiter, tol: default to the wrapped solver's.
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`; the optimality condition is the
        wrapped solver's.

    Returns:
      ``run`` returns ``OptStep(params, AndersonWrapperState)``.

    References:
      Anderson, "Iterative procedures for nonlinear integral equations", 1965;
      Walker and Ni, "Anderson acceleration for fixed-point iterations", 2011.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "solver", "history_size", "mixing_frequency", "beta", "ridge", "verbose", "implicit_diff",
        "implicit_diff_solve", "jit", "unroll",
    )

    _supports_half = False  # the mixing weights come from a LAPACK solve (no 16-bit kernels)

    solver: Any
    _: dataclasses.KW_ONLY
    history_size: int = 5
    mixing_frequency: int | None = None
    beta: float = 1.0
    ridge: float = 1e-5
    maxiter: int | None = None
    tol: float | None = None

    def __post_init__(self):
        if not isinstance(self.solver, IterativeSolver):
            raise TypeError(f"`solver` must be a jaxopt_lab solver, got {type(self.solver).__name__}.")
        if self.maxiter is None:
            self.maxiter = self.solver.maxiter
        if self.tol is None:
            self.tol = self.solver.tol
        if self.mixing_frequency is None:
            self.mixing_frequency = 1
        super().__post_init__()
        _check_mixing_options(self)

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or self.solver._implicit_solve()

    def init_state(self, init_params, *args, **kwargs) -> AndersonWrapperState:
        """Initialize the wrapped solver and an empty history.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to the wrapped solver.

        Returns:
          An :class:`AndersonWrapperState`.
        """
        inner = self.solver.init_state(init_params, *args, **kwargs)
        m = self.history_size
        return AndersonWrapperState(
            iter_num=jnp.asarray(0, jnp.int32), error=jnp.asarray(inner.error),
            params_history=_stack(init_params, m), map_history=_stack(init_params, m),
            inner_state=inner, status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: AndersonWrapperState, *args, **kwargs) -> OptStep:
        """One step of the wrapped solver followed by Anderson mixing.

        Args:
          params: current point.
          state: current :class:`AndersonWrapperState`.
          *args, **kwargs: passed to the wrapped solver.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        m, k = self.history_size, state.iter_num
        image, inner = self.solver.update(params, state.inner_state, *args, **kwargs)
        xs = _put(state.params_history, k % m, params)
        fs = _put(state.map_history, k % m, image)
        valid = jnp.arange(m) < jnp.minimum(k + 1, m)
        mixed = anderson_mix(xs, fs, valid, self.beta, self.ridge)
        mix = (k + 1) % self.mixing_frequency == 0
        new_params = tu.tree_where(mix, mixed, image)
        error = jnp.asarray(inner.error).astype(state.error.dtype)
        # The wrapped state belongs to ``image``: after a mix it is restarted at the mixed
        # point (as jaxopt does), so momentum or optimizer moments never point from ``image``
        # while the iterate sits elsewhere (which diverges, e.g. for accelerated GD).
        restart = lambda: self.solver.init_state(new_params, *args, **kwargs)
        if self.mixing_frequency == 1:
            inner = restart()
        else:
            inner = jax.lax.cond(mix, restart, lambda: inner)
        new_state = AndersonWrapperState(
            iter_num=k + 1, error=error,
            params_history=xs, map_history=fs, inner_state=inner, status=state.status,
        )
        return OptStep(new_params, new_state)

    def optimality_fun(self, params, *args, **kwargs):
        """The wrapped solver's optimality function.

        Args:
          params: a point.
          *args, **kwargs: passed to the wrapped solver.

        Returns:
          A pytree like ``params``.
        """
        return self.solver.optimality_fun(params, *args, **kwargs)
