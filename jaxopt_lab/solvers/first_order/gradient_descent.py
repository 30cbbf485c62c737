"""Gradient descent with a fixed step or backtracking, optionally accelerated."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_positive
from jaxopt_lab.solvers.first_order._step import FirstOrderState, ProxGradSolver


class GradientDescentState(FirstOrderState):
    """State of :class:`GradientDescent`: the fields of
    :class:`jaxopt_lab.solvers.first_order._state.FirstOrderState` (``objective`` is ``inf``
    and ``num_restarts`` 0: gradient descent does not restart).

    Attributes:
      iter_num, stepsize, error, value, aux, velocity, t, num_fun_eval, status, objective,
      num_restarts: as in ``FirstOrderState``.
    """

    __slots__ = ()


ProxGradState = GradientDescentState  # jaxopt's name, kept


@dataclasses.dataclass(eq=False)
class GradientDescent(ProxGradSolver):
    """Gradient descent, with Nesterov/FISTA acceleration and backtracking.

    With ``acceleration`` the gradient is taken at an extrapolated point
    ``y_k = x_k + (t_{k-1} - 1) / t_k (x_k - x_{k-1})``, which gives the optimal
    ``O(1/k^2)`` rate on smooth convex problems. A step size ``<= 0`` selects
    backtracking on the sufficient-decrease condition
    ``f(x+) <= f(y) + <g, x+ - y> + ||x+ - y||^2 / (2 t)`` (with a slack of
    ``10 eps |f(y)|`` for rounding), started from ``state.next_stepsize``: the last
    accepted step ``t``, grown to ``t / decrease_factor`` (as jaxopt does) when that step's
    test was decided above the rounding of ``f`` (``||x+ - y||^2 / (2 t) > 100 eps |f(y)|``)
    and the quadratic model of ``f`` along it predicts that the grown step passes
    (``f(x+) - f(y) - <g, x+ - y> <= decrease_factor ||x+ - y||^2 / (2 t)``). A grown
    trial is accepted only on the test without slack; if it fails, the search falls back
    to ``t``. So the step follows the local curvature in both directions, while near
    the minimizer, where every change of ``f`` is rounding noise, it never exceeds a
    step that ``f`` itself validated, and tight tolerances stay reachable. With
    acceleration, the momentum follows Scheinberg, Goldfarb and Bai:
    ``t_{k+1} = (1 + sqrt(1 + 4 (s_k / s0_{k+1}) t_k^2)) / 2`` for the accepted step ``s_k``
    and the next search's first trial ``s0_{k+1}``, which keeps FISTA's estimate
    ``s_{k+1} (t_{k+1}^2 - t_{k+1}) <= s_k t_k^2`` when steps grow. A grown trial that
    is rejected has cost momentum for nothing, so with acceleration the step stops
    growing after the first rejection (``state.can_grow``) until the momentum restarts.

    Args:
      fun: objective ``fun(params, *args, **kwargs)``, real-valued (params may be
        complex: the step is then along ``-conj(jax.grad(fun))``).
      value_and_grad: whether ``fun`` returns ``(value, grad)``.
      has_aux: whether ``fun`` returns ``(value, aux)``.
      stepsize: positive for a fixed step (may be traced), ``<= 0`` for
        backtracking; a callable ``iter_num -> stepsize`` is also accepted.
      maxiter: maximum iterations.
      maxls: maximum backtracking evaluations per iteration.
      tol: stop when the gradient-mapping norm is ``<= tol``. ``CONVERGED`` only when
        that norm, evaluated so that rounding cannot make it vanish (``||grad f(y)||``
        without a prox), is ``<= tol``; when the step ``x_next - y`` is lost to rounding
        (it reads ``<= tol`` while the true norm is above) the solve ends ``STALLED``.
      acceleration: use the accelerated (FISTA) scheme.
      decrease_factor: backtracking shrink factor (its inverse is the growth factor).
      implicit_diff, implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns an ``OptStep(params, GradientDescentState)``.

    References:
      Nesterov, "A method for solving the convex programming problem with
      convergence rate O(1/k^2)", 1983; Beck and Teboulle, "A fast iterative
      shrinkage-thresholding algorithm for linear inverse problems", 2009;
      Scheinberg, Goldfarb and Bai, "Fast first-order methods for composite convex
      optimization with backtracking", 2014 (arXiv:1109.5997).
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "prox", "value_and_grad", "has_aux", "stepsize", "maxiter", "maxls", "tol",
        "acceleration", "decrease_factor", "verbose", "implicit_diff", "implicit_diff_solve", "jit",
        "unroll",
    )

    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    stepsize: float | Callable = 0.0
    maxiter: int = 500
    maxls: int = 15
    tol: float = 1e-3
    acceleration: bool = True
    decrease_factor: float = 0.5

    _state_cls = GradientDescentState

    def __post_init__(self):
        super().__post_init__()
        check_int(self.maxls, "maxls", minimum=1)
        check_positive(self.decrease_factor, "decrease_factor")

    def _value_and_grad_fun(self) -> Callable:
        """``fun``'s value and the steepest-ascent direction: ``conj(jax.grad)`` for complex
        leaves (jaxopt's convention for a real objective of complex params), the gradient
        itself for real ones."""
        vg = super()._value_and_grad_fun()

        def conj_vg(*args, **kwargs):
            out, grad = vg(*args, **kwargs)
            return out, tu.tree_conj(grad)
        return conj_vg
