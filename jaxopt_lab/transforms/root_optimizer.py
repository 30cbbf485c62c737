"""ROOT: robust orthogonalized momentum (outlier soft-thresholding + shape-adaptive Newton-Schulz).

The optax transform of the ROOT optimizer (not root finding: for that see
:class:`jaxopt_lab.Bisection`, :class:`jaxopt_lab.Broyden` ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_decay, check_update_args
from jaxopt_lab.ops.orthogonalize import Coefficients, ns_schedule, orthogonalize
from jaxopt_lab.transforms._checks import check_matrix_leaves


class ScaleByRootState(NamedTuple):
    """State of :func:`scale_by_root`: the momentum buffer.

    Attributes:
      mu: the momentum ``M_t = beta M_{t-1} + g_t``, a pytree of matrices like the
        parameters.
    """

    mu: optax.Updates


def scale_by_root(
    beta: float = 0.95, threshold: float | None = 3.0, nesterov: bool = True, eps: float = 1e-7,
    coefficients: Callable[[tuple[int, int]], Coefficients] | None = None,
) -> optax.GradientTransformation:
    """ROOT direction for matrix parameters.

    ``M_t = beta M_{t-1} + g_t``; the outliers ``O_t = T_eps(M_t)`` (element-wise soft
    thresholding) are removed, leaving the clipped part ``B_t = M_t - O_t = clip(M_t, -eps_t, eps_t)``,
    which is orthogonalized with a shape-dependent Newton-Schulz schedule and scaled by
    ``sqrt(max(1, m / n))``. Here ``eps_t = threshold * RMS(M_t)`` so the split is scale-free
    (``threshold=None`` keeps all of ``M_t``). Every leaf must be a matrix.

    Args:
      beta: momentum decay.
      threshold: outlier threshold in units of the momentum's RMS (``> 0``) or ``None``.
      nesterov: orthogonalize ``g_t + beta M_t`` instead of ``M_t``.
      eps: normalization safeguard.
      coefficients: ``shape -> [(a, b, c), ...]`` to override :func:`ns_schedule` (e.g. the
        paper's tabulated per-shape coefficients).

    Returns:
      An ``optax.GradientTransformation``.

    References:
      He, Han, Zhou, Chen, Liu, Chen, Wang, "ROOT: Robust Orthogonalized Optimizer for
      Neural Network Training", 2025 (arXiv:2511.20626).
    """
    if isinstance(threshold, int | float) and threshold <= 0:
        raise ValueError(f"threshold must be positive (or None), got {threshold}.")
    check_decay(beta, "beta")
    schedule = ns_schedule if coefficients is None else coefficients

    def init(params):
        check_matrix_leaves(params, "scale_by_root")
        return ScaleByRootState(jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        check_update_args("scale_by_root", grads, params, state_like=state.mu)
        del params
        check_matrix_leaves(grads, "scale_by_root")
        mu = jax.tree_util.tree_map(lambda m, g: (beta * m + g).astype(g.dtype), state.mu, grads)

        def leaf(m, g):
            M = (g + beta * m) if nesterov else m
            if threshold is not None:
                Mf = M.astype(jnp.promote_types(M.dtype, jnp.float32))
                cut = threshold * jnp.sqrt(jnp.mean(Mf * Mf))
                M = jnp.clip(Mf, -cut, cut)  # B_t = M_t - T_eps[M_t]
            scale = math.sqrt(max(1.0, g.shape[0] / g.shape[1]))
            return (scale * orthogonalize(M, schedule(g.shape), eps)).astype(g.dtype)

        return jax.tree_util.tree_map(leaf, mu, grads), ScaleByRootState(mu)

    return optax.GradientTransformation(init, update)


def root(
    learning_rate: optax.ScalarOrSchedule, beta: float = 0.95, threshold: float | None = 3.0,
    nesterov: bool = True, eps: float = 1e-7, fallback: optax.GradientTransformation | None = None,
    adam_learning_rate: optax.ScalarOrSchedule | None = None, adam_b1: float = 0.9, adam_b2: float = 0.999,
    adam_eps: float = 1e-8, adam_weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """ROOT optimizer; non-matrix leaves (biases, scales, scalars) go to an AdamW fallback.

    Leaves with ``ndim == 2`` get :func:`scale_by_root` and ``learning_rate``; the others
    (``ndim != 2``: vectors, scalars, conv kernels) go through ``optax.partition`` to
    ``fallback``, by default ``optax.adamw(adam_learning_rate, adam_b1, adam_b2, adam_eps,
    weight_decay=adam_weight_decay)`` (Adam when the weight decay is 0) as Muon
    implementations do (``optax.contrib.muon``). A pytree of matrices only gives the same updates
    as the ROOT chain alone.

    Args:
      learning_rate: step size or schedule for the matrix leaves.
      beta, threshold, nesterov, eps: see :func:`scale_by_root`.
      fallback: a complete optimizer for the non-matrix leaves (with its own learning rate,
        e.g. ``optax.sgd(1e-2)``); ``None`` for the AdamW below.
      adam_learning_rate: the AdamW fallback's step size or schedule (``None``:
        ``learning_rate``).
      adam_b1, adam_b2, adam_eps, adam_weight_decay: the AdamW fallback's moment decays,
        denominator floor and decoupled weight decay.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      He et al., "ROOT: Robust Orthogonalized Optimizer for Neural Network Training", 2025
      (arXiv:2511.20626); Loshchilov, Hutter, "Decoupled Weight Decay Regularization", 2019
      (arXiv:1711.05101).
    """
    core = optax.chain(scale_by_root(beta, threshold, nesterov, eps),
                       optax.scale_by_learning_rate(learning_rate))
    if fallback is None:
        lr = learning_rate if adam_learning_rate is None else adam_learning_rate
        if isinstance(adam_weight_decay, int | float) and adam_weight_decay == 0:
            fallback = optax.adam(lr, b1=adam_b1, b2=adam_b2, eps=adam_eps)  # update needs no params
        else:
            fallback = optax.adamw(lr, b1=adam_b1, b2=adam_b2, eps=adam_eps, weight_decay=adam_weight_decay)
    label = lambda p: "matrix" if jnp.ndim(p) == 2 else "other"
    labels = lambda params: jax.tree_util.tree_map(label, params)
    split = optax.partition({"matrix": core, "other": fallback}, labels)

    def update(grads, state, params=None):
        # Check the gradients here, before the partition's masks meet them, so that a wrong
        # tree is named by its path: against params, or else against the ROOT momentum built
        # at init (its non-matrix leaves are masked out: those take the gradients' shapes).
        is_masked = lambda x: isinstance(x, optax.MaskedNode)
        mu = state.inner_states["matrix"].inner_state[0].mu
        mu_leaves, treedef = jax.tree_util.tree_flatten(mu, is_leaf=is_masked)
        like = jax.tree_util.tree_unflatten(treedef, [jnp.zeros(()) if is_masked(m) else m
                                                      for m in mu_leaves])
        if params is None and jax.tree_util.tree_structure(grads) == treedef:
            like = jax.tree_util.tree_unflatten(treedef, [g if is_masked(m) else m for m, g in
                                                          zip(mu_leaves, jax.tree_util.tree_leaves(grads),
                                                              strict=True)])
        check_update_args("root", grads, params, state_like=like)
        return split.update(grads, state, params)

    return optax.GradientTransformation(split.init, update)


__all__ = ["ScaleByRootState", "scale_by_root", "root"]
