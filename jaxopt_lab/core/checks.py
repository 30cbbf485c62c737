"""Argument validators: each raises ``ValueError`` / ``TypeError`` naming the bad argument.

Used by solvers, transforms, bilevel algorithms and sweeps; imports nothing of the package
(:mod:`jaxopt_lab.core.tree_util` re-exports the transforms' checks under their older names).
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def is_concrete(x) -> bool:
    """True when ``x`` holds a value known at trace time (not a tracer).

    Args:
      x: any object; only ``jax.core.Tracer`` instances count as not concrete.

    Returns:
      ``False`` if ``x`` is a JAX tracer, ``True`` otherwise (a Python ``bool``).
    """
    return not isinstance(x, jax.core.Tracer)


def all_concrete(*trees: PyTree) -> bool:
    """True when every leaf of every given pytree is concrete (no tracer among them).

    Args:
      *trees: pytrees (or plain values).

    Returns:
      A Python ``bool``.
    """
    return all(is_concrete(leaf) for tree in trees for leaf in jax.tree_util.tree_leaves(tree))


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


def check_decay(value, name: str) -> None:
    """Raise ``ValueError`` if a concrete ``value`` (a decay or momentum rate) is not in ``[0, 1)``.

    Traced values and ``None`` are not checked.

    Args:
      value: a number.
      name: the argument name used in the message.
    """
    if isinstance(value, int | float) and not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must lie in [0, 1), got {value}.")


def _inject_hint(name: str) -> str:
    return (f"`{name}` sets array shapes or loop structure, so it must be a Python int; under "
            f"optax.inject_hyperparams list it in static_args (e.g. static_args=({name!r},)).")


def check_int(value, name: str, minimum: int | None = 1) -> int:
    """A static (shape-setting) integer option, checked: a Python ``int >= minimum``.

    Arrays (what ``optax.inject_hyperparams`` turns every numeric argument into) are
    rejected with a message that says to pass the option through ``static_args``;
    NumPy integer scalars are accepted.

    Args:
      value: the option's value.
      name: the argument name used in the message.
      minimum: smallest allowed value (``None``: any integer, only the type is checked).

    Returns:
      ``value`` as a Python ``int``.

    Raises:
      TypeError: ``value`` is not an integer (an array, a float, a bool).
      ValueError: ``value < minimum``.
    """
    if isinstance(value, jax.Array | np.ndarray | np.generic) and not isinstance(value, np.integer):
        raise TypeError(f"{_inject_hint(name)} Got an array of dtype {jnp.result_type(value)}.")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a Python int (static), got {type(value).__name__}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_traceable_int(value, name: str, minimum: int = 1):
    """An integer option that may be traced (e.g. an interval ``k`` used in ``count % k``).

    Python ints and integer scalar arrays are accepted (``optax.inject_hyperparams``
    passes its numeric arguments as arrays); a concrete value is checked against
    ``minimum``, a traced one cannot be.

    Args:
      value: the option's value.
      name: the argument name used in the message.
      minimum: smallest allowed value.

    Returns:
      ``value`` unchanged.

    Raises:
      TypeError: ``value`` is not an integer scalar.
      ValueError: a concrete ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral) or hasattr(value, "dtype")):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
    if hasattr(value, "dtype"):
        if jnp.ndim(value) != 0 or not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(f"`{name}` must be an integer scalar, got shape {jnp.shape(value)} "
                            f"dtype {value.dtype}.")
        if isinstance(value, jax.core.Tracer):
            return value
    if int(value) < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {int(value)}.")
    return value


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


def _first_difference(tree, reference, name: str, reference_name: str) -> str:
    """Where two pytree structures differ: the first leaf path present in only one of them."""
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
    ref_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(reference)]
    ref_set, set_ = set(ref_paths), set(paths)
    extra = [p for p in paths if p not in ref_set]
    missing = [p for p in ref_paths if p not in set_]
    if extra:
        return f"leaf {extra[0] or '(root)'} of {name} is not in {reference_name}"
    if missing:
        return f"leaf {missing[0] or '(root)'} of {reference_name} is missing from {name}"
    for p, q in zip(paths, ref_paths, strict=False):  # same paths, different node types
        if p != q:
            return f"{p or '(root)'} differs"
    return "the node types differ (same leaf paths)"


def check_same_structure(tree: PyTree, reference: PyTree, name: str, reference_name: str,
                         who: str | None = None) -> None:
    """Raise ``ValueError`` naming ``name`` and the path where two pytrees differ.

    Structures are compared first (a leaf present in one tree only, or a different
    container), then the shape of every leaf. Key paths are built only when something
    differs, so the check is cheap on large trees.

    Args:
      tree: the pytree being checked (gradients, a mask ...).
      reference: the pytree it must match (the params, or a state buffer built from them).
      name, reference_name: their argument names for the message (a name that is not an
        identifier, e.g. ``"the params given to init"``, is quoted as it is).
      who: the function reporting the error (a prefix of the message), or ``None``.

    Raises:
      ValueError: the structures or a leaf shape differ.
    """
    prefix = f"{who}: " if who else ""
    ref = f"`{reference_name}`" if reference_name.isidentifier() else reference_name
    ta, tb = jax.tree_util.tree_structure(tree), jax.tree_util.tree_structure(reference)
    if ta != tb:  # type: ignore[operator]
        where = _first_difference(tree, reference, f"`{name}`", ref)
        raise ValueError(f"{prefix}`{name}` does not have the pytree structure of {ref}: {where} "
                         f"({ta} vs {tb}).")
    shape = lambda x: x.shape if hasattr(x, "shape") else np.shape(x)
    leaves, ref_leaves = jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(reference)
    if all(shape(x) == shape(y) for x, y in zip(leaves, ref_leaves, strict=True)):
        return  # the common case: no key paths built
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(tree), ref_leaves, strict=True):
        if shape(x) != shape(y):
            raise ValueError(f"{prefix}`{name}` leaf {jax.tree_util.keystr(path) or '(root)'} has shape "
                             f"{jnp.shape(x)}, but {ref} has {jnp.shape(y)} there.")


def check_eps_dtype(eps, tree: PyTree, name: str = "grads", who: str = "update") -> None:
    """Raise ``TypeError`` when a concrete ``eps > 0`` rounds to zero in a leaf's dtype.

    A denominator ``sqrt(v) + eps`` (or ``max(h, eps)``) whose ``eps`` underflows to 0
    divides 0 by 0 for a zero gradient: float16's smallest positive number is about
    6e-8, so Adam's default ``eps = 1e-8`` vanishes there (bfloat16 keeps float32's
    range and is unaffected). Traced ``eps`` values are not checked.

    Args:
      eps: the transform's ``eps`` option.
      tree: the gradients (their leaf dtypes are the ones that matter).
      name: the tree's argument name for the message.
      who: the function reporting the error.

    Raises:
      TypeError: ``eps`` rounds to zero in the dtype of a leaf of ``tree``.
    """
    if eps is None or isinstance(eps, jax.core.Tracer):
        return
    value = float(np.max(np.asarray(eps)))
    if value <= 0:
        return
    dtypes = {np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else jnp.result_type(leaf)
              for leaf in jax.tree_util.tree_leaves(tree)}
    if all(not jnp.issubdtype(d, jnp.floating) or value >= float(jnp.finfo(d).smallest_subnormal) / 2
           for d in dtypes):
        return  # the common case: no key paths built
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            continue
        tiny = float(jnp.finfo(dtype).smallest_subnormal)
        if value < tiny / 2:  # rounds to zero in this dtype
            raise TypeError(
                f"{who}: `{name}` leaf {jax.tree_util.keystr(path) or '(root)'} is {dtype}, where "
                f"`eps`={value:g} rounds to 0 (smallest positive {dtype} number: {tiny:.3g}), so a zero "
                f"gradient would give 0/0. Use bfloat16 or float32, or pass eps >= {tiny:.3g} "
                f"(e.g. 1e-4 for float16).")


def check_update_args(who: str, grads: PyTree, params: PyTree = None, *, state_like: PyTree = None,
                      name: str = "grads", eps=None, **functions) -> None:
    """The argument checks shared by the transforms' ``update`` (run before any tracing).

    Args:
      who: the transform, for the messages.
      grads: the incoming updates / gradients.
      params: the ``params`` given to ``update``; ``grads`` must match them in structure
        and leaf shapes.
      state_like: a state buffer built from the params at ``init`` (e.g. a moment), the
        reference when ``params`` is ``None``; both ``None`` skips the comparison.
      name: the argument name of ``grads`` for the messages (``"grads"``/``"updates"``).
      eps: the transform's denominator floor, checked against the leaf dtypes
        (:func:`check_eps_dtype`); ``None`` skips it.
      **functions: extra arguments that must be callable when given
        (``value_fn=value_fn``, ``logits_fn=logits_fn`` ...); ``None`` is not checked.

    Raises:
      TypeError: a given function is not callable, or ``eps`` vanishes in a leaf dtype.
      ValueError: ``grads`` does not match ``params`` (or ``state_like``).
    """
    for fn_name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"{who}: the extra argument `{fn_name}` must be callable "
                            f"(params -> ...), got {type(fn).__name__}.")
    if params is not None:
        check_same_structure(grads, params, name, "params", who)
    elif state_like is not None:
        check_same_structure(grads, state_like, name, "the params given to init", who)
    if eps is not None:
        check_eps_dtype(eps, grads, name, who)


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
    "all_concrete",
    "check_callable",
    "check_eps_dtype",
    "check_finite_tree",
    "check_int",
    "check_params_dtype",
    "check_params_tree",
    "check_positive",
    "check_same_structure",
    "check_standard_options",
    "check_tolerance",
    "check_traceable_int",
    "check_update_args",
    "is_concrete",
    "signature_params",
    "uses_line_search",
]
