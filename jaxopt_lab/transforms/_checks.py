"""A pass-through stage that runs the shared ``update`` argument checks inside a chain."""

from __future__ import annotations

import optax

from jaxopt_lab.core import tree_util as tu


def check_stage(who: str, name: str = "grads", eps=None) -> optax.GradientTransformation:
    """A stateless stage that checks the incoming updates and passes them on unchanged.

    For recipes whose first stage is optax's (which would fail later with a less clear
    message): the updates must match ``params`` (when given) in structure and leaf
    shapes, and a concrete ``eps`` must not vanish in their dtypes
    (:func:`jaxopt_lab.core.tree_util.check_update_args`).

    Args:
      who: the recipe, for the messages.
      name: the argument name of the updates in the messages.
      eps: the recipe's denominator floor (``None``: not checked).

    Returns:
      An ``optax.GradientTransformation`` with an empty state.
    """
    def update(updates, state, params=None):
        tu.check_update_args(who, updates, params, name=name, eps=eps)
        return updates, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
