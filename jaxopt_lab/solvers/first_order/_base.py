"""The first-order family's base: :class:`FirstOrderSolver` (the term's hyperparameters after
``init_params``, the ``stepsize <= 0`` sentinel, the fixed-point residual and its implicit
derivatives), shared by the proximal-gradient skeleton (``_step.py``), BlockCoordinateDescent
and MirrorDescent."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import uses_line_search
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import Status
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.first_order._state import CompositeState


@dataclasses.dataclass(eq=False, kw_only=True)
class FirstOrderSolver(IterativeSolver):
    """Base of the family (private). ``_hyperparams_name`` (``None``: no term) names the
    argument after ``init_params``; a solver with a term defines ``_unit_step(x, g, hp)``,
    the step of size 1 whose fixed points are the solutions."""

    _state_cls = CompositeState
    _hyperparams_name = None

    def _static_option(self, name, value) -> bool:
        return name == "stepsize" and uses_line_search(value)

    def _implicit_solve(self):
        # The fixed-point residual's Jacobian is not symmetric: normal-equation CG.
        if self.implicit_diff_solve is not None or self._hyperparams_name is None:
            return super()._implicit_solve()
        return ls.solve_normal_cg

    def _split_args(self, args):
        """``(hyperparams, fun_args)``; ``hyperparams`` is ``None`` without a term."""
        if self._hyperparams_name is None:
            return None, args
        if not args:
            raise TypeError(f"{type(self).__name__}.run needs `{self._hyperparams_name}` after "
                            "`init_params` (None if unused).")
        return args[0], args[1:]

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        self._split_args(args)

    def _state(self, iter_num, error, value, aux, dtype):
        """A RUNNING :class:`CompositeState` with ``error`` in ``dtype``."""
        return self._state_cls(iter_num=iter_num, error=jnp.asarray(error).astype(dtype), value=value,
                               aux=aux, status=jnp.asarray(Status.RUNNING, jnp.int32))

    def optimality_fun(self, params, *args, **kwargs):
        """The residual that is zero exactly at solutions.

        Args:
          params: a point.
          *args, **kwargs: as in ``run`` (the term's hyperparameters first, if any).

        Returns:
          ``grad f(params)`` without a term; otherwise the fixed-point residual
          ``params - step(params, grad f(params), hyperparams, 1)``.
        """
        hp, fun_args = self._split_args(args)
        grad = self._value_and_grad_fun()(params, *fun_args, **kwargs)[1]
        if self._hyperparams_name is None:
            return grad
        return tu.tree_sub(params, self._unit_step(params, grad, hp))
