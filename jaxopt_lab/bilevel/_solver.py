"""Shared plumbing of the bilevel solvers (``run(x0, y0, data)`` on the solver base)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxopt_lab.bilevel import _inner
from jaxopt_lab.bilevel.problem import BilevelParams, BilevelProblem
from jaxopt_lab.core.checks import check_positive, uses_line_search
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep


@dataclasses.dataclass(eq=False)
class BilevelSolver(IterativeSolver):
    """Base of the bilevel solvers: params are ``BilevelParams(x, y)``, args ``(data,)``.

    Attributes:
      problem: the :class:`BilevelProblem`.
    """

    problem: BilevelProblem
    _: dataclasses.KW_ONLY
    implicit_diff: bool = False
    unroll: bool | str = False

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.problem, BilevelProblem):
            raise TypeError(f"`problem` must be a BilevelProblem, got {type(self.problem).__name__}.")
        for name in self._positive_options():
            check_positive(getattr(self, name), name)

    def _positive_options(self) -> tuple[str, ...]:
        return ()

    def _static_option(self, name, value) -> bool:
        return name.endswith("inner_stepsize") and uses_line_search(value)

    def _inner_stepsize(self, x, y, data, sigma=None):
        """The fixed inner step, or ``1 / L`` by power iteration when it is ``<= 0``."""
        eta = self.inner_stepsize
        if uses_line_search(eta):
            return 1.0 / _inner.estimate_inner_lipschitz(self.problem, x, y, data, sigma=sigma)
        return jnp.asarray(eta)

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        data = args[0] if args else None
        self.problem.check_args(init_params.x, init_params.y, data, "x0", "y0")

    def optimality_fun(self, params, *args, **kwargs):
        """Not used: bilevel solvers are not differentiated implicitly."""
        raise TypeError("Bilevel solvers do not define an optimality function; use implicit_diff=False.")

    def run(self, x0, y0, data=None) -> OptStep:
        """Run from ``(x0, y0)`` on ``data``.

        Args:
          x0: initial outer variables.
          y0: initial inner variables.
          data: passed to the problem's functions.

        Returns:
          ``OptStep(BilevelParams(x, y), state)``.
        """
        return super().run(BilevelParams(x0, y0), data)
