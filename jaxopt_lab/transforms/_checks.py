"""Argument checks of the transforms: a pass-through checking stage, matrix-only leaves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_update_args


def check_stage(who: str, name: str = "grads", eps=None) -> optax.GradientTransformation:
    """A stateless stage that checks the incoming updates and passes them on unchanged.

    For recipes whose first stage is optax's (which would fail later with a less clear
    message): the updates must match ``params`` (when given) in structure and leaf
    shapes, and a concrete ``eps`` must not vanish in their dtypes
    (:func:`jaxopt_lab.core.checks.check_update_args`).

    Args:
      who: the recipe, for the messages.
      name: the argument name of the updates in the messages.
      eps: the recipe's denominator floor (``None``: not checked).

    Returns:
      An ``optax.GradientTransformation`` with an empty state.
    """
    def update(updates, state, params=None):
        check_update_args(who, updates, params, name=name, eps=eps)
        return updates, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def check_matrix_leaves(tree, who: str) -> None:
    """Raise a ``ValueError`` naming the first leaf of ``tree`` that is not a matrix.

    Args:
      tree: a pytree of arrays (masked-out leaves, ``optax.MaskedNode``, are skipped).
      who: the transform's name, used in the message.

    Returns:
      None.
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) != 2:
            raise ValueError(
                f"{who}: leaf {jax.tree_util.keystr(path) or '<root>'} has shape {jnp.shape(leaf)}, but "
                f"{who} acts on matrices only; mask it out with optax.masked/optax.partition "
                "(or pass `fallback=` to the recipe).")
