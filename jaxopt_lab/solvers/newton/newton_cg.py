"""Truncated Newton (Newton-CG) with Hessian-vector products and a line search."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.core.control import bounded_while_loop
from jaxopt_lab.solvers.linesearch import functions as _linesearch
from jaxopt_lab.solvers.newton._step import NewtonSolver


class NewtonCGState(NamedTuple):
    """State of :class:`NewtonCG`.

    Attributes:
      iter_num: iterations done.
      value: objective at the current params.
      grad: gradient at the current params.
      error: gradient norm.
      stepsize: last accepted step.
      num_hvp: Hessian-vector products so far.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    grad: Any
    error: jax.Array
    stepsize: jax.Array
    num_hvp: jax.Array
    aux: Any
    status: jax.Array


def truncated_cg(hvp: Callable, grad, forcing, maxiter: int, unroll: bool = False):
    """Approximately solve ``H p = -g`` by CG until ``||H p + g|| <= forcing * ||g||``.

    Stops at the first direction of non-positive curvature, returning the iterate
    so far (or ``-g`` if it is the first), so ``p`` is always a descent direction.

    Args:
      hvp: ``v -> H v``, the Hessian-vector product at the current point.
      grad: the gradient ``g``, a pytree.
      forcing: relative residual tolerance (may be traced).
      maxiter: maximum CG iterations, i.e. Hessian-vector products.
      unroll: a masked ``lax.scan`` of ``maxiter`` steps instead of a ``lax.while_loop``
        (same result, reverse-mode differentiable; when the solver unrolls).

    Returns:
      ``(p, num_hvp)``: the direction, a pytree like ``grad`` (``-g`` when no CG step was
      taken), and the number of CG iterations (Hessian-vector products) run.
    """
    gnorm = tu.tree_l2_norm(grad)
    r = tu.tree_negative(grad)

    def body(c):
        p, r, d, rs, k, done = c
        Hd = hvp(d)
        dHd = tu.tree_vdot(d, Hd)
        neg = dHd <= 1e-12 * tu.tree_l2_norm(d, True) * jnp.maximum(gnorm, 1.0)
        alpha = rs / jnp.where(neg, 1.0, dHd)
        p_new = tu.tree_add_scalar_mul(p, alpha, d)
        r_new = tu.tree_add_scalar_mul(r, -alpha, Hd)
        rs_new = tu.tree_l2_norm(r_new, True)
        # Negative curvature on the first step: fall back to steepest descent.
        p_new = tu.tree_where(neg, tu.tree_where(k == 0, r, p), p_new)
        d_new = tu.tree_add_scalar_mul(r_new, rs_new / jnp.where(rs > 0, rs, 1.0), d)
        keep = lambda new, old: tu.tree_where(done, old, new)
        stop = neg | (jnp.sqrt(rs_new) <= forcing * gnorm)
        return (keep(p_new, p), keep(r_new, r), keep(d_new, d), jnp.where(done, rs, rs_new),
                k + jnp.where(done, 0, 1), done | stop)

    init = (tu.tree_zeros_like(grad), r, r, tu.tree_l2_norm(r, True), jnp.asarray(0),
            gnorm == 0)
    p, _, _, _, k, _ = bounded_while_loop(lambda c: ~c[5] & (c[4] < maxiter), body, init, maxiter,
                                          unroll=unroll)
    p = tu.tree_where(k == 0, r, p)
    return p, k


@dataclasses.dataclass(eq=False)
class NewtonCG(NewtonSolver):
    """Truncated Newton method: Newton directions from CG on Hessian-vector products.

    Each iteration runs CG on ``H p = -g`` with forward-over-reverse HVPs (the
    gradient is linearized once per iteration) until the residual is below
    ``eta_k ||g||`` with ``eta_k = min(0.5, ||g||)`` (``forcing="quadratic"``,
    locally quadratic convergence) or ``min(0.5, sqrt(||g||))``
    (``"superlinear"``), stopping early at negative curvature, then takes a
    backtracking (Armijo) step starting from 1.

    Args:
      fun: objective ``fun(params, *args, **kwargs)`` (scalar, or ``(value, aux)``
        with ``has_aux``).
      maxiter: maximum Newton iterations.
      tol: stop when the gradient norm is ``<= tol``.
      cg_maxiter: maximum CG iterations (HVPs) per Newton step (static).
      forcing: ``"quadratic"`` or ``"superlinear"`` (static).
      c1, decrease_factor, maxls: Armijo constant, shrink factor and maximum
        evaluations of the line search.
      has_aux, implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns ``OptStep(params, NewtonCGState)``.

    References:
      Dembo, Eisenstat and Steihaug, "Inexact Newton methods", 1982; Nocedal and
      Wright, "Numerical Optimization", 2006, Algorithm 7.1; Martens, "Deep
      learning via Hessian-free optimization", 2010.
    """

    _state_cls = NewtonCGState

    fun: Callable
    _: dataclasses.KW_ONLY
    forcing: str = "quadratic"
    c1: float = 1e-4
    decrease_factor: float = 0.5
    maxls: int = 30

    def __post_init__(self):
        super().__post_init__()
        check_int(self.maxls, "maxls", minimum=1)
        check_positive(self.c1, "c1")
        check_positive(self.decrease_factor, "decrease_factor")
        if self.forcing not in ("quadratic", "superlinear"):
            raise ValueError(f"`forcing` must be 'quadratic' or 'superlinear', got {self.forcing!r}.")

    def _extra_init(self, dtype) -> dict:
        return dict(stepsize=jnp.asarray(1.0, dtype), num_hvp=jnp.asarray(0, jnp.int32))

    def _newton_step(self, params, state: NewtonCGState, args, kwargs):
        """Truncated CG direction, then backtracking from the unit step."""
        vg = lambda x: self._value_and_grad_fun()(x, *args, **kwargs)
        _, hvp = jax.linearize(lambda x: vg(x)[1], params)
        gnorm = state.error
        eta = jnp.minimum(0.5, gnorm if self.forcing == "quadratic" else jnp.sqrt(gnorm))
        unroll = self._unrolled()
        direction, n_hvp = truncated_cg(hvp, state.grad, eta, self.cg_maxiter, unroll=unroll)
        ls = _linesearch.backtracking(vg, params, state.value, state.grad, direction,
                                      jnp.asarray(1.0, state.value.dtype), state.aux, c1=self.c1,
                                      decrease_factor=self.decrease_factor, maxls=self.maxls,
                                      unroll=unroll)
        extra = dict(stepsize=ls.stepsize.astype(state.error.dtype),
                     num_hvp=state.num_hvp + n_hvp.astype(jnp.int32))
        return ls.params, ((ls.value, ls.aux), ls.grad), ls.failed, extra
