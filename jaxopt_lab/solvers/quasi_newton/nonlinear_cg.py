"""Nonlinear conjugate gradient with the classical beta rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch

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
      prev_value: objective at the previous iterate (for the first trial step).
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
    prev_value: jax.Array


@dataclasses.dataclass(eq=False)
class NonlinearCG(_linesearch.LineSearchOptions, IterativeSolver):
    """Nonlinear conjugate gradient: ``d+ = -g+ + beta d`` along a strong-Wolfe search.

    Beta rules (``y = g+ - g``): Fletcher-Reeves ``|g+|^2 / |g|^2``;
    Polak-Ribiere(+) ``max(<g+, y> / |g|^2, 0)``; Hestenes-Stiefel
    ``<g+, y> / <d, y>``; Dai-Yuan ``|g+|^2 / <d, y>``. A new direction that is not a
    sufficient descent one (``<d+, g+> > -0.01 |g+|^2``) restarts along ``-g+``; a
    line search failing along the CG direction is retried at once along ``-g``, and
    only a failure of that one ends the solve: ``STALLED`` when no decrease is
    representable in the dtype (below ``tol``'s reach), ``NONFINITE`` when the
    gradient was NaN where ``f`` was finite, ``LINESEARCH_FAILED`` otherwise.

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.
      method: one of ``"polak-ribiere"`` (default), ``"fletcher-reeves"``,
        ``"hestenes-stiefel"``, ``"dai-yuan"``.
      linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize, stepsize: the line-search options of
        :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions` (default strong Wolfe
        with SciPy's CG constants ``c1 = 1e-4``, ``c2 = 0.4``: CG needs searches more
        exact than quasi-Newton methods; ``stepsize > 0`` fixes the step).

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
    c2: float = 0.4

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
            status=jnp.asarray(Status.RUNNING, jnp.int32),
            prev_value=jnp.asarray(jnp.nan, dtype),
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

    def update(self, params, state: NonlinearCGState, *args, **kwargs) -> OptStep:
        """One conjugate-gradient iteration.

        A state whose status is neither ``RUNNING`` nor ``MAX_ITER`` is returned
        unchanged with no evaluation (a stopped lane costs nothing under ``vmap``).

        Args:
          params: current point.
          state: current :class:`NonlinearCGState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``.
        """
        vg = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)
        dtype = jnp.result_type(state.value)
        stopped = _linesearch.stopped(state.status)
        d = state.descent_direction
        slope = tu.tree_vdot(state.grad, d).astype(dtype)
        # First trial: the step at which a quadratic with the last decrease f_{k-1} - f_k
        # and the current slope is minimal (Nocedal-Wright eq. 3.60), at most 1; on the
        # first iteration 1 / ||d||.
        guess = 2.02 * (state.value - state.prev_value) / jnp.where(slope < 0, slope, -1.0)
        first = 1.0 / jnp.maximum(tu.tree_l2_norm(d).astype(dtype), jnp.finfo(dtype).tiny)
        init_t = jnp.minimum(1.0, jnp.where(jnp.isfinite(guess) & (guess > 0), guess, first))
        ls_d = self._line_search(vg, params, state.value, state.grad, d, init_t, state.aux, done=stopped)
        # A failed search along the CG direction is retried at once along -g (unless the
        # direction already was -g).
        neg_g = tu.tree_negative(state.grad)
        was_neg_g = tu.tree_vdot(tu.tree_sub(d, neg_g), tu.tree_sub(d, neg_g)) == 0
        retry = ls_d.failed & ~ls_d.nonfinite & ~stopped & ~was_neg_g
        if self._fixed_step():  # a fixed step never fails
            ls, evals = ls_d, ls_d.num_evals
        else:
            g_norm_inv = 1.0 / jnp.maximum(state.error, jnp.finfo(dtype).tiny)
            ls_g = self._line_search(vg, params, state.value, state.grad, neg_g,
                                     jnp.minimum(1.0, g_norm_inv), state.aux, done=~retry)
            ls, evals = _linesearch.select_result(retry, ls_g, ls_d), ls_d.num_evals + ls_g.num_evals
            d = tu.tree_where(retry, neg_g, d)
        beta = self._beta(ls.grad, state.grad, d)
        new_d = tu.tree_add_scalar_mul(tu.tree_negative(ls.grad), beta, d)
        # Restart along -g+ unless the new direction is a sufficient descent one, or when
        # successive gradients are far from orthogonal (Powell's test |<g+, g>| >= 0.2 |g+|^2).
        gnew2 = tu.tree_vdot(ls.grad, ls.grad)
        descent = tu.tree_vdot(new_d, ls.grad) <= -1e-2 * gnew2
        orthogonal = jnp.abs(tu.tree_vdot(ls.grad, state.grad)) < 0.2 * gnew2
        new_d = tu.tree_where(descent & orthogonal, new_d, tu.tree_negative(ls.grad))
        new_state = NonlinearCGState(
            iter_num=state.iter_num + 1, stepsize=jnp.where(ls.failed, state.stepsize, ls.stepsize),
            error=_linesearch.error_after(ls, dtype), value=jnp.asarray(ls.value, dtype),
            grad=ls.grad, descent_direction=new_d, aux=ls.aux, failed_linesearch=ls.failed,
            num_fun_eval=state.num_fun_eval + evals, num_grad_eval=state.num_grad_eval + evals,
            num_linesearch_iter=state.num_linesearch_iter + evals,
            status=_linesearch.failure_status(ls),
            prev_value=jnp.asarray(state.value, dtype),
        )
        return _linesearch.keep_if_stopped(stopped, params, state, ls.params, new_state)
