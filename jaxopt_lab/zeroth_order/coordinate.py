"""Coordinate-wise gradient estimation (CGE), on all coordinates or a sparse mask."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import check_int
from jaxopt_lab.zeroth_order import _perturbations


def cge(fun: Callable, params: Any, *args, smoothing: float = 1e-3, mask: Any = None,
        difference: str = "forward", num_coords: int | None = None, chunk_size: int | None = None,
        **kwargs) -> tuple[jax.Array, Any]:
    """Coordinate-wise finite differences ``g_j = (f(x + mu e_j) - f(x)) / mu`` (or central).

    Deterministic: with all coordinates it is exactly the forward (``O(mu)`` error) or
    central (``O(mu^2)`` error) finite-difference gradient. With a ``mask`` only the
    selected coordinates are evaluated and the estimate is zero elsewhere. The
    unperturbed point and every perturbed point are evaluated in one ``vmap``-ed call
    (``d + 1`` or ``2d + 1`` evaluations, ``d`` being the number of selected coordinates);
    each perturbed point is built inside the mapped function, so with ``chunk_size``
    memory grows with ``chunk_size``, not with ``d``.

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays.
      *args, **kwargs: passed to ``fun``.
      smoothing: ``mu > 0`` (may be traced).
      mask: optional boolean pytree like ``params``; ``True`` marks coordinates to estimate.
        A concrete mask fixes the number of evaluations; a traced mask (e.g. one drawn
        inside ``jit``) needs ``num_coords``.
      difference: ``"forward"`` or ``"central"``.
      num_coords: for a traced mask, the (static) number of ``True`` entries; extra
        entries beyond it are ignored, missing ones are padded with no-ops.
      chunk_size: evaluate at most this many points at once.

    Returns:
      ``(value, grad_estimate)``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    _perturbations.check_options(None, smoothing, chunk_size, difference)
    x, unravel, f = _perturbations.flatten_checked(fun, params, args, kwargs)
    d = x.size
    valid = None
    if mask is None:
        idx = jnp.arange(d)
    else:
        m = _perturbations.flat_mask(mask, params)
        if isinstance(m, np.ndarray):
            idx = jnp.asarray(np.flatnonzero(m))
        else:
            if num_coords is None:
                raise ValueError("`num_coords` (static) is required with a traced `mask`.")
            check_int(num_coords, "num_coords", minimum=1)
            idx = jnp.nonzero(m, size=num_coords, fill_value=d)[0]
            valid = idx < d
    mu = jnp.asarray(smoothing, x.dtype)
    # Index d is out of range: the scatter drops it, giving the unperturbed point.
    if difference == "forward":
        coords = jnp.concatenate([jnp.array([d]), idx])
        signs = jnp.ones(coords.shape, x.dtype)
    else:
        coords = jnp.concatenate([jnp.array([d]), idx, idx])
        k = idx.shape[0]
        signs = jnp.concatenate([jnp.ones(k + 1, x.dtype), -jnp.ones(k, x.dtype)])
    evaluate = lambda i_s: f(x.at[i_s[0]].add(i_s[1] * mu, mode="drop"))
    values = _perturbations.batched_map(evaluate, (coords, signs), chunk_size)
    f0 = values[0]
    mu_v = jnp.asarray(smoothing, values.dtype)
    k = idx.shape[0]
    if difference == "forward":
        coef = (values[1:] - f0) / mu_v
    else:
        coef = (values[1:k + 1] - values[k + 1:]) / (2 * mu_v)
    coef = coef.astype(x.dtype)
    if valid is not None:
        coef = jnp.where(valid, coef, 0)
    g = jnp.zeros_like(x).at[idx].add(coef, mode="drop")
    return f0, unravel(g)
