"""ZO-GraSP: gradient-signal-preservation pruning scores from function values only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.core.checks import check_positive
from jaxopt_lab.zeroth_order.coordinate import cge
from jaxopt_lab.zeroth_order.randomized import rge


def zo_grasp_scores(fun: Callable, params: Any, key: jax.Array | None, *args, method: str = "rge",
                    num_directions: int = 64, smoothing: float = 1e-3, hvp_step: float = 1e-2,
                    difference: str = "forward", **kwargs) -> Any:
    """Zeroth-order GraSP scores ``params * (H g)`` (higher: keep), for layer-wise densities.

    GraSP prunes the weights with the largest ``S = -theta * (H g)`` (their removal
    preserves gradient flow best), so ``-S = theta * (H g)`` ranks the weights to keep;
    feed it to :func:`~jaxopt_lab.zeroth_order.layerwise_density`. DeepZero replaces
    both derivatives by zeroth-order estimates: ``g_hat`` at ``theta`` and the
    Hessian-gradient product by the difference of two estimates,
    ``H g ~ ||g_hat|| (g_hat(theta + delta g_hat / ||g_hat||) - g_hat(theta)) / delta``,
    with the same random directions at both points (common random numbers, so for a
    quadratic the randomized difference is ``1/q sum u u^T H g``: unbiased).

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays (the network at initialization).
      key: a PRNG key (unused, may be ``None``, with ``method="cge"``).
      *args, **kwargs: passed to ``fun``.
      method: ``"rge"`` (``num_directions`` Gaussian directions) or ``"cge"`` (every
        coordinate: deterministic, ``d + 1`` evaluations per gradient).
      num_directions: RGE directions (static).
      smoothing: finite-difference radius of the gradient estimates.
      hvp_step: ``delta > 0``, the length of the step along ``g_hat`` for ``H g``.
      difference: ``"forward"`` or ``"central"`` differences for the gradient estimates.

    Returns:
      A pytree like ``params`` of scores ``theta * (H g)``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025), Sec. 4; Wang, Zhang and Grosse, "Picking
      winning tickets before training by preserving gradient flow", 2020
      (arXiv:2002.07376).
    """
    if method not in ("rge", "cge"):
        raise ValueError(f"`method` must be 'rge' or 'cge', got {method!r}.")
    check_positive(hvp_step, "hvp_step")
    if method == "rge":
        if key is None:
            raise ValueError("`key` (a PRNG key) is required with method='rge'.")
        estimate = lambda p: rge(fun, p, key, *args, num_directions=num_directions,
                                 smoothing=smoothing, difference=difference, **kwargs)[1]
    else:
        estimate = lambda p: cge(fun, p, *args, smoothing=smoothing, difference=difference, **kwargs)[1]
    leaves = jax.tree_util.tree_leaves
    g = estimate(params)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves(g)))
    scale = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)
    step = jnp.asarray(hvp_step)
    shifted = jax.tree_util.tree_map(lambda p, e: p + (step * scale * e).astype(p.dtype), params, g)
    g_shift = estimate(shifted)
    return jax.tree_util.tree_map(
        lambda p, a, b: (p * (norm * (a - b) / step).astype(p.dtype)), params, g_shift, g)
