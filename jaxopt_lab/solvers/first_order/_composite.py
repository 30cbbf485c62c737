"""What BlockCoordinateDescent, MirrorDescent, ProximalGradient and ProjectedGradient share:
solvers of a smooth ``f`` plus a prox/projection term whose ``run`` takes that term's
hyperparameters after ``init_params``.
The state, the argument check, the (non-symmetric) implicit solve and the fixed-point
residual live here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import Status
from jaxopt_lab.linalg import linear_solve as ls


class CompositeState(NamedTuple):
    """State of the composite solvers (subclassed per solver for its docs).

    Attributes:
      iter_num: iterations done.
      error: the solver's optimality error after the iteration.
      value: ``f`` at the point the solver evaluated.
      aux: auxiliary output of ``fun``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    error: jax.Array
    value: jax.Array
    aux: Any
    status: jax.Array


@dataclasses.dataclass(eq=False, kw_only=True)
class CompositeSolver(IterativeSolver):
    """Base of solvers run as ``run(init_params, hyperparams, *args, **kwargs)`` (private).

    Subclasses set ``_state_cls`` and ``_hyperparams_name`` (the jaxopt name of the
    hyperparameters argument, used in error messages).
    """

    _state_cls = CompositeState
    _hyperparams_name = "hyperparams"

    def _implicit_solve(self) -> Callable:
        # The fixed-point residual's Jacobian is not symmetric: normal-equation CG.
        return self.implicit_diff_solve if self.implicit_diff_solve is not None else ls.solve_normal_cg

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        if not args:
            raise TypeError(f"{type(self).__name__}.run needs `{self._hyperparams_name}` after "
                            "`init_params` (None if unused).")

    def _state(self, iter_num, error, value, aux, dtype):
        """A RUNNING state with ``error`` in ``dtype``."""
        return self._state_cls(iter_num=iter_num, error=jnp.asarray(error).astype(dtype), value=value,
                               aux=aux, status=jnp.asarray(Status.RUNNING, jnp.int32))

    def _residual(self, params, args, kwargs, unit_step: Callable):
        """``params - unit_step(params, grad f(params))``: zero exactly at solutions."""
        grad = self._value_and_grad_fun()(params, *args, **kwargs)[1]
        return tu.tree_sub(params, unit_step(params, grad))
