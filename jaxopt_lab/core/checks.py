"""Argument validators: each raises ``ValueError`` / ``TypeError`` naming the bad argument.

Used by solvers, transforms, bilevel algorithms and sweeps; imports only
:mod:`jaxopt_lab.core.tree_util`.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds a value known at trace time (not a tracer).

    Args:
      x: any object; only ``jax.core.Tracer`` instances count as not concrete.

    Returns:
      ``False`` if ``x`` is a JAX tracer, ``True`` otherwise (a Python ``bool``).
    """
    return not isinstance(x, jax.core.Tracer)


def check_callable(value, name: str) -> None:
    """Raise ``TypeError`` unless ``value`` is callable.

    Args:
      value: the object to check.
      name: the argument name used in the message.
    """
    if not callable(value):
        raise TypeError(f"`{name}` must be callable, got {type(value).__name__}.")


def check_positive(value, name: str, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` if a concrete ``value`` is not positive (or non-negative).

    Traced values are not checked (they cannot be inspected before tracing).

    Args:
      value: a number or array.
      name: the argument name used in the message.
      allow_zero: accept zero.
    """
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
    bad = np.any(arr < 0) if allow_zero else np.any(arr <= 0)
    if bad or np.any(np.isnan(arr)):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {rule}, got {value!r}.")


def check_int(value, name: str, minimum: int = 1) -> None:
    """Raise unless ``value`` is a Python integer ``>= minimum``.

    Args:
      value: the value to check.
      name: the argument name used in the message.
      minimum: smallest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int (static), got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def check_finite_tree(tree, name: str) -> None:
    """Raise ``ValueError`` if a concrete pytree holds NaN or infinite entries.

    Args:
      tree: a pytree of arrays (traced leaves are skipped).
      name: the argument name used in the message.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not is_concrete(leaf):
            continue
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            where = jax.tree_util.keystr(path) or "(root)"
            raise ValueError(f"`{name}` has non-finite entries at {where}.")


def check_params_tree(tree, name: str = "init_params") -> None:
    """Raise ``TypeError`` if a pytree has non-numeric leaves.

    Args:
      tree: a pytree of arrays.
      name: the argument name used in the message.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` is an empty pytree.")
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if isinstance(leaf, jax.Array | np.ndarray | numbers.Number) or hasattr(leaf, "dtype"):
            continue
        where = jax.tree_util.keystr(path) or "(root)"
        raise TypeError(f"`{name}` leaf {where} is a {type(leaf).__name__}, expected an array.")


def check_tolerance(value, name: str = "tol") -> None:
    """Raise ``ValueError`` unless a concrete tolerance is a finite number ``>= 0``.

    ``tol=inf`` would stop every solve at once with a false ``CONVERGED``; NaN would
    never stop one. Traced values and ``None`` are not checked.

    Args:
      value: the tolerance (a number or array).
      name: the argument name used in the message.
    """
    check_positive(value, name, allow_zero=True)
    if value is not None and is_concrete(value) and not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"`{name}` must be finite (a number >= 0), got {value!r}.")


def check_params_dtype(tree, name: str = "init_params", allow_half: bool = True) -> None:
    """Raise ``TypeError`` for parameters a solver cannot iterate on.

    Integer and boolean leaves are rejected (an update would be truncated or the gradient
    undefined), and so is an empty pytree (``ValueError``). With ``allow_half=False``,
    float16 and bfloat16 leaves are rejected too: their 3-4 significant digits cannot
    tell a line search's sufficient decrease from rounding. Works on tracers (only
    dtypes and structure are read), so it can run inside ``jit`` at trace time.

    Args:
      tree: the parameter pytree.
      name: the argument name used in the message.
      allow_half: accept float16 / bfloat16 leaves.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise ValueError(f"`{name}` is an empty pytree; give at least one float array.")
    for path, leaf in leaves:
        if not hasattr(leaf, "dtype") and not isinstance(leaf, numbers.Number):
            continue
        dtype = jnp.result_type(leaf)
        where = jax.tree_util.keystr(path) or "(root)"
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"`{name}` leaf {where} has dtype {dtype}; solvers need floating-point params "
                f"(an integer update would be truncated): cast it, e.g. `x.astype(jnp.float32)`.")
        if not allow_half and dtype in (jnp.float16, jnp.bfloat16):
            raise TypeError(
                f"`{name}` leaf {where} has dtype {dtype}, which this solver does not support "
                "(its line search cannot resolve a sufficient decrease in 16-bit floats): "
                "use float32 or float64.")


def check_same_structure(a, b, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` when two pytrees differ in structure or leaf shapes.

    Args:
      a, b: the pytrees.
      name_a, name_b: their names for the message.
    """
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:  # type: ignore[operator]
        raise ValueError(f"`{name_a}` and `{name_b}` have different pytree structures: {ta} vs {tb}.")
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b), strict=True
    ):
        if jnp.shape(x) != jnp.shape(y):
            where = jax.tree_util.keystr(path) or "(root)"
            raise ValueError(
                f"`{name_a}` and `{name_b}` differ in shape at {where}: "
                f"{jnp.shape(x)} vs {jnp.shape(y)}."
            )


def uses_line_search(stepsize) -> bool:
    """jaxopt's step-size sentinel: whether ``stepsize`` asks for the solver's own step rule.

    A concrete scalar ``<= 0`` (``0.0``, ``-1.0``) selects the line search (or the
    solver's automatic step, e.g. ``1 / L``); a positive number, a traced value, an
    array or a callable schedule fixes the step. The answer is a Python ``bool`` known
    before tracing: solvers keep a sentinel value static in their pytree (see
    ``IterativeSolver._static_option``), so the mode survives ``jit`` while positive
    step sizes stay traced.

    Args:
      stepsize: the solver's ``stepsize`` option.

    Returns:
      ``True`` for a concrete scalar ``<= 0``, ``False`` otherwise.
    """
    if callable(stepsize) or not is_concrete(stepsize) or np.ndim(stepsize) != 0:
        return False
    return bool(np.asarray(stepsize) <= 0)


# jaxopt keywords that mean the same in every solver having them: the Wolfe constants
# and line-search factors > 0. ``stepsize`` has no sign rule: ``<= 0`` is the
# line-search sentinel (:func:`uses_line_search`), only NaN is rejected.
_STANDARD_OPTIONS = {"c1": False, "c2": False, "decrease_factor": False, "max_stepsize": False}


def check_standard_options(solver) -> None:
    """Raise ``ValueError`` naming the option for NaN options and bad standard keywords.

    Every concrete floating option (a Python float or an array) must be free of NaN;
    the standard jaxopt keywords must also satisfy their rule: ``c1``, ``c2``,
    ``decrease_factor``, ``max_stepsize`` > 0 (any ``stepsize`` is accepted: ``<= 0``
    selects the line search, as in jaxopt).
    Traced values, callables, ``None`` and non-numeric options are not checked.
    Called by :meth:`IterativeSolver.__post_init__`, so each solver gets it once.

    Args:
      solver: a dataclass instance (an :class:`IterativeSolver`).
    """
    for f in dataclasses.fields(solver):
        value = getattr(solver, f.name, None)
        if value is None or isinstance(value, bool) or callable(value) or not is_concrete(value):
            continue
        if not isinstance(value, numbers.Number | np.ndarray | jax.Array):
            continue
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number):
            continue
        if np.issubdtype(arr.dtype, np.inexact) and np.any(np.isnan(arr)):
            raise ValueError(f"`{f.name}` must not be NaN, got {value!r}.")
        if f.name in _STANDARD_OPTIONS:
            check_positive(value, f.name, allow_zero=_STANDARD_OPTIONS[f.name])


def signature_params(fun: Callable) -> list[str]:
    """Parameter names of ``fun`` (empty if it has no inspectable signature).

    Args:
      fun: a callable.

    Returns:
      The names of its parameters in order, as given by ``inspect.signature``, or ``[]``
      when the signature cannot be inspected.
    """
    try:
        return list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        return []


__all__ = [
    "check_callable",
    "check_finite_tree",
    "check_int",
    "check_params_dtype",
    "check_params_tree",
    "check_positive",
    "check_same_structure",
    "check_standard_options",
    "check_tolerance",
    "is_concrete",
    "signature_params",
    "uses_line_search",
]
