"""Proximal gradient (ISTA/FISTA) with backtracking, on GradientDescent's loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jaxopt_lab import prox as prox_lib
from jaxopt_lab import tree_util as tu
from jaxopt_lab.solvers._composite import CompositeSolver
from jaxopt_lab.solvers.gradient_descent import GradientDescent


@dataclasses.dataclass(eq=False)
class ProximalGradient(GradientDescent, CompositeSolver):
    """Proximal gradient descent for ``min_x f(x, *args) + g(x, hyperparams_prox)``.

    Each step is ``x+ = prox(y - t grad f(y), hyperparams_prox, t)`` at the
    extrapolated point ``y`` (FISTA with ``acceleration``), with ``t`` fixed or found
    by backtracking on the proximal sufficient-decrease condition. ``run`` is called
    as ``run(init_params, hyperparams_prox, *args, **kwargs)``, as in jaxopt.

    Args:
      fun: smooth part ``f(params, *args, **kwargs)``.
      prox: ``prox(x, hyperparams, scaling)``, e.g. :func:`jaxopt_lab.prox.prox_lasso`.
      stepsize, maxiter, maxls, tol, acceleration, decrease_factor, value_and_grad,
        has_aux: as in :class:`GradientDescent`.
      implicit_diff_solve: linear solver for implicit differentiation (default:
        normal-equation CG, the fixed-point Jacobian being non-symmetric).

    Returns:
      ``run`` returns an ``OptStep(params, ProxGradState)``.

    References:
      Beck and Teboulle, "A fast iterative shrinkage-thresholding algorithm for
      linear inverse problems", SIAM J. Imaging Sci., 2009; Combettes and Wajs,
      "Signal recovery by proximal forward-backward splitting", 2005.
    """

    _hyperparams_name = "hyperparams_prox"

    prox: Callable = prox_lib.prox_none

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.prox):
            raise TypeError(f"`prox` must be callable, got {type(self.prox).__name__}.")

    def _prox(self, x, hyperparams_prox, scaling):
        return self.prox(x, hyperparams_prox, scaling)

    def _split_args(self, args):
        if not args:
            raise TypeError("ProximalGradient.run needs `hyperparams_prox` after `init_params` "
                            "(pass None for prox_none).")
        return args[0], args[1:]

    def optimality_fun(self, params, hyperparams_prox, *args, **kwargs):
        """Fixed-point residual ``x - prox(x - grad f(x), hyperparams_prox, 1)``.

        Args:
          params: a point.
          hyperparams_prox: the prox hyperparameters.
          *args, **kwargs: passed to ``fun``.

        Returns:
          A pytree that is zero exactly at solutions.
        """
        return self._residual(params, args, kwargs,
                              lambda x, g: self.prox(tu.tree_sub(x, g), hyperparams_prox, 1.0))
