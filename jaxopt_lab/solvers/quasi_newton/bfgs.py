"""BFGS with a dense inverse-Hessian approximation and a strong-Wolfe line search."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.linesearch import functions as _linesearch


class BfgsState(NamedTuple):
    """State of :class:`BFGS`.

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      stepsize: last accepted step.
      error: gradient norm.
      H: dense inverse-Hessian approximation, shape ``(n, n)`` for ``n`` parameters.
      aux: auxiliary output of ``fun``.
      failed_linesearch: the last line search failed.
      num_fun_eval, num_grad_eval, num_linesearch_iter: evaluation counters.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    stepsize: jax.Array
    error: jax.Array
    H: jax.Array
    aux: Any
    failed_linesearch: jax.Array
    num_fun_eval: jax.Array
    num_grad_eval: jax.Array
    num_linesearch_iter: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class BFGS(_linesearch.LineSearchOptions, IterativeSolver):
    """The Broyden-Fletcher-Goldfarb-Shanno quasi-Newton method.

    Keeps a dense inverse-Hessian approximation ``H``, steps along ``-H g`` with a
    line search and updates ``H`` by the BFGS formula
    ``H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T`` (Nocedal and Wright,
    eq. 6.17), skipping pairs with ``<s, y> <= 0``. ``H`` is scaled by
    ``<s, y> / <y, y>`` before the first update (eq. 6.20).

    Args:
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad, has_aux: as in :class:`jaxopt_lab.LBFGS`.
      maxiter, tol: iteration cap; stop when the gradient norm is ``<= tol``.
      stepsize, linesearch, linesearch_init, condition, maxls, c1, c2, decrease_factor,
        increase_factor, max_stepsize, min_stepsize: the line-search options of
        :class:`jaxopt_lab.solvers.linesearch.functions.LineSearchOptions` (``stepsize > 0``
        fixes the step; the first trial step is 1, the quasi-Newton step).

    Returns:
      ``run`` returns an ``OptStep(params, BfgsState)``.

    References:
      Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, Algorithm 6.1;
      Fletcher, "A new approach to variable metric algorithms", 1970.
    """

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    maxiter: int = 500
    tol: float = 1e-3

    def init_state(self, init_params, *args, **kwargs) -> BfgsState:
        """Evaluate ``fun`` at ``init_params``; ``H`` starts as the identity.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A :class:`BfgsState`.
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        n = ravel_pytree(init_params)[0].shape[0]
        one = jnp.asarray(1, jnp.int32)
        return BfgsState(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=grad,
            stepsize=jnp.asarray(1.0, dtype), error=tu.tree_l2_norm(grad).astype(dtype),
            H=jnp.eye(n, dtype=dtype), aux=aux, failed_linesearch=jnp.asarray(False),
            num_fun_eval=one, num_grad_eval=one, num_linesearch_iter=jnp.asarray(0, jnp.int32),
            status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: BfgsState, *args, **kwargs) -> OptStep:
        """One BFGS iteration.

        Args:
          params: current point.
          state: current :class:`BfgsState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)``; a state whose status is neither ``RUNNING`` nor
          ``MAX_ITER`` comes back unchanged with no evaluation. A failed line search
          ends the solve: ``STALLED`` when no decrease is representable in the dtype,
          ``NONFINITE`` for a NaN gradient where ``f`` was finite, else
          ``LINESEARCH_FAILED``.
        """
        vg = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)
        g_flat, unravel = ravel_pytree(state.grad)
        dtype = state.H.dtype
        d_flat = -(state.H @ g_flat.astype(dtype))
        descent = jnp.dot(d_flat, g_flat) < 0
        d_flat = jnp.where(descent, d_flat, -g_flat)
        direction = unravel(d_flat.astype(g_flat.dtype))
        first = state.iter_num == 0
        init_t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.maximum(state.error, 1e-30)), 1.0)
        stopped = _linesearch.stopped(state.status)
        ls = self._line_search(vg, params, state.value, state.grad, direction, init_t, state.aux,
                               done=stopped)
        s = ravel_pytree(tu.tree_sub(ls.params, params))[0].astype(dtype)
        y = (ravel_pytree(ls.grad)[0] - g_flat).astype(dtype)
        sy, yy = jnp.dot(s, y), jnp.dot(y, y)
        good = (sy > jnp.finfo(dtype).eps * yy) & ~ls.failed
        rho = 1.0 / jnp.where(good, sy, 1.0)
        H0 = jnp.where(first, sy / jnp.where(good, yy, 1.0) * jnp.eye(s.shape[0], dtype=dtype), state.H)
        V = jnp.eye(s.shape[0], dtype=dtype) - rho * jnp.outer(s, y)
        H = jnp.where(good, V @ H0 @ V.T + rho * jnp.outer(s, s), state.H)
        new_state = BfgsState(
            iter_num=state.iter_num + 1, value=jnp.asarray(ls.value, dtype), grad=ls.grad,
            stepsize=ls.stepsize, error=_linesearch.error_after(ls, dtype), H=H, aux=ls.aux,
            failed_linesearch=ls.failed, num_fun_eval=state.num_fun_eval + ls.num_evals,
            num_grad_eval=state.num_grad_eval + ls.num_evals,
            num_linesearch_iter=state.num_linesearch_iter + ls.num_evals,
            status=_linesearch.failure_status(ls),
        )
        return _linesearch.keep_if_stopped(stopped, params, state, ls.params, new_state)
