"""The Newton family's step skeleton (NewtonCG, RegularizedNewton): options, the first
evaluation, ``update`` (the solver's step, then the state at the new point)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int
from jaxopt_lab.core.solver import IterativeSolver
from jaxopt_lab.core.types import OptStep, Status


@dataclasses.dataclass(eq=False, kw_only=True)
class NewtonSolver(IterativeSolver):
    """Base of Newton-type solvers whose state holds ``value``, ``grad`` and ``aux`` (private).

    Subclasses set ``_state_cls`` (a NamedTuple with ``iter_num, value, grad, error, aux,
    status`` and their own fields), return those extra fields' initial values from
    ``_extra_init(dtype)`` and write ``_newton_step``.
    """

    _state_cls = tuple  # set by each subclass (not a dataclass field)

    has_aux: bool = False
    maxiter: int = 100
    tol: float = 1e-5
    cg_maxiter: int = 100

    def __post_init__(self):
        super().__post_init__()
        check_int(self.cg_maxiter, "cg_maxiter", minimum=1)

    def _extra_init(self, dtype) -> dict:
        """Initial values of the subclass's own state fields."""
        del dtype
        return {}

    def init_state(self, init_params, *args, **kwargs):
        """Evaluate ``fun`` and its gradient at ``init_params``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          The solver's state (``NewtonCGState`` or ``RegularizedNewtonState``).
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return self._state_cls(
            iter_num=jnp.asarray(0, jnp.int32), value=value, grad=grad,
            error=tu.tree_l2_norm(grad).astype(dtype), aux=aux,
            status=jnp.asarray(Status.RUNNING, jnp.int32), **self._extra_init(dtype))

    def _newton_step(self, params, state, args, kwargs):
        """``(new_params, ((value, aux), grad), failed, extra)``: the solver's step, ``fun``
        at the new point, whether its line search failed and its own state fields."""
        raise NotImplementedError

    def update(self, params, state, *args, **kwargs) -> OptStep:
        """One Newton-type iteration.

        Args:
          params: current point.
          state: current state.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the step; the state describes the new params.
        """
        new, ((value, aux), grad), failed, extra = self._newton_step(params, state, args, kwargs)
        status = jnp.where(failed, Status.LINESEARCH_FAILED, Status.RUNNING).astype(jnp.int32)
        return OptStep(new, self._state_cls(
            iter_num=state.iter_num + 1, value=jnp.asarray(value, state.value.dtype), grad=grad,
            error=tu.tree_l2_norm(grad).astype(state.error.dtype), aux=aux, status=status, **extra))
