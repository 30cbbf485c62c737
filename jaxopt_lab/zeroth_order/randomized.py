"""Randomized gradient estimators: RGE (Gaussian / sphere), SPSA and the forward gradient.

All perturbed points of one estimate (and the unperturbed point, whose value is
returned) are evaluated in one ``vmap``-ed call of ``fun``; ``chunk_size`` splits that
call into ``lax.map`` batches when memory is short. Estimates are unbiased for the
gradient of the smoothed function ``f_mu(x) = E f(x + mu u)``; for a quadratic
``grad f_mu = grad f`` exactly, and in general ``grad f_mu - grad f = O(mu^2)`` for
Gaussian and sphere smoothing (the per-sample forward difference is ``O(mu)`` off,
but that term has zero mean).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab.zeroth_order import _perturbations

_DIFFERENCES = ("forward", "central", "antithetic")


def _directional(f, x, unravel, directions, smoothing, difference, scale, chunk_size):
    """Value at ``x`` and ``scale / n * sum_i D_i u_i`` with one batched evaluation."""
    n = directions.shape[0]
    mu = jnp.asarray(smoothing, x.dtype)
    steps = mu * directions
    if difference == "forward":
        points = jnp.concatenate([x[None], x + steps])
    else:  # central and antithetic: symmetric pairs x +- mu u
        points = jnp.concatenate([x[None], x + steps, x - steps])
    values = _perturbations.batched_map(f, points, chunk_size)
    f0 = values[0]
    mu_v = jnp.asarray(smoothing, values.dtype)
    if difference == "forward":
        coef = (values[1:] - f0) / mu_v
    else:
        coef = (values[1:n + 1] - values[n + 1:]) / (2 * mu_v)
    g = (coef.astype(directions.dtype) @ directions) * jnp.asarray(scale / n, directions.dtype)
    return f0, unravel(g.astype(x.dtype))


def rge(fun: Callable, params: Any, key: jax.Array, *args, num_directions: int = 1,
        smoothing: float = 1e-3, distribution: str = "gaussian", difference: str = "forward",
        chunk_size: int | None = None, **kwargs) -> tuple[jax.Array, Any]:
    """Randomized gradient estimate from ``q`` random directional differences.

    With directions ``u_i`` and radius ``mu``:

    - ``forward``: ``g = c/q sum_i (f(x + mu u_i) - f(x)) / mu u_i`` (``q + 1`` evaluations);
    - ``central``: ``g = c/q sum_i (f(x + mu u_i) - f(x - mu u_i)) / (2 mu) u_i``
      (``2q + 1`` evaluations);
    - ``antithetic``: the ``q`` evaluations are spent on ``q/2`` antithetic pairs
      ``x +- mu u_i`` (``q`` must be even); this is ``central`` at the cost of ``forward``.

    ``c = 1`` for Gaussian directions and ``c = d`` (the dimension) for directions uniform
    on the unit sphere, so that both estimate ``grad f`` (exactly in expectation for
    quadratics). Bias in expectation: ``O(mu^2)`` for every difference (the ``O(mu)``
    term of a forward difference has zero mean); the per-sample error of a forward
    difference is ``O(mu)``, of a central one ``O(mu^2)``. Variance for a linear ``f``:
    ``E||g - grad f||^2 = (d + 1) ||grad f||^2 / q`` (Gaussian), ``(d - 1) ||grad f||^2 / q``
    (sphere).

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays.
      key: a PRNG key.
      *args, **kwargs: passed to ``fun``.
      num_directions: ``q >= 1`` (static).
      smoothing: ``mu > 0`` (may be traced).
      distribution: ``"gaussian"`` or ``"sphere"``.
      difference: ``"forward"``, ``"central"`` or ``"antithetic"``.
      chunk_size: evaluate at most this many points at once (``None``: all at once).

    Returns:
      ``(value, grad_estimate)``: ``fun(params)`` and a pytree like ``params``.

    References:
      Nesterov and Spokoiny, "Random gradient-free minimization of convex functions",
      Foundations of Computational Mathematics, 2017; Liu et al., "A primer on
      zeroth-order optimization in signal processing and machine learning", 2020
      (arXiv:2006.06224).
    """
    _perturbations.check_options(num_directions, smoothing, chunk_size, difference, _DIFFERENCES)
    if distribution not in ("gaussian", "sphere"):
        raise ValueError(f"`distribution` must be 'gaussian' or 'sphere', got {distribution!r}.")
    if difference == "antithetic" and num_directions % 2:
        raise ValueError(f"`num_directions` must be even for antithetic differences, got {num_directions}.")
    x, unravel, f = _perturbations.flatten_checked(fun, params, args, kwargs)
    n = num_directions // 2 if difference == "antithetic" else num_directions
    u = _perturbations.sample_directions(key, n, x.size, distribution, x.dtype)
    scale = x.size if distribution == "sphere" else 1.0
    return _directional(f, x, unravel, u, smoothing, difference, scale, chunk_size)


def spsa(fun: Callable, params: Any, key: jax.Array, *args, num_directions: int = 1,
         smoothing: float = 1e-3, difference: str = "central", chunk_size: int | None = None,
         **kwargs) -> tuple[jax.Array, Any]:
    """Simultaneous-perturbation stochastic approximation (Rademacher directions).

    ``g_j = 1/q sum_i (f(x + c D_i) - f(x - c D_i)) / (2c) / D_ij`` with ``D_ij = +-1``, so
    ``1 / D_ij = D_ij``. Unbiased for quadratics; ``E||g - grad f||^2 = (d - 1)
    ||grad f||^2 / q`` for a linear ``f``.

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays.
      key: a PRNG key.
      *args, **kwargs: passed to ``fun``.
      num_directions: ``q >= 1`` (static).
      smoothing: perturbation size ``c > 0``.
      difference: ``"central"`` (two-sided, ``2q + 1`` evaluations) or ``"forward"``.
      chunk_size: evaluate at most this many points at once.

    Returns:
      ``(value, grad_estimate)``.

    References:
      Spall, "Multivariate stochastic approximation using a simultaneous perturbation
      gradient approximation", IEEE Transactions on Automatic Control, 1992.
    """
    _perturbations.check_options(num_directions, smoothing, chunk_size, difference)
    x, unravel, f = _perturbations.flatten_checked(fun, params, args, kwargs)
    u = _perturbations.sample_directions(key, num_directions, x.size, "rademacher", x.dtype)
    return _directional(f, x, unravel, u, smoothing, difference, 1.0, chunk_size)


def forward_gradient(fun: Callable, params: Any, key: jax.Array, *args, num_directions: int = 1,
                     chunk_size: int | None = None, **kwargs) -> tuple[jax.Array, Any]:
    """Forward gradient: ``g = 1/q sum_i (grad f . u_i) u_i`` with exact JVPs, Gaussian ``u_i``.

    The exact-directional baseline of RGE (no smoothing bias): unbiased for any
    differentiable ``f``, with the variance of RGE for a linear ``f``.

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``, differentiable in forward mode.
      params: a pytree of float arrays.
      key: a PRNG key.
      *args, **kwargs: passed to ``fun``.
      num_directions: ``q >= 1`` (static).
      chunk_size: at most this many JVPs at once.

    Returns:
      ``(value, grad_estimate)``.

    References:
      Baydin et al., "Gradients without backpropagation", 2022 (arXiv:2202.08587).
    """
    _perturbations.check_options(num_directions, None, chunk_size)
    x, unravel, f = _perturbations.flatten_checked(fun, params, args, kwargs)
    u = _perturbations.sample_directions(key, num_directions, x.size, "gaussian", x.dtype)
    values, slopes = _perturbations.batched_map(lambda v: jax.jvp(f, (x,), (v,)), u, chunk_size)
    g = (slopes.astype(u.dtype) @ u) / jnp.asarray(num_directions, u.dtype)
    return values[0], unravel(g.astype(x.dtype))
