"""What the constrained solvers share: constraint checks, the KKT residual, the implicit solve,
the inner solver of the augmented Lagrangian and ADMM subproblems.

A problem is ``min fun(x, *args)`` subject to ``eq_fun(x, *args) == 0`` and
``ineq_fun(x, *args) <= 0``, both returning 1-D arrays; its primal-dual point is a
``KKTSolution(primal, dual_eq, dual_ineq)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_callable
from jaxopt_lab.core.types import KKTSolution
from jaxopt_lab.linalg import linear_solve as ls
from jaxopt_lab.solvers.quasi_newton.lbfgs import LBFGS

# Up to this many unknowns (primal plus duals) the implicit KKT system is solved densely.
DENSE_IMPLICIT_MAX = 512


def check_constraint_fun(fn, name: str) -> None:
    """Raise ``TypeError`` unless ``fn`` is ``None`` or callable.

    Args:
      fn: a constraint function or ``None``.
      name: its argument name for the message.
    """
    if fn is not None:
        check_callable(fn, name)


def check_inner_solver(spec) -> None:
    """Raise ``TypeError`` unless the ``inner_solver`` option is ``None``, a solver or a factory."""
    if spec is not None and not (hasattr(spec, "run") or callable(spec)):
        raise TypeError("`inner_solver` must be a solver with `run` or a factory "
                        f"`inner_solver(fun) -> solver`, got {type(spec).__name__}.")


def inner_solver(spec, fun: Callable, tol, maxiter: int, unroll: bool) -> Any:
    """The subproblem solver on ``fun``, warm-started by the caller, differentiated by unrolling.

    Args:
      spec: the ``inner_solver`` option: ``None`` (L-BFGS), a solver dataclass whose
        ``fun`` (and ``tol``, ``implicit_diff``, ``unroll`` where it has them) is replaced,
        or a factory ``spec(fun) -> solver``.
      fun: the subproblem objective.
      tol: its tolerance.
      maxiter: L-BFGS's iteration cap (``spec=None``).
      unroll: ``True``: a masked scan (reverse mode through the inner iterations);
        ``False``: a ``lax.while_loop`` (forward mode).

    Returns:
      A solver with ``run``.
    """
    if spec is None:
        return LBFGS(fun, tol=tol, maxiter=maxiter, implicit_diff=False, unroll=unroll)
    if dataclasses.is_dataclass(spec) and hasattr(spec, "fun"):
        changes = {"fun": fun}
        for name, value in (("tol", tol), ("implicit_diff", False), ("unroll", unroll)):
            if hasattr(spec, name):
                changes[name] = value
        return dataclasses.replace(spec, **changes)
    return spec(fun)


def constraint_shape(fn, name: str, primal, args, kwargs) -> tuple[int, ...] | None:
    """Shape of ``fn(primal, *args, **kwargs)``, checked to be a 1-D array.

    Args:
      fn: a constraint function or ``None``.
      name: its argument name for the message.
      primal: a primal point.
      args, kwargs: the problem's arguments.

    Returns:
      ``(m,)``, or ``None`` when ``fn`` is ``None``.
    """
    if fn is None:
        return None
    out = jax.eval_shape(lambda x, a, k: fn(x, *a, **k), primal, args, kwargs)
    if not hasattr(out, "shape") or len(out.shape) != 1:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"`{name}` must return a 1-D array (one entry per constraint), got {shape}; "
                         "reshape it, e.g. `jnp.atleast_1d(...)` or `.ravel()`.")
    if not jnp.issubdtype(out.dtype, jnp.inexact):
        raise TypeError(f"`{name}` must return floating-point values, got dtype {out.dtype}.")
    return tuple(out.shape)


def as_kkt(init_params, eq_shape, ineq_shape) -> KKTSolution:
    """``init_params`` (a primal pytree or a ``KKTSolution``) with zero duals where absent.

    Args:
      init_params: the primal, or a ``KKTSolution`` warm-starting the duals.
      eq_shape, ineq_shape: the constraint shapes (``None`` when absent).

    Returns:
      A ``KKTSolution`` whose duals match the constraints (``None`` when absent).
    """
    if isinstance(init_params, KKTSolution):
        primal, y, z = init_params
    else:
        primal, y, z = init_params, None, None
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(primal))

    def dual(given, shape, name):
        if shape is None:
            return None
        if given is None:
            return jnp.zeros(shape, dtype)
        if jnp.shape(given) != shape:
            raise ValueError(f"`init_params.{name}` has shape {jnp.shape(given)}, the constraints {shape}.")
        return jnp.asarray(given, dtype)

    return KKTSolution(primal, dual(y, eq_shape, "dual_eq"), dual(z, ineq_shape, "dual_ineq"))


def lagrangian(fun, eq_fun, ineq_fun, params: KKTSolution, *args, **kwargs):
    """``fun(x) + y . eq_fun(x) + z . ineq_fun(x)`` at ``params = (x, y, z)``.

    Args:
      fun, eq_fun, ineq_fun: the problem (constraint functions may be ``None``).
      params: a ``KKTSolution``.
      *args, **kwargs: the problem's arguments.

    Returns:
      The Lagrangian's value.
    """
    x, y, z = params
    value = fun(x, *args, **kwargs)
    if eq_fun is not None:
        value = value + jnp.vdot(y, eq_fun(x, *args, **kwargs))
    if ineq_fun is not None:
        value = value + jnp.vdot(z, ineq_fun(x, *args, **kwargs))
    return value


def kkt_residual(fun, eq_fun, ineq_fun, params: KKTSolution, *args, **kwargs) -> KKTSolution:
    """The KKT conditions as one equation ``F(x, y, z) = 0``.

    ``F = (grad_x L, eq_fun(x), min(z, -ineq_fun(x)))``: stationarity, equality
    feasibility, and inequality feasibility, dual feasibility and complementarity
    together (``min(z, -g) = 0`` iff ``z >= 0``, ``g <= 0`` and ``z g = 0``).

    Args:
      fun, eq_fun, ineq_fun: the problem (constraint functions may be ``None``).
      params: a ``KKTSolution``.
      *args, **kwargs: the problem's arguments.

    Returns:
      A ``KKTSolution`` of residuals.
    """
    x, y, z = params
    lag = lambda x_: lagrangian(fun, eq_fun, ineq_fun, KKTSolution(x_, y, z), *args, **kwargs)
    stationarity = jax.grad(lag)(x)
    eq = None if eq_fun is None else eq_fun(x, *args, **kwargs)
    comp = None if ineq_fun is None else jnp.minimum(z, -ineq_fun(x, *args, **kwargs))
    return KKTSolution(stationarity, eq, comp)


def kkt_parts(residual: KKTSolution) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Norms of the stationarity, equality and complementarity parts of a KKT residual."""
    zero = jnp.zeros((), jnp.result_type(*jax.tree_util.tree_leaves(residual.primal)))
    norm = lambda t: zero if t is None else tu.tree_l2_norm(t).astype(zero.dtype)
    return norm(residual.primal), norm(residual.dual_eq), norm(residual.dual_ineq)


def solve_kkt_implicit(matvec: Callable, b, **kwargs):
    """Linear solve for implicit differentiation through a KKT residual (non-symmetric).

    Dense LU up to ``DENSE_IMPLICIT_MAX`` unknowns (the size is static), GMRES above.

    Args:
      matvec: the Jacobian of the KKT residual as an operator.
      b: right-hand side.
      **kwargs: passed to the solver.

    Returns:
      The solution, a pytree like ``b``.
    """
    size = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(b))
    if size <= DENSE_IMPLICIT_MAX:
        return ls.solve_lu(matvec, b, **kwargs)
    return ls.solve_gmres(matvec, b, **kwargs)
