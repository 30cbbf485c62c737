"""Pytree arithmetic used across the library.

Every function takes and returns pytrees of arrays with matching structure; the
names follow jaxopt's ``tree_util`` module so that migrated code keeps working.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core import checks as _checks

PyTree = Any


def tree_map(f, tree, *rest, is_leaf=None):
    """``jax.tree_util.tree_map`` under jaxopt's name.

    Args:
      f: function applied to the leaves; it takes one argument per tree.
      tree: the pytree whose structure is mapped over.
      *rest: further pytrees with the same structure as ``tree`` (or with ``tree``'s
        structure as a prefix), whose leaves are passed to ``f`` alongside.
      is_leaf: optional predicate marking subtrees of ``tree`` to treat as leaves.

    Returns:
      A pytree with the structure of ``tree`` holding ``f(leaf, *rest_leaves)``.
    """
    return jax.tree_util.tree_map(f, tree, *rest, is_leaf=is_leaf)


def _leafwise(op: Callable, symbol: str, name: str) -> Callable[[PyTree, PyTree], PyTree]:
    """A public leaf-wise binary operation ``x <symbol> y`` on two pytrees of one structure."""

    def binary(tree_x: PyTree, tree_y: PyTree) -> PyTree:
        return jax.tree_util.tree_map(op, tree_x, tree_y)

    binary.__name__ = binary.__qualname__ = name
    binary.__doc__ = f"""Leaf-wise ``x {symbol} y``.

    Args:
      tree_x: a pytree of arrays.
      tree_y: a pytree with the same structure as ``tree_x``.

    Returns:
      A pytree with the structure of ``tree_x``.
    """
    return binary


tree_add = _leafwise(operator.add, "+", "tree_add")
tree_sub = _leafwise(operator.sub, "-", "tree_sub")
tree_mul = _leafwise(operator.mul, "*", "tree_mul")
tree_div = _leafwise(operator.truediv, "/", "tree_div")


def tree_scalar_mul(scalar, tree_x: PyTree) -> PyTree:
    """``scalar * x`` for every leaf (the leaf's dtype is kept).

    Args:
      scalar: a scalar (Python number or 0-d array, possibly traced).
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure and dtypes of ``tree_x``.
    """
    return jax.tree_util.tree_map(lambda x: (scalar * x).astype(x.dtype), tree_x)


def tree_add_scalar_mul(tree_x: PyTree, scalar, tree_y: PyTree) -> PyTree:
    """``x + scalar * y`` for every leaf (the dtype of ``x`` is kept).

    Args:
      tree_x: a pytree of arrays.
      scalar: a scalar (Python number or 0-d array, possibly traced).
      tree_y: a pytree with the same structure as ``tree_x``.

    Returns:
      A pytree with the structure and dtypes of ``tree_x``.
    """
    return jax.tree_util.tree_map(
        lambda x, y: (x + scalar * y).astype(x.dtype), tree_x, tree_y
    )


def tree_vdot(tree_x: PyTree, tree_y: PyTree) -> jax.Array:
    """Real inner product ``<x, y>`` summed over all leaves.

    Each leaf pair is reduced with ``jnp.vdot`` at ``HIGHEST`` precision (which conjugates
    ``x`` for complex leaves) and the results are added.

    Args:
      tree_x: a pytree of arrays.
      tree_y: a pytree with the same structure as ``tree_x``.

    Returns:
      A scalar array (``0.0`` for an empty tree).
    """
    vdots = jax.tree_util.tree_map(
        lambda x, y: jnp.vdot(x, y, precision=jax.lax.Precision.HIGHEST), tree_x, tree_y
    )
    return functools.reduce(operator.add, jax.tree_util.tree_leaves(vdots), jnp.asarray(0.0))


def tree_dot(tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """Leaf-wise ``jnp.dot(x, y)`` (jaxopt's semantics: one product per block).

    Useful for block-diagonal operators stored as pytrees: each leaf of ``tree_x`` is
    a block that multiplies the matching leaf of ``tree_y``. For the scalar inner
    product over all leaves use :func:`tree_vdot`.

    Args:
      tree_x: a pytree of arrays.
      tree_y: a pytree with the same structure as ``tree_x``.

    Returns:
      A pytree with the structure of ``tree_x`` holding ``jnp.dot(x, y)`` per leaf.
    """
    return jax.tree_util.tree_map(jnp.dot, tree_x, tree_y)


def tree_sum(tree_x: PyTree) -> jax.Array:
    """Sum of every entry of every leaf.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A scalar array (``0.0`` for an empty tree).
    """
    sums = [jnp.sum(x) for x in jax.tree_util.tree_leaves(tree_x)]
    return functools.reduce(operator.add, sums, jnp.asarray(0.0))


def tree_l2_norm(tree_x: PyTree, squared: bool = False) -> jax.Array:
    """Euclidean norm of the concatenation of all leaves.

    Args:
      tree_x: a pytree of arrays.
      squared: return the squared norm instead.

    Returns:
      A scalar array.
    """
    sq = [jnp.sum(jnp.real(x * jnp.conj(x))) for x in jax.tree_util.tree_leaves(tree_x)]
    total = functools.reduce(operator.add, sq, jnp.asarray(0.0))
    return total if squared else jnp.sqrt(total)


def tree_norm(tree_x: PyTree, squared: bool = False) -> jax.Array:
    """Alias of :func:`tree_l2_norm` (jaxopt name).

    Args:
      tree_x: a pytree of arrays.
      squared: return the squared norm instead.

    Returns:
      A scalar array, as :func:`tree_l2_norm`.
    """
    return tree_l2_norm(tree_x, squared)


def tree_inf_norm(tree_x: PyTree) -> jax.Array:
    """Largest absolute entry over all leaves.

    Leaves with no entries are skipped.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A scalar array (``0.0`` when there are no entries).
    """
    maxes = [jnp.max(jnp.abs(x)) for x in jax.tree_util.tree_leaves(tree_x) if x.size]
    return functools.reduce(jnp.maximum, maxes, jnp.asarray(0.0))


def tree_zeros_like(tree_x: PyTree) -> PyTree:
    """Zeros with the structure, shapes and dtypes of ``tree_x``.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree of zero arrays.
    """
    return jax.tree_util.tree_map(jnp.zeros_like, tree_x)


def tree_ones_like(tree_x: PyTree) -> PyTree:
    """Ones with the structure, shapes and dtypes of ``tree_x``.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree of arrays of ones.
    """
    return jax.tree_util.tree_map(jnp.ones_like, tree_x)


def tree_negative(tree_x: PyTree) -> PyTree:
    """Leaf-wise ``-x``.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure of ``tree_x``.
    """
    return jax.tree_util.tree_map(operator.neg, tree_x)


def tree_where(cond, tree_x: PyTree, tree_y: PyTree) -> PyTree:
    """Leaf-wise ``where(cond, x, y)``.

    Args:
      cond: a boolean scalar or array (possibly traced), or a pytree of booleans with
        the structure of the trees (then applied leaf by leaf, as in jaxopt).
      tree_x: the pytree selected where ``cond`` is true.
      tree_y: the pytree selected otherwise, with the same structure as ``tree_x``.

    Returns:
      A pytree with the structure of ``tree_x``.
    """
    if not jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(cond)):
        cond, tree_x, tree_y = broadcast_pytrees(cond, tree_x, tree_y)
        return jax.tree_util.tree_map(jnp.where, cond, tree_x, tree_y)
    return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), tree_x, tree_y)


def tree_all_finite(tree_x: PyTree) -> jax.Array:
    """True when every entry of every inexact leaf is finite.

    Integer and boolean leaves are not checked.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A boolean scalar array (``True`` for a tree with no inexact leaves).
    """
    checks = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree_util.tree_leaves(tree_x)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return functools.reduce(jnp.logical_and, checks, jnp.asarray(True))


def tree_conj(tree_x: PyTree) -> PyTree:
    """Leaf-wise complex conjugate.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure of ``tree_x``.
    """
    return jax.tree_util.tree_map(jnp.conj, tree_x)


def tree_real(tree_x: PyTree) -> PyTree:
    """Leaf-wise real part.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure of ``tree_x`` (real dtypes for complex leaves).
    """
    return jax.tree_util.tree_map(jnp.real, tree_x)


def tree_imag(tree_x: PyTree) -> PyTree:
    """Leaf-wise imaginary part.

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure of ``tree_x`` (real dtypes for complex leaves).
    """
    return jax.tree_util.tree_map(jnp.imag, tree_x)


def tree_average(trees: PyTree, weights) -> PyTree:
    """Weighted average over the leading axis of every leaf.

    Args:
      trees: a pytree whose leaves share a leading axis of size ``k``.
      weights: an array of shape ``(k,)``.

    Returns:
      A pytree without the leading axis.
    """
    return jax.tree_util.tree_map(lambda x: jnp.tensordot(weights, x, axes=1), trees)


def tree_single_dtype(tree_x: PyTree, convert_in_jax_dtype: bool = True):
    """The common dtype of all array-like leaves, or ``None`` when there are none.

    Leaves that are not numbers or arrays (``None``, strings, functions) are ignored,
    as in jaxopt.

    Args:
      tree_x: a pytree of arrays (or array-likes).
      convert_in_jax_dtype: report each leaf's dtype as JAX would store it (a NumPy
        ``float64`` leaf counts as ``float32`` unless x64 is enabled); with ``False``,
        the NumPy dtype of each leaf as given.

    Returns:
      The dtype shared by every such leaf, or ``None`` if there is none.

    Raises:
      ValueError: if leaves have different dtypes.
    """
    as_array = jnp.asarray if convert_in_jax_dtype else np.asarray
    dtypes = {as_array(x).dtype for x in jax.tree_util.tree_leaves(tree_x)
              if isinstance(x, bool | int | float | complex | np.ndarray | np.generic | jax.Array)}
    if not dtypes:
        return None
    if len(dtypes) > 1:
        raise ValueError(f"Expected a single dtype in the pytree, found {sorted(map(str, dtypes))}.")
    return dtypes.pop()


def tree_vdot_real(tree_x: PyTree, tree_y: PyTree) -> jax.Array:
    """Real part of ``<x, y> = sum conj(x) y`` over all leaves.

    Args:
      tree_x, tree_y: pytrees of the same structure (real or complex leaves).

    Returns:
      ``sum Re(x) Re(y) + Im(x) Im(y)``, a real scalar.
    """
    parts = jax.tree_util.tree_map(
        lambda x, y: jnp.sum(jnp.real(x) * jnp.real(y)) + jnp.sum(jnp.imag(x) * jnp.imag(y)), tree_x, tree_y
    )
    return functools.reduce(operator.add, jax.tree_util.tree_leaves(parts), jnp.asarray(0.0))


_UNSET = object()


def tree_reduce(function: Callable, tree: PyTree, initializer: Any = _UNSET, is_leaf: Callable | None = None):
    """Fold ``function`` over the leaves of ``tree`` (``jax.tree_util.tree_reduce``, jaxopt's name).

    Args:
      function: a binary function ``(accumulated, leaf) -> accumulated``.
      tree: the pytree whose leaves are folded, in flattening order.
      initializer: optional first accumulated value (required for an empty tree).
      is_leaf: optional predicate marking subtrees to treat as leaves.

    Returns:
      ``function(...function(function(initializer, l0), l1)..., ln)``, or without an
      initializer ``function(...function(l0, l1)..., ln)``.

    Raises:
      TypeError: the tree has no leaves and no ``initializer`` is given.
    """
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=is_leaf)
    if initializer is _UNSET:
        if not leaves:
            raise TypeError("tree_reduce of a pytree with no leaves needs an `initializer`.")
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def get_real_dtype(dtype):
    """The dtype of the real part of ``dtype`` (``complex64 -> float32``); other dtypes unchanged.

    Args:
      dtype: a NumPy / JAX dtype (or anything ``np.dtype`` accepts).

    Returns:
      The real counterpart of a complex dtype, else ``dtype`` itself.
    """
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        return np.finfo(np.dtype(dtype)).dtype
    return dtype


def tree_mean(tree_x: PyTree) -> jax.Array:
    """Mean over leaves of each leaf's mean (jaxopt's ``tree_mean``).

    Args:
      tree_x: a pytree of arrays with at least one leaf.

    Returns:
      ``sum_l mean(leaf_l) / num_leaves``, a scalar.
    """
    means = [jnp.mean(x) for x in jax.tree_util.tree_leaves(tree_x)]
    return functools.reduce(operator.add, means) / len(means)


def tree_reciproqual(tree_x: PyTree) -> PyTree:
    """Leaf-wise ``1 / x`` (jaxopt's spelling).

    Args:
      tree_x: a pytree of arrays.

    Returns:
      A pytree with the structure of ``tree_x``.
    """
    return jax.tree_util.tree_map(jnp.reciprocal, tree_x)


def tree_gram(tree_x: PyTree) -> jax.Array:
    """Gram matrix of a batch of pytrees stacked along the leading axis of every leaf.

    Args:
      tree_x: a pytree whose leaves share a leading axis of size ``m``.

    Returns:
      An ``(m, m)`` array of the inner products ``<x_i, x_j>`` (:func:`tree_vdot`).
    """
    row = jax.vmap(tree_vdot, in_axes=(0, None))
    return jax.vmap(row, in_axes=(None, 0))(tree_x, tree_x)


def tree_unzip(like: PyTree, tree_of_tuples: PyTree, n: int) -> tuple:
    """Split a pytree whose leaves are ``n``-tuples into ``n`` pytrees.

    ``tree_of_tuples`` is typically ``tree_map(f, like, ...)`` with ``f`` returning a
    tuple per leaf (several outputs computed in one pass over each leaf).

    Args:
      like: a pytree with the structure of the result (the tuples are its leaves).
      tree_of_tuples: a pytree with ``like``'s structure whose leaves are tuples.
      n: the length of the tuples.

    Returns:
      A tuple of ``n`` pytrees with ``like``'s structure; the ``i``-th holds the
      ``i``-th entries of the tuples.
    """
    return tuple(jax.tree_util.tree_map(lambda _, t, i=i: t[i], like, tree_of_tuples) for i in range(n))


def broadcast_pytrees(*trees: PyTree) -> tuple:
    """Broadcast single-leaf arguments (e.g. a scalar) to the structure of the others.

    Args:
      *trees: pytrees; those that are a single leaf are repeated over the shared
        structure of the rest.

    Returns:
      A tuple of pytrees that all have that structure.

    Raises:
      ValueError: if the non-leaf trees have different structures.
    """
    is_leaf = lambda t: jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(t))
    structures = {jax.tree_util.tree_structure(t) for t in trees if not is_leaf(t)}
    if len(structures) > 1:
        raise ValueError(f"broadcast_pytrees: incompatible pytree structures {sorted(map(str, structures))}.")
    if not structures:
        return tuple(trees)
    treedef = structures.pop()
    num_leaves = len(jax.tree_util.tree_leaves(next(t for t in trees if not is_leaf(t))))
    return tuple(
        jax.tree_util.tree_unflatten(treedef, [t] * num_leaves) if is_leaf(t) else t for t in trees
    )


# ------------------------------------------------------- argument checks (older names)
# The validators live in core/checks.py; these names stay for code written against them.


def static_int(value, name: str, minimum: int | None = 1) -> int:
    """Alias of :func:`jaxopt_lab.core.checks.check_int` (a static integer option).

    Args:
      value: the option's value.
      name: the argument name used in the message.
      minimum: smallest allowed value (``None``: only the type is checked).

    Returns:
      ``value`` as a Python ``int``.
    """
    return _checks.check_int(value, name, minimum)


def traceable_int(value, name: str, minimum: int = 1):
    """Alias of :func:`jaxopt_lab.core.checks.check_traceable_int`.

    Args:
      value: the option's value (a Python int or an integer scalar array, maybe traced).
      name: the argument name used in the message.
      minimum: smallest allowed value of a concrete ``value``.

    Returns:
      ``value`` unchanged.
    """
    return _checks.check_traceable_int(value, name, minimum)


def check_tree_like(tree: PyTree, reference: PyTree, name: str = "grads", reference_name: str = "params",
                    who: str = "update") -> None:
    """:func:`jaxopt_lab.core.checks.check_same_structure` with the transforms' defaults.

    Args:
      tree: the pytree being checked (the gradients / updates).
      reference: the pytree it must match.
      name, reference_name: their argument names for the message.
      who: the function reporting the error.
    """
    _checks.check_same_structure(tree, reference, name, reference_name, who)


check_eps_dtype = _checks.check_eps_dtype
check_update_args = _checks.check_update_args
