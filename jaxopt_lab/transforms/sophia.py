"""Sophia: clipped diagonal-Hessian preconditioning refreshed every k steps."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_int, check_positive, check_traceable_int, check_update_args
from jaxopt_lab.curvature import gnb_diag, hutchinson_diag


class ScaleBySophiaState(NamedTuple):
    """State of :func:`scale_by_sophia`.

    Attributes:
      count: steps taken (int32).
      mu: EMA of the gradients.
      hess: EMA of the diagonal curvature estimates.
    """

    count: jax.Array
    mu: optax.Updates
    hess: optax.Updates


def scale_by_sophia(b1: float = 0.965, b2: float = 0.99, gamma: float = 0.01, eps: float = 1e-12,
                    update_interval: int = 10, estimator: str = "hutchinson",
                    n_samples: int | None = None, clip_threshold: float = 1.0,
                    bias_correction: bool = False) -> optax.GradientTransformationExtraArgs:
    """Sophia's update ``clip(m / max(gamma * h, eps), clip_threshold)``.

    ``m`` is an EMA of gradients; ``h`` an EMA (rate ``b2``) of a diagonal
    curvature estimate recomputed only when ``count % update_interval == 0`` (a
    ``lax.cond``, so the other steps cost no Hessian work and nothing branches in
    Python). Estimators: ``"hutchinson"`` (Sophia-H, ``z * (H z)``) and ``"gnb"``
    (Sophia-G, Gauss-Newton-Bartlett with labels sampled from the model).

    Extra arguments of ``update(grads, state, params, **extra)``:
      key: PRNG key for the probes / sampled labels (both estimators).
      value_fn: ``value_fn(params) -> scalar loss`` (``"hutchinson"``); the HVP is
        forward-over-reverse through it.
      logits_fn: ``logits_fn(params) -> logits`` of shape ``(..., C)`` for a
        softmax cross-entropy loss (``"gnb"``).
    Other extra arguments are ignored. ``params`` is required.

    Args:
      b1: gradient EMA rate.
      b2: curvature EMA rate.
      gamma: scale of the curvature in the denominator (the paper's ``rho``/``gamma``).
      eps: floor of the denominator (also guards negative Hutchinson estimates).
      update_interval: ``k >= 1``, steps between curvature estimates (an int; may be
        traced, e.g. by ``optax.inject_hyperparams``).
      estimator: ``"hutchinson"`` or ``"gnb"`` (static).
      n_samples: probes or label draws per estimate (a static Python int ``>= 1``;
        ``None`` means 1). It sets array shapes, so under ``optax.inject_hyperparams``
        pass it in ``static_args``.
      clip_threshold: per-coordinate bound of the update.
      bias_correction: divide the curvature EMA by ``1 - b2**n`` after its ``n``-th
        estimate, as Adam does for its moments (static bool). ``False`` is the paper's
        Algorithm 3, where ``h`` starts at zero and reaches its scale only after about
        ``update_interval / (1 - b2)`` steps; in short runs that leaves almost every
        coordinate clipped (sign descent) for most of training.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Liu, Li, Hall, Liang and Ma, "Sophia: A Scalable Stochastic Second-order
      Optimizer for Language Model Pre-training", 2023 (arXiv:2305.14342).
    """
    update_interval = check_traceable_int(update_interval, "update_interval", minimum=1)
    n_samples = 1 if n_samples is None else check_int(n_samples, "n_samples", minimum=1)
    if estimator not in ("hutchinson", "gnb"):
        raise ValueError(f"`estimator` must be 'hutchinson' or 'gnb', got {estimator!r}.")
    for name, v in (("gamma", gamma), ("eps", eps), ("clip_threshold", clip_threshold)):
        check_positive(v, name)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleBySophiaState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params=None, *, key=None, value_fn=None, logits_fn=None, **extra):
        del extra
        if params is None:
            raise ValueError("scale_by_sophia needs `params` in update().")
        fn_name, fn = ("value_fn", value_fn) if estimator == "hutchinson" else ("logits_fn", logits_fn)
        check_update_args("scale_by_sophia", grads, params, eps=eps, **{fn_name: fn})
        if key is None:
            raise ValueError("scale_by_sophia needs the extra argument `key=` (PRNG key).")
        if fn is None:
            raise ValueError(f"scale_by_sophia(estimator={estimator!r}) needs the extra "
                             f"argument `{fn_name}=`.")
        est = hutchinson_diag if estimator == "hutchinson" else gnb_diag

        def refresh(hess):
            h_hat = est(fn, params, key, n_samples=n_samples)
            return jax.tree_util.tree_map(
                lambda h, e: (b2 * h + (1 - b2) * e).astype(h.dtype), hess, h_hat)

        # Algorithm 3 of the paper: curvature EMA every k steps, gradient EMA every step.
        hess = jax.lax.cond(state.count % update_interval == 0, refresh, lambda h: h, state.hess)
        mu = jax.tree_util.tree_map(lambda m, g: (b1 * m + (1 - b1) * g).astype(m.dtype),
                                    state.mu, grads)
        # Number of curvature estimates so far (one at count 0, then every k steps).
        scale = gamma / (1 - b2 ** (state.count // update_interval + 1)) if bias_correction else gamma
        upd = jax.tree_util.tree_map(
            lambda m, h, g: jnp.clip(m / jnp.maximum(scale * h, eps), -clip_threshold,
                                     clip_threshold).astype(g.dtype), mu, hess, grads)
        return upd, ScaleBySophiaState(state.count + 1, mu, hess)

    return optax.GradientTransformationExtraArgs(init, update)


def sophia(learning_rate: optax.ScalarOrSchedule, b1: float = 0.965, b2: float = 0.99,
           gamma: float = 0.01, eps: float = 1e-12, weight_decay: float = 0.0,
           update_interval: int = 10, estimator: str = "hutchinson", n_samples: int | None = None,
           clip_threshold: float = 1.0,
           bias_correction: bool = False) -> optax.GradientTransformationExtraArgs:
    """Sophia with decoupled weight decay: ``chain(scale_by_sophia,
    add_decayed_weights, scale_by_learning_rate)``.

    ``update`` needs the extra arguments of :func:`scale_by_sophia` (``key=`` and
    ``value_fn=`` for Sophia-H, ``key=`` and ``logits_fn=`` for Sophia-G).

    Args:
      learning_rate: step size or schedule.
      b1, b2, gamma, eps, update_interval, estimator, n_samples, clip_threshold,
        bias_correction: see :func:`scale_by_sophia`.
      weight_decay: decoupled weight decay ``lambda`` (update ``-lr * lambda * params``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Liu et al., 2023 (arXiv:2305.14342); Loshchilov and Hutter, "Decoupled
      Weight Decay Regularization", 2019 (arXiv:1711.05101).
    """
    return optax.chain(
        scale_by_sophia(b1, b2, gamma, eps, update_interval, estimator, n_samples, clip_threshold,
                        bias_correction),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )
