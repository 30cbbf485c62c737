"""Any optax gradient transformation as the update rule of a solver."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.types import OptStep, Status
from jaxopt_lab.solvers.stochastic._step import StochasticSolver


class OptaxState(NamedTuple):
    """State of :class:`OptaxSolver`.

    Attributes:
      iter_num: updates applied.
      value: objective at the last params evaluated (the input of the last ``update``,
        which ``update`` returns unchanged once converged; after ``run``, the returned
        params).
      error: gradient norm at the same params as ``value``.
      internal_state: the optax state.
      aux: auxiliary output of ``fun``.
      key: PRNG key for transforms that take ``key=``.
      status: :class:`jaxopt_lab.Status` code.
    """

    iter_num: jax.Array
    value: jax.Array
    error: jax.Array
    internal_state: Any
    aux: Any
    key: jax.Array
    status: jax.Array


@dataclasses.dataclass(eq=False)
class OptaxSolver(StochasticSolver):
    """Run an optax ``GradientTransformation`` as a solver.

    ``GradientTransformationExtraArgs`` transforms (Sophia, zeroth-order
    estimators, ...) receive ``value=``, ``grad=``, ``value_fn=`` (the objective as
    a function of the params with the current ``*args`` bound) and ``key=`` (split
    from ``state.key`` every step); transforms ignore what they do not need.

    Args:
      opt: an ``optax.GradientTransformation``.
      fun: objective ``fun(params, *args, **kwargs)``.
      value_and_grad: whether ``fun`` returns ``(value, grad)``.
      has_aux: whether ``fun`` returns ``(value, aux)``.
      pre_update: optional ``(params, state, *args, **kwargs) -> (params, state)``
        called before each update.
      maxiter: maximum iterations.
      tol: stop when the gradient norm is ``<= tol``. ``update`` measures it at its input
        params (with the current mini-batch) and, when it is ``<= tol``, returns them
        unchanged, so a ``CONVERGED`` state's ``value`` and ``error`` are those of the
        returned params. When ``maxiter`` ends ``run``, the state is evaluated once more at
        the returned params (``CONVERGED`` if the gradient norm there is ``<= tol``); a
        non-finite value or gradient ends it ``NONFINITE`` with the last finite iterate.
      key: PRNG key seed for stochastic transforms (an int or a key).
      implicit_diff: off by default (as in jaxopt); a stochastic update rule
        rarely solves to the tolerance implicit differentiation assumes.
      implicit_diff_solve, jit, unroll, verbose: see
        :class:`jaxopt_lab.IterativeSolver`.

    Returns:
      ``run`` returns an ``OptStep(params, OptaxState)``.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "opt", "value_and_grad", "pre_update", "maxiter", "tol", "verbose", "implicit_diff",
        "implicit_diff_solve", "has_aux", "jit", "unroll",
    )

    opt: Any
    fun: Callable
    _: dataclasses.KW_ONLY
    value_and_grad: bool = False
    has_aux: bool = False
    pre_update: Callable | None = None
    maxiter: int = 500
    tol: float = 1e-3
    key: Any = 0
    implicit_diff: bool = False

    _state_at_input = True  # update evaluates at its input (the mini-batch of this call)

    def __post_init__(self):
        super().__post_init__()
        if not (hasattr(self.opt, "init") and hasattr(self.opt, "update")):
            raise TypeError(
                f"`opt` must be an optax GradientTransformation, got {type(self.opt).__name__}."
            )

    def _key(self):
        if isinstance(self.key, int):
            return jax.random.PRNGKey(self.key)
        return self.key

    def init_state(self, init_params, *args, **kwargs) -> OptaxState:
        """Initialize the optax state and evaluate ``fun``.

        Args:
          init_params: initial point.
          *args, **kwargs: passed to ``fun``.

        Returns:
          An :class:`OptaxState`.
        """
        (value, aux), grad = self._value_and_grad_fun()(init_params, *args, **kwargs)
        dtype = jnp.result_type(value)
        return OptaxState(
            iter_num=jnp.asarray(0, jnp.int32), value=value,
            error=tu.tree_l2_norm(grad).astype(dtype), internal_state=self.opt.init(init_params),
            aux=aux, key=self._key(), status=jnp.asarray(Status.RUNNING, jnp.int32),
        )

    def update(self, params, state: OptaxState, *args, **kwargs) -> OptStep:
        """Apply one optax update.

        Args:
          params: current point.
          state: current :class:`OptaxState`.
          *args, **kwargs: passed to ``fun``.

        Returns:
          ``OptStep(params, state)`` after the update; the state's ``value`` and ``error``
          are those of ``params`` (after ``pre_update``), which come back unchanged when
          their gradient norm is already ``<= tol``.
        """
        if self.pre_update is not None:
            params, state = self.pre_update(params, state, *args, **kwargs)
        (value, aux), grad = self._value_and_grad_fun()(params, *args, **kwargs)
        key, subkey = jax.random.split(state.key)
        if isinstance(self.opt, optax.GradientTransformationExtraArgs):
            value_fn = lambda p: self._value_fun()(p, *args, **kwargs)
            updates, inner = self.opt.update(
                grad, state.internal_state, params, value=value, grad=grad,
                value_fn=value_fn, key=subkey,
            )
        else:
            updates, inner = self.opt.update(grad, state.internal_state, params)
        dtype = jnp.result_type(value)
        error = tu.tree_l2_norm(grad).astype(dtype)
        # Converged at the input: no step, so the state (value, error) describes the output.
        done = error <= self.tol
        new_params = tu.tree_where(done, params, optax.apply_updates(params, updates))
        new_state = OptaxState(
            iter_num=state.iter_num + jnp.where(done, 0, 1).astype(jnp.int32), value=value,
            error=error, internal_state=tu.tree_where(done, state.internal_state, inner), aux=aux,
            key=key, status=state.status,
        )
        return OptStep(new_params, new_state)
