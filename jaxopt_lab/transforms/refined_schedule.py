"""Learning-rate schedules refined from the gradient norms of a previous run."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax


def refined_schedule(grad_norms, peak_value: float = 1.0, smoothing: int = 1) -> optax.Schedule:
    """Per-step schedule ``eta_t ∝ w_t sum_{p > t} w_p`` with ``w_t = ||g_t||^{-2}``.

    From the gradient norms ``||g_1|| ... ||g_T||`` of a previous run (paper, Algorithm 1), the
    refined schedule is ``eta_t = w_t sum_{p=t+1}^T w_p``, rescaled so its maximum is
    ``peak_value``. Constant norms give the linear decay ``(T - t) / T``; small early norms give a
    warm-up, norms growing at the end a faster cool-down: both emerge from the data. Steps past
    ``T`` get the last value (0).

    Args:
      grad_norms: ``(T,)`` positive gradient norms of a previous run (concrete values).
      peak_value: maximum of the schedule (may be a traced scalar).
      smoothing: odd window of a running median applied to the norms first (1 = none).

    Returns:
      An ``optax.Schedule`` ``count -> learning rate``.

    References:
      Defazio, Cutkosky, Mehta, Mishchenko, "Optimal Linear Decay Learning Rate Schedules and
      Further Refinements", 2023 (arXiv:2310.07831).
    """
    norms = np.asarray(grad_norms, dtype=np.float64)
    if norms.ndim != 1 or norms.size < 2:
        raise ValueError(f"grad_norms must be a 1-D array of at least 2 norms, got shape {norms.shape}.")
    if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        raise ValueError("grad_norms must be finite and positive.")
    if isinstance(peak_value, int | float) and peak_value <= 0:
        raise ValueError(f"peak_value must be positive, got {peak_value}.")
    if not isinstance(smoothing, int) or smoothing < 1 or smoothing % 2 == 0:
        raise ValueError(f"smoothing must be a positive odd int, got {smoothing!r}.")
    if smoothing > 1:
        pad = np.pad(norms, smoothing // 2, mode="edge")
        norms = np.median(np.lib.stride_tricks.sliding_window_view(pad, smoothing), axis=1)
    w = norms**-2.0
    tail = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])  # sum_{p > t} w_p
    eta = w * tail
    values = jnp.asarray(eta / eta.max())

    def schedule(count):
        return peak_value * values[jnp.clip(count, 0, values.shape[0] - 1)]

    return schedule


__all__ = ["refined_schedule"]
