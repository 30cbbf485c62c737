"""Broyden's (good) quasi-Newton method for root finding."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive, uses_line_search
from jaxopt_lab.core.control import bounded_while_loop
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.fixed_point_root._step import split_aux


class BroydenState(NamedTuple):
    """State of :class:`Broyden`.

    Attributes:
      iter_num: iterations done.
      residual: ``F(params)`` (a pytree like params).
      error: ``||F(params)||``.
      stepsize: last accepted step.
      inv_jacobian: dense ``(n, n)`` approximation of ``(dF/dx)^{-1}`` (raveled params).
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last backtracking found no decrease.
      num_fun_eval: evaluations of ``F``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    residual: Any
    error: jax.Array
    stepsize: jax.Array
    inv_jacobian: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class Broyden(IterativeSolver):
    """Broyden's good method for ``F(x) = 0``, in inverse form.

    The inverse Jacobian estimate ``H`` (started at ``gamma * I``) gets the
    rank-one update ``H += (s - H y) s^T H / (s^T H y)`` after each step
    ``s = x+ - x``, ``y = F(x+) - F(x)`` (Sherman-Morrison form of Broyden's update).
    Steps are ``x+ = x - t H F(x)``, with ``t`` from backtracking on ``||F||``
    (``||F(x + t d)|| <= (1 - c t) ||F(x)||``, ``t`` shrunk by ``decrease_factor``)
    or a fixed positive ``stepsize``. ``H`` is dense over the raveled params, so
    this suits problems up to a few thousand unknowns.

    Args:
      fun: ``F(params, *args, **kwargs)`` returning a pytree like ``params`` (or
        ``(F, aux)`` with ``has_aux``).
      maxiter: maximum iterations.
      tol: stop when ``||F(x)|| <= tol``.
      stepsize: ``<= 0`` backtracking (default), ``> 0`` a fixed step.
      linesearch: ``"backtracking"`` (the only line search carried over).
      stop_if_linesearch_fails: end with ``Status.LINESEARCH_FAILED`` when
        backtracking finds no decrease (otherwise the smallest step is taken).
      condition, increase_factor: accepted for jaxopt compatibility (the only
        condition is the decrease of ``||F||`` above; the step never increases).
      min_stepsize: smallest step taken when backtracking fails.
      c: sufficient-decrease constant.
      maxls: maximum backtracking trials per iteration (static).
      decrease_factor: backtracking shrink factor.
      max_stepsize: first trial step.
      gamma: scale of the initial inverse Jacobian ``gamma * I`` (may be negative).
      history_size: accepted for jaxopt compatibility; the estimate is dense.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver` (implicit solve default:
        :func:`jaxopt_lab.linalg.linear_solve.solve_normal_cg`).

    Returns:
      ``run`` returns ``OptStep(params, BroydenState)``.

    References:
      Broyden, "A class of methods for solving nonlinear simultaneous equations",
      1965; Nocedal and Wright, "Numerical Optimization", 2006, section 11.1.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "has_aux", "maxiter", "tol", "stepsize", "linesearch", "stop_if_linesearch_fails",
        "condition", "maxls", "decrease_factor", "increase_factor", "max_stepsize", "min_stepsize",
        "history_size", "gamma", "implicit_diff", "implicit_diff_solve", "jit", "unroll", "verbose",
    )

    fun: Callable
    _: dataclasses.KW_ONLY
    has_aux: bool = False
    maxiter: int = 500
    tol: float = 1e-3
    stepsize: float = 0.0
    linesearch: str = "backtracking"
    stop_if_linesearch_fails: bool = False
    condition: str = "wolfe"
    maxls: int = 15
    decrease_factor: float = 0.8
    increase_factor: float = 1.5
    max_stepsize: float = 1.0
    min_stepsize: float = 1e-6
    c: float = 1e-4
    history_size: int | None = None
    gamma: float = 1.0

    def _static_option(self, name, value) -> bool:
        return name == "stepsize" and uses_line_search(value)

    def __post_init__(self):
        super().__post_init__()
        if self.linesearch != "backtracking":
            raise ValueError(f"`linesearch` must be 'backtracking', got {self.linesearch!r}.")
        check_int(self.maxls, "maxls", minimum=1)
        check_positive(self.decrease_factor, "decrease_factor")
        check_positive(self.max_stepsize, "max_stepsize")

    def _implicit_solve(self) -> Callable:
        return self.implicit_diff_solve or ls.solve_normal_cg

    def _fixed_step(self) -> bool:
        return not uses_line_search(self.stepsize)

    def init_state(self, init_params, *args, **kwargs) -> BroydenState:
        """Evaluate ``F(init_params)`` and set ``H = gamma I``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`BroydenState`.
        """
        value, aux = split_aux(self.fun(init_params, *args, **kwargs), self.has_aux)
        flat = ravel_pytree(init_params)[0]
        n, dtype = flat.shape[0], flat.dtype
        return BroydenState(
            iter_num=jnp.asarray(0, jnp.int32), residual=value,
            error=tu.tree_l2_norm(value).astype(dtype), stepsize=jnp.asarray(1.0, dtype),
            inv_jacobian=(self.gamma * jnp.eye(n, dtype=dtype)).astype(dtype), aux=aux,
            failed_linesearch=jnp.asarray(False), num_fun_eval=jnp.asarray(1, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: BroydenState, *args, **kwargs) -> OptStep:
        """One Broyden step.

        Args:
          params: current point.
          state: current :class:`BroydenState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the step.
        """
        x, unravel = ravel_pytree(params)
        fx = ravel_pytree(state.residual)[0]
        H = state.inv_jacobian
        d = -(H @ fx)
        F = lambda v: split_aux(self.fun(unravel(v), *args, **kwargs), self.has_aux)
        norm0 = state.error

        if self._fixed_step():
            t = jnp.asarray(self.stepsize, x.dtype)
            value, aux = F(x + t * d)
            failed, nev = jnp.asarray(False), jnp.asarray(1, jnp.int32)
        else:
            def cond(c):
                return ~c[3] & (c[4] < self.maxls)

            def body(c):
                t, _, _, _, k = c
                t = jnp.where(k == 0, t, jnp.maximum(t * self.decrease_factor, self.min_stepsize))
                val, aux = F(x + t * d)
                nrm = tu.tree_l2_norm(val)
                ok = jnp.isfinite(nrm) & (nrm <= (1 - self.c * t) * norm0)
                return t, val, aux, ok, k + 1

            val0, aux0 = jax.eval_shape(lambda: F(x))
            zeros = lambda s: jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), s)
            init = (jnp.asarray(self.max_stepsize, x.dtype), zeros(val0), zeros(aux0),
                    jnp.asarray(False), jnp.asarray(0, jnp.int32))
            t, value, aux, ok, nev = bounded_while_loop(cond, body, init, self.maxls,
                                                        unroll=self._unrolled())
            failed = ~ok
        s = t * d
        y = ravel_pytree(value)[0] - fx
        Hy = H @ y
        sHy = s @ Hy
        good = jnp.abs(sHy) > jnp.finfo(x.dtype).eps * jnp.linalg.norm(s) * jnp.linalg.norm(Hy)
        H_new = H + jnp.outer(s - Hy, s @ H) / jnp.where(good, sHy, 1.0)
        status = jnp.where(failed & self.stop_if_linesearch_fails, Status.LINESEARCH_FAILED,
                           Status.RUNNING)
        new_state = BroydenState(
            iter_num=state.iter_num + 1, residual=value,
            error=tu.tree_l2_norm(value).astype(x.dtype), stepsize=t,
            inv_jacobian=jnp.where(good, H_new, H), aux=aux, failed_linesearch=failed,
            num_fun_eval=state.num_fun_eval + nev, status=status.astype(jnp.int32),
        )
        return OptStep(unravel(x + s), new_state)

    def optimality_fun(self, params, *args, **kwargs):
        """``F(params)``.

        Args:
          params: a point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A pytree like ``params``.
        """
        return split_aux(self.fun(params, *args, **kwargs), self.has_aux)[0]
