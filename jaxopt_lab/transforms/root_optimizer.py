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

from jaxopt_lab.core.checks import check_update_args
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
    if isinstance(beta, int | float) and not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1), got {beta}.")
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
) -> optax.GradientTransformation:
    """ROOT optimizer; non-matrix leaves go to ``fallback`` through ``optax.partition``.

    Args:
      learning_rate: step size or schedule for the matrix leaves.
      beta, threshold, nesterov, eps: see :func:`scale_by_root`.
      fallback: a complete optimizer (with its own learning rate, e.g. ``optax.adam(1e-3)``)
        for leaves with ``ndim != 2``; without it such leaves raise a ``ValueError``.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      He et al., "ROOT: Robust Orthogonalized Optimizer for Neural Network Training", 2025
      (arXiv:2511.20626).
    """
    core = optax.chain(scale_by_root(beta, threshold, nesterov, eps),
                       optax.scale_by_learning_rate(learning_rate))
    if fallback is None:
        return core
    label = lambda p: "matrix" if jnp.ndim(p) == 2 else "other"
    labels = lambda params: jax.tree_util.tree_map(label, params)
    return optax.partition({"matrix": core, "other": fallback}, labels)


__all__ = ["ScaleByRootState", "scale_by_root", "root"]
