"""The base of the solvers that run on the host (SciPy, CVXPY): ``run`` only.

A host solver hands the whole solve to a library outside JAX, so it has no step to
expose: there is no ``init_state`` or ``update`` (asking for them raises an
``AttributeError`` that names ``run``). What the host solvers share lives here once:
the differentiation options (``adjoint=ImplicitAdjoint(...)``, or jaxopt's
``implicit_diff`` / ``implicit_diff_solve`` aliases) and their checks, the checks on
``init_params``, and ``run``, which wraps the host solve in
:class:`jaxopt_lab.core.adjoint.ImplicitAdjoint` so that derivatives of the solution with
respect to ``run``'s arguments come from the solver's ``optimality_fun`` (forward and
reverse mode). Each solver writes ``_host_run`` and ``optimality_fun``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.adjoint import ImplicitAdjoint, UnrollAdjoint, resolve_adjoint
from jaxopt_lab.core.checks import (
    check_finite_tree,
    check_params_dtype,
    check_params_tree,
    check_standard_options,
)
from jaxopt_lab.core.solver import JaxoptPositional, register_options_pytree
from jaxopt_lab.core.types import OptStep
from jaxopt_lab.linalg import linear_solve as ls


def _host_run_of(solver, init_params, *args, **kwargs) -> OptStep:
    return solver._host_run(init_params, *args, **kwargs)


@dataclasses.dataclass(eq=False, kw_only=True)
class HostSolver(JaxoptPositional):
    """Base class of the solvers that run on the host: ``run`` only.

    Attributes:
      adjoint: ``ImplicitAdjoint(solve=...)`` (the default): derivatives of the solution
        from the implicit function theorem. The host library's iterations cannot be
        differentiated, so ``UnrollAdjoint`` is rejected.
      implicit_diff: alias: ``False`` gives no derivatives (``run`` then fails under
        ``jax.grad``/``jax.jvp`` instead of returning a wrong one).
      implicit_diff_solve: alias of ``ImplicitAdjoint(solve=...)``; also the default
        linear solve of the implicit derivatives (each solver has its own otherwise).
    """

    adjoint: ImplicitAdjoint | None = None
    implicit_diff: bool = True
    implicit_diff_solve: Callable | None = None

    # The linear solve of ImplicitAdjoint() when neither it nor implicit_diff_solve names one:
    # CG where the optimality Jacobian is a Hessian, a non-symmetric solver otherwise.
    _default_solve: ClassVar[Callable[..., Any]] = staticmethod(ls.solve_normal_cg)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_options_pytree(cls)

    def __post_init__(self):
        self._adjoint()  # bad or conflicting differentiation options raise here
        check_standard_options(self)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails.
        if name in ("init_state", "update"):
            raise AttributeError(f"{type(self).__name__} solves on the host in one call and has no "
                                 f"`{name}`: call `run(init_params, ...)`.")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def optimality_fun(self, params, *args, **kwargs):
        """The residual that is zero at a solution. Implemented by each solver."""
        raise NotImplementedError

    def _host_run(self, init_params, *args, **kwargs) -> OptStep:
        """The host solve, ``OptStep(params, state)``. Implemented by each solver."""
        raise NotImplementedError

    def _static_option(self, name: str, value) -> bool:
        del name, value
        return False

    def _adjoint(self) -> ImplicitAdjoint | None:
        """The adjoint ``run`` uses, or ``None`` for no derivatives (``implicit_diff=False``)."""
        defaults = {f.name: f.default for f in dataclasses.fields(type(self))
                    if f.name in ("implicit_diff", "implicit_diff_solve")}
        adjoint = resolve_adjoint(self.adjoint, self.implicit_diff, self.implicit_diff_solve, "auto",
                                  {**defaults, "unroll": "auto"})
        if isinstance(adjoint, UnrollAdjoint):
            if self.adjoint is not None:
                raise ValueError(f"`adjoint={adjoint!r}`: {type(self).__name__} solves on the host, whose "
                                 "iterations JAX cannot differentiate; use ImplicitAdjoint(...) (or "
                                 "implicit_diff=False for no derivatives).")
            return None
        return adjoint

    def _implicit_solve(self) -> Callable:
        """The default linear solve of :class:`ImplicitAdjoint` (``solve=None``)."""
        return self.implicit_diff_solve if self.implicit_diff_solve is not None else self._default_solve

    def _check_run_args(self, init_params, args, kwargs) -> None:
        """Checks on ``init_params`` made before solving; solvers may extend."""
        del args, kwargs
        check_params_tree(init_params)
        check_params_dtype(init_params, "init_params")
        check_finite_tree(init_params, "init_params")

    def _run_differentiable(self, init_params, args: tuple, kwargs: dict) -> OptStep:
        """The host solve, with implicit derivatives unless ``implicit_diff=False``."""
        adjoint = self._adjoint()
        if adjoint is None:
            return self._host_run(init_params, *args, **kwargs)
        return adjoint.apply(self, _host_run_of, init_params, args, kwargs)

    def run(self, init_params, *args, **kwargs) -> OptStep:
        """Solve from ``init_params`` on the host.

        Args:
          init_params: initial point (a pytree); gets no derivative.
          *args, **kwargs: the problem's arguments; derivatives flow to them through the
            implicit function theorem (forward and reverse mode).

        Returns:
          ``OptStep(params, state)``; ``state.status`` is a :class:`jaxopt_lab.Status`.
        """
        self._check_run_args(init_params, args, kwargs)
        return self._run_differentiable(init_params, args, kwargs)

    def l2_optimality_error(self, params, *args, **kwargs):
        """Norm of ``optimality_fun`` at ``params``."""
        return tu.tree_l2_norm(self.optimality_fun(params, *args, **kwargs))

    def replace(self, **changes):
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)
