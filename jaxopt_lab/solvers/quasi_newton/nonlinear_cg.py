"""Nonlinear conjugate gradient with the classical beta rules."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.solvers.linesearch import functions as _linesearch
from jaxopt_lab.solvers.quasi_newton._helpers import first_stepsize
from jaxopt_lab.solvers.quasi_newton._step import QuasiNewtonSolver, QuasiNewtonState

NonlinearCGState = QuasiNewtonState  # NonlinearCG's state (its name in earlier releases and in jaxopt)

_METHODS = ("polak-ribiere", "fletcher-reeves", "hestenes-stiefel", "dai-yuan")


class NonlinearCGApprox(NamedTuple):
    """What nonlinear CG carries between iterations.

    Attributes:
      descent_direction: the current search direction.
      prev_value: objective at the previous iterate (for the first trial step).
    """

    descent_direction: Any
    prev_value: jax.Array


@dataclasses.dataclass(eq=False, kw_only=True)
class NonlinearCG(QuasiNewtonSolver):
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
      fun: objective ``fun(params, *args, **kwargs)``, real-valued; params may be complex
        (as in :class:`jaxopt_lab.LBFGS`).
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
      ``run`` returns an ``OptStep(params, QuasiNewtonState)`` (``NonlinearCGState``;
      ``state.descent_direction`` is the search direction).

    References:
      Hager and Zhang, "A survey of nonlinear conjugate gradient methods", Pacific
      J. Optim., 2006; Dai and Yuan, "A nonlinear conjugate gradient method with a
      strong global convergence property", SIAM J. Optim., 1999.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "value_and_grad", "has_aux", "maxiter", "tol", "method", "linesearch", "linesearch_init",
        "condition", "maxls", "decrease_factor", "increase_factor", "max_stepsize", "min_stepsize",
        "implicit_diff", "implicit_diff_solve", "jit", "unroll", "verbose",
    )

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

    def _init_approx(self, x, value, grad) -> NonlinearCGApprox:
        return NonlinearCGApprox(tu.tree_negative(grad), jnp.asarray(jnp.nan, jnp.result_type(value)))

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

    def _direction(self, x, grad, state, ctx):
        dtype = jnp.result_type(state.value)
        d = state.approx.descent_direction
        slope = tu.tree_vdot(grad, d).astype(dtype)
        # First trial: the step at which a quadratic with the last decrease f_{k-1} - f_k
        # and the current slope is minimal (Nocedal-Wright eq. 3.60), at most 1; on the
        # first iteration 1 / ||d||.
        # (No previous value on the first iteration: a zero stand-in keeps the unrolled
        # reverse-mode derivative of the discarded guess finite.)
        decrease = state.value - state.approx.prev_value
        decrease = jnp.where(jnp.isfinite(decrease), decrease, 0.0)
        guess = 2.02 * decrease / jnp.where(slope < 0, slope, -1.0)
        first = first_stepsize(tu.tree_l2_norm(d), dtype)
        return d, jnp.minimum(1.0, jnp.where(jnp.isfinite(guess) & (guess > 0), guess, first))

    def _search(self, value_and_grad, x, grad, state, direction, init_stepsize, stopped):
        ls_d, d, evals = super()._search(value_and_grad, x, grad, state, direction, init_stepsize, stopped)
        if self._fixed_step():  # a fixed step never fails
            return ls_d, d, evals
        # A failed search along the CG direction is retried at once along -g (unless the
        # direction already was -g).
        neg_g = tu.tree_negative(grad)
        was_neg_g = tu.tree_vdot(tu.tree_sub(d, neg_g), tu.tree_sub(d, neg_g)) == 0
        retry = ls_d.failed & ~ls_d.nonfinite & ~stopped & ~was_neg_g
        ls_g = self._line_search(value_and_grad, x, state.value, grad, neg_g,
                                 first_stepsize(state.error, jnp.result_type(state.value)), state.aux,
                                 done=~retry)
        return (_linesearch.select_result(retry, ls_g, ls_d), tu.tree_where(retry, neg_g, d),
                evals + ls_g.num_evals)

    def _update_approx(self, state, x, grad, d, ls, x_new) -> NonlinearCGApprox:
        beta = self._beta(ls.grad, grad, d)
        new_d = tu.tree_add_scalar_mul(tu.tree_negative(ls.grad), beta, d)
        # Restart along -g+ unless the new direction is a sufficient descent one, or when
        # successive gradients are far from orthogonal (Powell's test |<g+, g>| >= 0.2 |g+|^2).
        gnew2 = tu.tree_vdot(ls.grad, ls.grad)
        descent = tu.tree_vdot(new_d, ls.grad) <= -1e-2 * gnew2
        orthogonal = jnp.abs(tu.tree_vdot(ls.grad, grad)) < 0.2 * gnew2
        new_d = tu.tree_where(descent & orthogonal, new_d, tu.tree_negative(ls.grad))
        return NonlinearCGApprox(new_d, jnp.asarray(state.value, jnp.result_type(state.value)))
