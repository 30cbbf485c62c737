"""Implicit differentiation of roots and fixed points, in forward and reverse mode.

If ``x*(theta)`` solves ``F(x, theta) = 0``, the implicit function theorem gives
``dx*/dtheta = -(dF/dx)^{-1} dF/dtheta``. :func:`custom_root` attaches this rule to
any solver as a single :func:`jax.custom_jvp` whose tangent is a
:func:`jax.lax.custom_linear_solve` of the optimality Jacobian. JAX linearizes that
rule for forward mode (``jax.jvp``, ``jax.jacfwd``) and transposes the linear solve
for reverse mode (``jax.grad``, ``jax.vjp``); Hessians of hyper-objectives follow by
composition. Derivatives flow to the solver's ``*args``/``**kwargs``; the initial
point gets none.

References:
  Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
  (arXiv:2105.15183).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.linalg import linear_solve as ls

PyTree = Any


def _is_symmetric(solve: Callable, symmetric: bool | None) -> bool:
    if symmetric is not None:
        return bool(symmetric)
    base = getattr(solve, "func", solve)
    return base in ls.SYMMETRIC_SOLVERS


def _zero_tangent(x):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, dtype=jax.dtypes.float0)


def _linear_solve(matvec, rhs, solve, symmetric, example):
    # Solve on one raveled vector: custom_linear_solve's transpose needs every leaf
    # of the right-hand side to be linear in the tangents, and a leaf the
    # arguments do not reach (e.g. an unpenalized bias) is a constant zero.
    del example
    flat_rhs, unravel = ravel_pytree(rhs)
    flat_mv = lambda v: ravel_pytree(matvec(unravel(v)))[0]
    solve_fn = lambda mv, b: solve(mv, b)
    if symmetric:
        x = jax.lax.custom_linear_solve(flat_mv, flat_rhs, solve_fn, symmetric=True)
    else:
        x = jax.lax.custom_linear_solve(flat_mv, flat_rhs, solve_fn, transpose_solve=solve_fn)
    return unravel(x)


def root_jvp(
    optimality_fun: Callable,
    sol: PyTree,
    args: tuple,
    tangents: tuple,
    solve: Callable = ls.solve_normal_cg,
    kwargs: dict | None = None,
    kwargs_tangents: dict | None = None,
    symmetric: bool | None = None,
) -> PyTree:
    """Jacobian-vector product of a root with respect to its arguments.

    Args:
      optimality_fun: ``F(x, *args, **kwargs)``, zero at the root.
      sol: the root ``x*``.
      args: positional arguments of ``F`` after ``x``.
      tangents: tangents of ``args`` (same structure).
      solve: linear solver ``solve(matvec, b)``.
      kwargs: keyword arguments of ``F``.
      kwargs_tangents: tangents of ``kwargs``.
      symmetric: whether ``dF/dx`` is symmetric (inferred from ``solve`` if None).

    Returns:
      The tangent of ``x*``, a pytree like ``sol``.
    """
    kwargs = {} if kwargs is None else kwargs
    if kwargs_tangents is None:
        kwargs_tangents = jax.tree_util.tree_map(_zero_tangent, kwargs)
    _, Bv = jax.jvp(
        lambda a, k: optimality_fun(sol, *a, **k), (tuple(args), kwargs), (tuple(tangents), kwargs_tangents)
    )
    _, matvec = jax.linearize(lambda x: optimality_fun(x, *args, **kwargs), sol)
    return _linear_solve(matvec, tu.tree_negative(Bv), solve, _is_symmetric(solve, symmetric), sol)


def root_vjp(
    optimality_fun: Callable,
    sol: PyTree,
    args: tuple,
    cotangent: PyTree,
    solve: Callable = ls.solve_normal_cg,
    kwargs: dict | None = None,
    symmetric: bool | None = None,
):
    """Vector-Jacobian product of a root with respect to its arguments.

    Args:
      optimality_fun: ``F(x, *args, **kwargs)``, zero at the root.
      sol: the root ``x*``.
      args: positional arguments of ``F`` after ``x``.
      cotangent: cotangent of ``x*``.
      solve: linear solver ``solve(matvec, b)``.
      kwargs: keyword arguments of ``F``.
      symmetric: whether ``dF/dx`` is symmetric (inferred from ``solve`` if None).

    Returns:
      A tuple of cotangents for ``args`` (and, when ``kwargs`` is given, a pair
      ``(args_cotangents, kwargs_cotangents)``).
    """
    has_kwargs = kwargs is not None
    kwargs = {} if kwargs is None else kwargs
    _, vjp_x = jax.vjp(lambda x: optimality_fun(x, *args, **kwargs), sol)
    if _is_symmetric(solve, symmetric):
        _, matvec = jax.linearize(lambda x: optimality_fun(x, *args, **kwargs), sol)
    else:
        matvec = lambda u: vjp_x(u)[0]
    u = solve(matvec, cotangent)
    _, vjp_args = jax.vjp(lambda a, k: optimality_fun(sol, *a, **k), tuple(args), kwargs)
    args_ct, kwargs_ct = vjp_args(tu.tree_negative(u))
    return (args_ct, kwargs_ct) if has_kwargs else args_ct


def _custom_root(solver_fun, optimality_fun, solve, has_aux, symmetric):
    @jax.custom_jvp
    def wrapped(init_params, args, kwargs):
        return solver_fun(init_params, *args, **kwargs)

    @wrapped.defjvp
    def wrapped_jvp(primals, tangents):
        init_params, args, kwargs = primals
        _, args_dot, kwargs_dot = tangents
        # Call the decorated function, not solver_fun: under higher-order
        # differentiation (forward over reverse) the outer derivative of the
        # primal must come from this rule too, never from the solver's iterations.
        out = wrapped(init_params, args, kwargs)
        sol = out[0] if has_aux else out
        dsol = root_jvp(
            optimality_fun, sol, args, args_dot, solve, kwargs, kwargs_dot, symmetric
        )
        if has_aux:
            rest = jax.tree_util.tree_map(_zero_tangent, tuple(out[1:]))
            return out, type(out)(dsol, *rest) if _is_namedtuple(out) else (dsol, *rest)
        return out, dsol

    @functools.wraps(solver_fun)
    def caller(init_params, *args, **kwargs):
        return wrapped(init_params, args, kwargs)

    return caller


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def custom_root(
    optimality_fun: Callable,
    has_aux: bool = False,
    solve: Callable | None = None,
    reference_signature: Callable | None = None,
    symmetric: bool | None = None,
) -> Callable:
    """Decorator giving a root-finding solver implicit derivatives.

    The decorated ``solver_fun(init_params, *args, **kwargs)`` returns ``x*`` with
    ``optimality_fun(x*, *args, **kwargs) = 0`` (or ``(x*, aux...)`` when
    ``has_aux``). Its derivatives with respect to ``args`` and ``kwargs`` in both
    forward and reverse mode come from the implicit function theorem.

    Args:
      optimality_fun: ``F(params, *args, **kwargs)``.
      has_aux: whether ``solver_fun`` returns a tuple whose first entry is the
        solution (e.g. an ``OptStep``); the other entries get zero derivatives.
      solve: linear solver ``solve(matvec, b)`` (default :func:`solve_normal_cg`).
      reference_signature: accepted for jaxopt compatibility; arguments are
        matched by position here, so it is not needed.
      symmetric: whether ``dF/dparams`` is symmetric (true for gradients of a
        function). Inferred from ``solve`` when None.

    Returns:
      A decorator.

    References:
      Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
      (arXiv:2105.15183).
    """
    del reference_signature
    if not callable(optimality_fun):
        raise TypeError("`optimality_fun` must be callable.")
    solve = ls.solve_normal_cg if solve is None else solve
    if not callable(solve):
        raise TypeError("`solve` must be callable, e.g. jaxopt_lab.linalg.linear_solve.solve_cg.")

    def decorator(solver_fun):
        return _custom_root(solver_fun, optimality_fun, solve, has_aux, symmetric)

    return decorator


def custom_fixed_point(
    fixed_point_fun: Callable,
    has_aux: bool = False,
    solve: Callable | None = None,
    reference_signature: Callable | None = None,
) -> Callable:
    """Decorator giving a fixed-point solver implicit derivatives.

    The decorated solver returns ``x*`` with ``T(x*, *args) = x*``; derivatives
    come from :func:`custom_root` applied to ``F(x) = T(x) - x``.

    Args:
      fixed_point_fun: ``T(params, *args, **kwargs)``.
      has_aux: whether the solver returns ``(x*, aux...)``.
      solve: linear solver ``solve(matvec, b)`` (default :func:`solve_normal_cg`).
      reference_signature: accepted for jaxopt compatibility.

    Returns:
      A decorator.

    References:
      Blondel et al., "Efficient and Modular Implicit Differentiation", 2021
      (arXiv:2105.15183).
    """
    if not callable(fixed_point_fun):
        raise TypeError("`fixed_point_fun` must be callable.")

    def optimality_fun(x, *args, **kwargs):
        return tu.tree_sub(fixed_point_fun(x, *args, **kwargs), x)

    return custom_root(optimality_fun, has_aux, solve, reference_signature)
