"""Proximal steps as optax transforms: lasso, AbsTopK hard thresholding, group envelope, SoRA gates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxopt_lab.core.checks import check_int, check_update_args
from jaxopt_lab.ops.sparsify import prox_group_envelope, prox_topk, soft_threshold
from jaxopt_lab.transforms._checks import check_stage

ProxFn = Callable[[Any, Any, Any], Any]  # prox(x, hyperparams, scaling), as in jaxopt_lab.ops.prox


def prox_update(prox_fn: ProxFn, hyperparams: Any = None, scaling: Any = 1.0) -> optax.GradientTransformation:
    """Apply ``prox_fn`` to the point reached by the incoming updates: proximal gradient in optax.

    Placed after the step (e.g. ``chain(optax.sgd(lr), prox_update(prox, hp, scaling=lr))``)
    it returns ``prox(w + u, hyperparams, scaling) - w``, so that ``apply_updates`` lands on
    ``prox_{scaling * h}(w - lr g)``. Any operator with jaxopt's signature
    ``prox(x, hyperparams, scaling)`` (the ones in ``jaxopt_lab.ops.prox``) works.

    Args:
      prox_fn: ``prox(x, hyperparams, scaling) -> x'`` on the params pytree.
      hyperparams: the regularization hyperparameters (may be traced).
      scaling: the prox scaling, normally the learning rate of the preceding step.

    Returns:
      A stateless ``optax.GradientTransformation`` that requires ``params``.

    References:
      Parikh, Boyd, "Proximal Algorithms", Foundations and Trends in Optimization, 2014;
      Blondel et al., "Efficient and Modular Implicit Differentiation", 2021 (arXiv:2105.15183).
    """
    if not callable(prox_fn):
        raise TypeError(f"prox_fn must be callable prox(x, hyperparams, scaling), got {type(prox_fn)}.")

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("prox_update needs `params` in update(updates, state, params).")
        check_update_args("prox_update", updates, params, name="updates")
        moved = jax.tree_util.tree_map(lambda w, u: w + u, params, updates)
        new = prox_fn(moved, hyperparams, scaling)
        return jax.tree_util.tree_map(lambda n, w, u: (n - w).astype(u.dtype), new, params, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def prox_lasso_transform(learning_rate: optax.ScalarOrSchedule, l1reg: float = 1e-3
                         ) -> optax.GradientTransformation:
    """Proximal gradient (ISTA) for ``f + l1reg ||w||_1``: SGD step then soft thresholding.

    Args:
      learning_rate: step size (a float or traced scalar; it is also the prox scaling).
      l1reg: non-negative l1 strength.

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Beck, Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
      Problems", SIAM J. Imaging Sci., 2009.
    """
    if callable(learning_rate):
        raise TypeError("learning_rate must be a scalar here: it is also the prox scaling.")
    if isinstance(l1reg, int | float) and l1reg < 0:
        raise ValueError(f"l1reg must be non-negative, got {l1reg}.")
    return optax.chain(optax.scale_by_learning_rate(learning_rate),
                       prox_update(soft_threshold, l1reg, scaling=learning_rate))


def hard_threshold_topk(learning_rate: optax.ScalarOrSchedule, k: int) -> optax.GradientTransformation:
    """Iterative hard thresholding (AbsTopK): SGD step, then keep the ``k`` largest-magnitude
    entries of each leaf with their signs.

    Args:
      learning_rate: step size or schedule.
      k: entries kept per leaf (a static Python int ``>= 1``; under
        ``optax.inject_hyperparams`` pass ``static_args=("k",)``).

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Blumensath, Davies, "Iterative Hard Thresholding for Compressed Sensing", 2008
      (arXiv:0805.0510).
    """
    if isinstance(k, jax.Array):  # injected by optax.inject_hyperparams: the error names static_args
        check_int(k, "k")
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    return optax.chain(optax.scale_by_learning_rate(learning_rate),
                       prox_update(lambda x, hp, s: prox_topk(x, k, s)))


def group_envelope(learning_rate: optax.ScalarOrSchedule, k: int, weight: float = 1e-3,
                   group_axis: int | None = -1) -> optax.GradientTransformation:
    """Proximal SGD with the weighted group sparse envelope (at most ``k`` groups per leaf).

    Args:
      learning_rate: step size (also the prox scaling; scalar).
      k: groups kept per leaf (a static Python int ``>= 1``).
      weight: positive envelope weight ``d``.
      group_axis: see :func:`prox_group_envelope` (static).
      Under ``optax.inject_hyperparams`` pass ``static_args=("k", "group_axis")``.

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Refael, Arbel, Huleihel, "Learning k-Level Structured Sparse Neural Networks Using
      Group Envelope Regularization", 2022 (arXiv:2212.12921).
    """
    if isinstance(k, jax.Array):  # injected by optax.inject_hyperparams: the error names static_args
        check_int(k, "k")
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    if group_axis is not None:
        group_axis = check_int(group_axis, "group_axis", minimum=None)
    if isinstance(weight, int | float) and weight <= 0:
        raise ValueError(f"weight must be positive, got {weight}.")
    prox = lambda x, hp, s: prox_group_envelope(x, (k, hp), s, group_axis)
    return optax.chain(optax.scale_by_learning_rate(learning_rate), prox_update(prox, weight, learning_rate))


def sora_gate(learning_rate: optax.ScalarOrSchedule, l1reg: float, gate_mask: Any
              ) -> optax.GradientTransformation:
    """SoRA gate sparsification: SGD step, then soft thresholding of the gate leaves only.

    Every leaf gets the SGD step; the gates are then thresholded at ``learning_rate * l1reg``.
    :func:`jaxopt_lab.transforms.sora.sora` is the full method (a ``base`` optimizer on the
    adapters, the ``xi`` schedule, and the parameterization and pruning helpers).

    Args:
      learning_rate: step size (also the prox scaling; scalar).
      l1reg: non-negative sparsity strength on the gates.
      gate_mask: pytree of bools (or ``params -> pytree``) marking the gate leaves.

    Returns:
      An ``optax.GradientTransformation`` that requires ``params``.

    References:
      Ding, Lv, Wang, Chen, Wang, Zheng, Sun, Liu, "Sparse Low-rank Adaptation of
      Pre-trained Language Models", 2023 (arXiv:2311.11696).
    """
    if isinstance(l1reg, int | float) and l1reg < 0:
        raise ValueError(f"l1reg must be non-negative, got {l1reg}.")
    return optax.chain(check_stage("sora_gate", "updates"), optax.scale_by_learning_rate(learning_rate),
                       optax.masked(prox_update(soft_threshold, l1reg, learning_rate), gate_mask))


__all__ = ["prox_update", "prox_lasso_transform", "hard_threshold_topk", "group_envelope", "sora_gate"]
