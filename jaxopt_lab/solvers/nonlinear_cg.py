"""Nonlinear conjugate gradient with the classical beta rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab import base
from jaxopt_lab import tree_util as tu
from jaxopt_lab.solvers import _linesearch

_METHODS = ("polak-ribiere", "fletcher-reeves", "hestenes-stiefel", "dai-yuan")


class NonlinearCGState(NamedTuple):
    """State of :class:`NonlinearCG`.

    Attributes:
      iter_num: iterations done.
      stepsize: last accepted step.
      error: gradient norm.
      value: objective at the current params.
      grad: gradient at the current params.
      descent_direction: the current search direction.
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval, num_linesearch_iter: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    stepsize: jax.Array
    error: jax.Array
    value: jax.Array
    grad: Any
    descent_direction: Any
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class NonlinearCG(_linesearch.LineSearchOptions, base.IterativeSolver):
    """Nonlinear conjugate gradient: ``d+ = -g+ + beta d`` along a strong-Wolfe search.

    Beta rules (``y = g+ - g``): Fletcher-Reeves ``|g+|^2 / |g|^2``;
    Polak-Ribiere(+) ``max(<g+, y> / |g|^2, 0)``; Hestenes-Stiefel
    ``<g+, y> / <d, y>``; Dai-Yuan ``|g+|^2 / <d, y>``. A direction that is not a
    descent one, or a failed line search, restarts along ``-g+``; two failures in a
    row set ``LINESEARCH_FAILED``.

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.
      method: one of ``"polak-ribiere"`` (default), ``"fletcher-reeves"``,
        ``"hestenes-stiefel"``, ``"dai-yuan"``.
      linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize, stepsize: the line-search options of
        :class:`jaxopt_lab.solvers._linesearch.LineSearchOptions` (default strong Wolfe,
        ``c2 = 0.9`` as jaxopt; ``0.1`` gives more exact searches but can fail near the
        optimum where ``f`` is flat to rounding; ``stepsize > 0`` fixes the step).

    Returns:
      ``run`` returns an ``OptStep(params, NonlinearCGState)``.

    References:
      Hager and Zhang, "A survey of nonlinear conjugate gradient methods", Pacific
      J. Optim., 2006; Dai and Yuan, "A nonlinear conjugate gradient method with a
      strong global convergence property", SIAM J. Optim., 1999.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 100
    tol: float = 1e-3
    method: str = "polak-ribiere"
    decrease_factor: float | None = 0.8
    increase_factor: float = 1.2

    def __post_init__(self):
        super().__post_init__()
        if self.method not in _METHODS:
            raise ValueError(f"`method` must be one of {_METHODS}, got {self.method!r}.")

    def init_state(self, init_params, *args, **kwargs) -> NonlinearCGState:
        """Evaluate ``fun``; the first direction is ``-g``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`NonlinearCGState`.
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        one = jnp.asarray(1, jnp.int32)
        return NonlinearCGState(
            iter_num=jnp.asarray(0, jnp.int32), stepsize=jnp.asarray(1.0, dtype),
            error=tu.tree_l2_norm(grad).astype(dtype), value=value, grad=grad,
            descent_direction=tu.tree_negative(grad), aux=aux, failed_linesearch=jnp.asarray(False),
            num_fun_eval=one, num_grad_eval=one, num_linesearch_iter=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(base.Status.RUNNING, jnp.int32),
        )

    def _beta(self, g_new, g, d):
        y = tu.tree_sub(g_new, g)
        gg = tu.tree_vdot(g, g)
        dy = tu.tree_vdot(d, y)
        safe = lambda v: jnp.where(v != 0, v, 1.0)
        if self.method == "fletcher-reeves":
            return tu.tree_vdot(g_new, g_new) / safe(gg)
        if self.method == "polak-ribiere":
            return jnp.maximum(tu.tree_vdot(g_new, y) / safe(gg), 0.0)
        if self.method == "hestenes-stiefel":
            return jnp.maximum(tu.tree_vdot(g_new, y) / safe(dy), 0.0)
        return tu.tree_vdot(g_new, g_new) / safe(dy)

    def update(self, params, state: NonlinearCGState, *args, **kwargs) -> base.OptStep:
        """One conjugate-gradient iteration.

        Args:
          params: current point.
          state: current :class:`NonlinearCGState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        vg = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)
        dtype = jnp.result_type(state.value)
        d = state.descent_direction
        dnorm = tu.tree_l2_norm(d)
        # First trial: the previous step scaled by the slope ratio (Nocedal-Wright eq. 3.60).
        init_t = jnp.where(state.iter_num == 0, jnp.minimum(1.0, 1.0 / jnp.maximum(dnorm, 1e-30)),
                           state.stepsize * 1.5)
        ls = self._line_search(vg, params, state.value, state.grad, d, init_t, state.aux)
        beta = self._beta(ls.grad, state.grad, d)
        new_d = tu.tree_add_scalar_mul(tu.tree_negative(ls.grad), beta, d)
        descent = tu.tree_vdot(new_d, ls.grad) < 0
        # Restart along -g after a non-descent direction or a failed search; a search
        # failing along -g right after a restart is a real failure.
        new_d = tu.tree_where(descent & ~ls.failed, new_d, tu.tree_negative(ls.grad))
        really_failed = ls.failed & state.failed_linesearch
        new_state = NonlinearCGState(
            iter_num=state.iter_num + 1, stepsize=jnp.where(ls.failed, state.stepsize, ls.stepsize),
            error=tu.tree_l2_norm(ls.grad).astype(dtype), value=jnp.asarray(ls.value, dtype),
            grad=ls.grad, descent_direction=new_d, aux=ls.aux, failed_linesearch=ls.failed,
            num_fun_eval=state.num_fun_eval + ls.num_evals, num_grad_eval=state.num_grad_eval + ls.num_evals,
            num_linesearch_iter=state.num_linesearch_iter + ls.num_evals,
            status=jnp.where(really_failed, base.Status.LINESEARCH_FAILED,
                             base.Status.RUNNING).astype(jnp.int32),
        )
        return base.OptStep(ls.params, new_state)
