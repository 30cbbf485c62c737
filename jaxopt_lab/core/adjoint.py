"""How a solver's ``run`` is differentiated: the one place that wires implicit differentiation.

``run(init_params, *args, **kwargs)`` computes a point ``x*(theta)`` at which the
solver's ``optimality_fun(x, *theta)`` vanishes, ``theta`` being ``run``'s ``*args`` and
``**kwargs``. Its derivatives with respect to ``theta`` come one of two ways, each an
object handed to the solver as ``adjoint=``:

- :class:`ImplicitAdjoint` (the default): the implicit function theorem at the returned
  point, ``dx*/dtheta = -(dF/dx)^{-1} dF/dtheta``, through one matrix-free linear solve
  (:func:`jaxopt_lab.linalg.implicit_diff.custom_root`). Forward and reverse mode; the
  cost does not grow with the number of iterations, and the iterations are a
  ``lax.while_loop`` that stops at ``tol``.
- :class:`UnrollAdjoint`: JAX differentiates the iterations themselves (a masked
  ``lax.scan`` of ``maxiter`` steps). The derivative of what the loop computed, also
  where it has not converged; memory grows with ``maxiter`` in reverse mode.

jaxopt's keywords stay as aliases: ``implicit_diff=False`` builds ``UnrollAdjoint()``,
``implicit_diff_solve=f`` builds ``ImplicitAdjoint(solve=f)``, ``unroll=False`` with
``implicit_diff=False`` builds ``UnrollAdjoint(scan=False)`` (see :func:`resolve_adjoint`).

References:
  Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
  (arXiv:2105.15183); Rader, Lyons and Kidger, "Optimistix: modular optimisation in JAX
  and Equinox", 2024 (arXiv:2402.09983).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxopt_lab.core.types import OptStep
from jaxopt_lab.linalg import implicit_diff as idf

__all__ = ["ImplicitAdjoint", "UnrollAdjoint", "resolve_adjoint"]

#: ``run_loop(solver, init_params, *args, **kwargs) -> OptStep``: the solve an adjoint wraps.
RunLoop = Callable[..., OptStep]


def _callable_name(fn: Callable) -> str:
    base = getattr(fn, "func", fn)  # functools.partial
    return getattr(base, "__qualname__", None) or getattr(base, "__name__", None) or repr(fn)


def _is_array_leaf(leaf: Any) -> bool:
    if isinstance(leaf, bool):
        return False
    return isinstance(leaf, jax.Array | np.ndarray | np.generic | numbers.Number)


def _split_solver(solver) -> tuple[list, Callable]:
    """The solver's array leaves (they may be tracers) and a function rebuilding it from them.

    A ``custom_jvp`` rule must not close over tracers, so traced options (step sizes,
    tolerances) travel as arguments; everything else (functions, static options, a solver
    that is not a pytree at all) is closed over.
    """
    leaves, treedef = jax.tree_util.tree_flatten(solver)
    dynamic = [_is_array_leaf(leaf) for leaf in leaves]
    arrays = [leaf for leaf, d in zip(leaves, dynamic, strict=True) if d]

    def rebuild(new_arrays):
        it = iter(new_arrays)
        return treedef.unflatten([next(it) if d else leaf for leaf, d in zip(leaves, dynamic, strict=True)])

    return arrays, rebuild


@dataclasses.dataclass(frozen=True, repr=False)
class ImplicitAdjoint:
    """Derivatives of ``run``'s solution from the implicit function theorem.

    At the returned point ``x*``, ``dx*/dtheta = -(dF/dx)^{-1} dF/dtheta`` with ``F`` the
    solver's ``optimality_fun``. One ``jax.custom_jvp`` rule whose tangent is a
    ``lax.custom_linear_solve`` serves ``jax.jvp``/``jax.jacfwd`` and, transposed,
    ``jax.grad``/``jax.vjp``; the initial point gets no derivative. The solver iterates in
    a ``lax.while_loop`` that stops at ``tol``.

    Args:
      solve: linear solver ``solve(matvec, b) -> x`` for the optimality Jacobian (e.g.
        :func:`jaxopt_lab.linalg.linear_solve.solve_cg` for a Hessian,
        ``solve_normal_cg``/``solve_gmres`` otherwise). ``None``: the solver's own default
        (conjugate gradients for minimizers, whose Jacobian is a Hessian; each family
        chooses where its Jacobian is not symmetric).
      symmetric: whether the optimality Jacobian is symmetric; ``None`` infers it from
        ``solve`` (``solve_cg`` and ``solve_cholesky`` assume it).

    Returns:
      A hashable, immutable adjoint (a static option of the solver).

    References:
      Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
      (arXiv:2105.15183).
    """

    solve: Callable | None = None
    symmetric: bool | None = None

    def __post_init__(self):
        if self.solve is not None and not callable(self.solve):
            raise TypeError("ImplicitAdjoint: `solve` must be callable, e.g. "
                            f"jaxopt_lab.linear_solve.solve_cg; got {type(self.solve).__name__}.")
        if self.symmetric is not None and not isinstance(self.symmetric, bool):
            raise TypeError("ImplicitAdjoint: `symmetric` must be True, False or None, "
                            f"got {self.symmetric!r}.")

    def __repr__(self) -> str:
        parts = []
        if self.solve is not None:
            parts.append(f"solve={_callable_name(self.solve)}")
        if self.symmetric is not None:
            parts.append(f"symmetric={self.symmetric}")
        return f"ImplicitAdjoint({', '.join(parts)})"

    @property
    def scan(self) -> bool:
        """The loop is a ``lax.while_loop`` (its derivatives do not go through it)."""
        return False

    def apply(self, solver, run_loop: RunLoop, init_params, args: tuple, kwargs: dict) -> OptStep:
        """``run_loop(solver, init_params, *args, **kwargs)`` with implicit derivatives.

        Args:
          solver: the solver; its ``optimality_fun(params, *args, **kwargs)`` is zero at
            the solution, and ``solver._implicit_solve()`` gives the default linear solver.
          run_loop: computes the solution, an ``OptStep(params, state)``.
          init_params: the initial point (gets no derivative).
          args, kwargs: the problem's arguments; derivatives flow to them.

        Returns:
          ``run_loop``'s ``OptStep``; derivatives of ``params`` come from the implicit
          function theorem, those of ``state`` are zero.
        """
        solve = self.solve if self.solve is not None else solver._implicit_solve()
        arrays, rebuild = _split_solver(solver)

        def solver_fun(x0, solver_arrays, *a, **k):
            return run_loop(rebuild(solver_arrays), x0, *a, **k)

        def optimality_fun(x, solver_arrays, *a, **k):
            # The solver's arrays are arguments here only so that no tracer is closed over;
            # the optimality condition does not depend on them, so they get no derivative.
            return rebuild(solver_arrays).optimality_fun(x, *a, **k)

        decorated = idf.custom_root(optimality_fun, has_aux=True, solve=solve,
                                    symmetric=self.symmetric)(solver_fun)
        return decorated(init_params, arrays, *args, **kwargs)


@dataclasses.dataclass(frozen=True, repr=False)
class UnrollAdjoint:
    """Derivatives of ``run`` through its iterations.

    JAX differentiates the loop itself: with ``scan=True`` it is a ``lax.scan`` of
    ``maxiter`` steps in which the steps after the stop leave the iterate unchanged, so
    results equal the early-stopping loop and both forward and reverse mode work (reverse
    mode stores every step). This is the derivative of what the iterations computed, also
    short of convergence (e.g. for truncated or warm-started bilevel schemes). With
    ``scan=False`` the loop is a ``lax.while_loop`` that stops at ``tol``: forward mode
    only (``jax.grad`` raises), the cheapest choice when no reverse derivative is needed.

    Args:
      scan: unroll into a masked ``lax.scan`` (default) rather than a ``lax.while_loop``.

    Returns:
      A hashable, immutable adjoint (a static option of the solver).
    """

    scan: bool = True

    def __post_init__(self):
        if not isinstance(self.scan, bool):
            raise TypeError(f"UnrollAdjoint: `scan` must be True or False, got {self.scan!r}.")

    def __repr__(self) -> str:
        return "UnrollAdjoint()" if self.scan else "UnrollAdjoint(scan=False)"

    def apply(self, solver, run_loop: RunLoop, init_params, args: tuple, kwargs: dict) -> OptStep:
        """``run_loop(solver, init_params, *args, **kwargs)``, differentiated as it runs.

        Args:
          solver: the solver (its loop reads :attr:`scan`).
          run_loop: computes the solution, an ``OptStep(params, state)``.
          init_params: the initial point.
          args, kwargs: the problem's arguments.

        Returns:
          ``run_loop``'s ``OptStep``.
        """
        return run_loop(solver, init_params, *args, **kwargs)


Adjoint = ImplicitAdjoint | UnrollAdjoint


def resolve_adjoint(adjoint: Adjoint | None, implicit_diff: bool, implicit_diff_solve: Callable | None,
                    unroll: bool | str, defaults: dict) -> Adjoint:
    """The adjoint a solver uses, from ``adjoint=`` or from jaxopt's keywords.

    Without ``adjoint``: ``implicit_diff=True`` gives ``ImplicitAdjoint(solve=
    implicit_diff_solve)`` (``unroll`` does not change implicit derivatives, so the loop
    stops early); ``implicit_diff=False`` gives ``UnrollAdjoint(scan=unroll is not False)``.
    With ``adjoint``, a keyword that differs from its class default must agree with it.

    Args:
      adjoint: ``ImplicitAdjoint``, ``UnrollAdjoint`` or ``None``.
      implicit_diff, implicit_diff_solve, unroll: jaxopt's keywords as given.
      defaults: the class defaults of those three keywords (a keyword equal to its default
        counts as not given).

    Returns:
      The adjoint.

    Raises:
      TypeError: ``adjoint`` is neither adjoint type, or ``implicit_diff_solve`` is not callable.
      ValueError: ``unroll`` is not True/False/"auto", or ``adjoint`` and a keyword conflict
        (the message names both).
    """
    if unroll not in (True, False, "auto") or not isinstance(unroll, bool | str):
        raise ValueError(f"`unroll` must be True, False or 'auto', got {unroll!r}.")
    if implicit_diff_solve is not None and not callable(implicit_diff_solve):
        raise TypeError(f"`implicit_diff_solve` must be callable, got {type(implicit_diff_solve).__name__}.")
    if adjoint is None:
        if implicit_diff:
            return ImplicitAdjoint(solve=implicit_diff_solve)
        return UnrollAdjoint(scan=unroll is not False)
    if not isinstance(adjoint, ImplicitAdjoint | UnrollAdjoint):
        raise TypeError("`adjoint` must be jaxopt_lab.ImplicitAdjoint(...) or jaxopt_lab.UnrollAdjoint(), "
                        f"got {type(adjoint).__name__}.")
    implicit = isinstance(adjoint, ImplicitAdjoint)

    def conflict(keyword):
        return ValueError(f"`adjoint={adjoint!r}` conflicts with `{keyword}`: pass one of them.")

    if implicit_diff != defaults.get("implicit_diff") and bool(implicit_diff) != implicit:
        raise conflict(f"implicit_diff={implicit_diff!r}")
    if implicit_diff_solve is not None and implicit_diff_solve is not defaults.get("implicit_diff_solve"):
        if not isinstance(adjoint, ImplicitAdjoint) or adjoint.solve not in (None, implicit_diff_solve):
            raise conflict(f"implicit_diff_solve={_callable_name(implicit_diff_solve)}")
    if unroll != defaults.get("unroll") and unroll != "auto":
        # unroll=True asks to differentiate through the iterations; unroll=False for a loop
        # that stops early (implicit derivatives, or UnrollAdjoint(scan=False)).
        if bool(unroll) != (not implicit and adjoint.scan):
            raise conflict(f"unroll={unroll!r}")
    return adjoint
