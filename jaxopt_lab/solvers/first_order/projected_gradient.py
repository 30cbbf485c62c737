"""Projected gradient descent (accelerated, with backtracking)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import is_concrete
from jaxopt_lab.core.types import Status
from jaxopt_lab.ops import projection as projection_lib
from jaxopt_lab.solvers.first_order.gradient_descent import GradientDescent, GradientDescentState


class ProjectedGradientState(GradientDescentState):
    """State of :class:`ProjectedGradient`: the fields of :class:`GradientDescentState`
    (``status`` is ``INFEASIBLE`` at once for an empty set given as traced values).

    Attributes:
      iter_num, stepsize, error, value, aux, velocity, t, num_fun_eval, status, objective,
      num_restarts: as in ``FirstOrderState``.
    """

    __slots__ = ()


@dataclasses.dataclass(eq=False)
class ProjectedGradient(GradientDescent):
    """Projected gradient for ``min_{x in C} f(x, *args)``.

    The proximal gradient method with the projection onto ``C`` as the prox:
    ``x+ = projection(y - t grad f(y), hyperparams_proj)``, FISTA-accelerated by
    default, with backtracking when ``stepsize <= 0``. ``run`` is called as
    ``run(init_params, hyperparams_proj, *args, **kwargs)``, as in jaxopt.

    An empty set (for the projections of :mod:`jaxopt_lab.ops.projection`: a box with
    ``lower > upper``, a negative radius, ..., see
    :func:`jaxopt_lab.ops.projection.is_empty_set`) given as concrete values raises
    ``ValueError``; given traced (inside ``jit`` or ``vmap``), the solve ends at once
    with ``Status.INFEASIBLE`` and ``init_params`` unchanged (per lane under ``vmap``).

    Args:
      fun: smooth objective ``f(params, *args, **kwargs)``.
      projection: ``projection(x, hyperparams_proj)``, e.g.
        :func:`jaxopt_lab.ops.projection.projection_box`.
      stepsize, maxiter, maxls, tol, acceleration, decrease_factor, value_and_grad,
        has_aux: as in :class:`GradientDescent`.

    Returns:
      ``run`` returns an ``OptStep(params, ProjectedGradientState)``.

    References:
      Levitin and Polyak, "Constrained minimization methods", 1966; Beck and
      Teboulle, "A fast iterative shrinkage-thresholding algorithm", 2009.
    """
    # jaxopt's constructor parameters, in jaxopt's order (positional use).
    _positional: ClassVar[tuple[str, ...]] = (
        "fun", "projection", "value_and_grad", "has_aux", "stepsize", "maxiter", "maxls", "tol",
        "acceleration", "decrease_factor", "verbose", "implicit_diff", "implicit_diff_solve", "jit",
        "unroll",
    )
    # jaxopt's named leading run arguments (also accepted by keyword).
    _run_keywords: ClassVar[tuple[str, ...]] = ("hyperparams_proj",)

    _hyperparams_name = "hyperparams_proj"
    _state_cls = ProjectedGradientState

    projection: Callable = None

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.projection):
            raise TypeError(f"`projection` must be callable, got {type(self.projection).__name__}.")

    def _prox(self, x, hyperparams_proj, scaling):
        del scaling
        return self.projection(x, hyperparams_proj)

    def _prox_is_identity(self) -> bool:
        return False

    def _check_run_args(self, init_params, args, kwargs) -> None:
        super()._check_run_args(init_params, args, kwargs)
        hp = args[0]
        if all(is_concrete(v) for v in jax.tree_util.tree_leaves(hp)):
            with jax.ensure_compile_time_eval():
                empty = projection_lib.is_empty_set(self.projection, init_params, hp)
            if is_concrete(empty) and bool(np.asarray(empty)):
                raise ValueError(f"`hyperparams_proj` describes an empty set for "
                                 f"{getattr(self.projection, '__name__', 'the projection')} (e.g. lower > "
                                 f"upper, or a negative radius): {hp!r}.")

    def init_state(self, init_params, *args, **kwargs) -> ProjectedGradientState:
        """Evaluate ``fun`` at ``init_params``; ``INFEASIBLE`` at once if the set is empty.

        Args:
          init_params: initial point.
          hyperparams_proj, *args, **kwargs: as in ``run``.

        Returns:
          A :class:`ProjectedGradientState`.
        """
        state = super().init_state(init_params, *args, **kwargs)
        empty = projection_lib.is_empty_set(self.projection, init_params, self._split_args(args)[0])
        status = jnp.where(empty, Status.INFEASIBLE, state.status).astype(jnp.int32)
        return state._replace(status=status)
