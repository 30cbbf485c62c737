"""AdaHessian: Adam with a spatially averaged Hutchinson Hessian diagonal."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core.checks import check_int, check_positive, check_update_args
from jaxopt_lab.curvature import hutchinson_diag


class ScaleByAdaHessianState(NamedTuple):
    """State of :func:`scale_by_adahessian`.

    Attributes:
      count: steps taken (int32).
      mu: first moment of the gradients.
      nu: second moment of the (spatially averaged) Hessian diagonal.
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def spatial_average(diag: jax.Array, block_size: int) -> jax.Array:
    """Average a Hessian diagonal over consecutive blocks of its last axis.

    Leaves whose last axis is not a multiple of ``block_size`` (and scalars) are
    returned unchanged.

    Args:
      diag: one leaf of the diagonal estimate.
      block_size: ``b``, entries per block (static).

    Returns:
      An array like ``diag`` where each block holds its mean (Eq. 10 of the paper).

    References:
      Yao et al., "ADAHESSIAN", 2020 (arXiv:2006.00719).
    """
    if block_size == 1 or diag.ndim == 0 or diag.shape[-1] % block_size:
        return diag
    blocks = diag.reshape(*diag.shape[:-1], diag.shape[-1] // block_size, block_size)
    mean = jnp.mean(blocks, axis=-1, keepdims=True)
    return jnp.broadcast_to(mean, blocks.shape).reshape(diag.shape)


def scale_by_adahessian(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-4,
                        hessian_power: float = 1.0, block_size: int | None = None,
                        n_samples: int | None = None) -> optax.GradientTransformationExtraArgs:
    """AdaHessian's step ``m_hat / (v_hat^(k/2) + eps)``.

    ``m`` is the bias-corrected gradient momentum; ``v`` the bias-corrected EMA of
    ``D_s^2`` where ``D_s`` is the Hutchinson Hessian diagonal averaged over blocks
    of ``block_size`` entries (:func:`spatial_average`), and ``k`` the Hessian power.

    Extra arguments of ``update(grads, state, params, **extra)``:
      value_fn: ``value_fn(params) -> scalar loss``, differentiated twice
        (forward-over-reverse) for the Hutchinson probes.
      key: PRNG key; the probes are ``curvature.rademacher_like(key, params, n_samples)``.
    Other extra arguments are ignored. ``params`` is required.

    Args:
      b1, b2: decay rates of the first and second moments.
      eps: added to the denominator.
      hessian_power: ``k`` in ``[0, 1]`` (``1`` is the paper's default).
      block_size: spatial averaging block ``b`` along the last axis (a static Python int;
        ``None`` means 1, no averaging).
      n_samples: Hutchinson probes per step (a static Python int ``>= 1``; ``None``
        means 1).
      ``block_size`` and ``n_samples`` set array shapes: under ``optax.inject_hyperparams``
      pass them in ``static_args`` (left at ``None`` they need nothing).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Yao, Gholami, Shen, Mustafa, Keutzer and Mahoney, "ADAHESSIAN: An Adaptive
      Second Order Optimizer for Machine Learning", 2020 (arXiv:2006.00719).
    """
    block_size = 1 if block_size is None else check_int(block_size, "block_size", minimum=1)
    n_samples = 1 if n_samples is None else check_int(n_samples, "n_samples", minimum=1)
    check_positive(eps, "eps")
    check_positive(hessian_power, "hessian_power", allow_zero=True)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByAdaHessianState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params=None, *, value_fn=None, key=None, **extra):
        del extra
        if params is None:
            raise ValueError("scale_by_adahessian needs `params` in update().")
        check_update_args("scale_by_adahessian", grads, params, eps=eps, value_fn=value_fn)
        if value_fn is None:
            raise ValueError("scale_by_adahessian needs the extra argument `value_fn=`.")
        if key is None:
            raise ValueError("scale_by_adahessian needs the extra argument `key=` (PRNG key).")
        diag = hutchinson_diag(value_fn, params, key, n_samples=n_samples)
        diag = jax.tree_util.tree_map(lambda d: spatial_average(d, block_size), diag)
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda m, g: (b1 * m + (1 - b1) * g).astype(m.dtype),
                                    state.mu, grads)
        nu = jax.tree_util.tree_map(lambda v, d: (b2 * v + (1 - b2) * d * d).astype(v.dtype),
                                    state.nu, diag)

        def step(m, v, g):
            t = count.astype(jnp.promote_types(m.dtype, jnp.float32))
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            return (m_hat / (v_hat ** (hessian_power / 2) + eps)).astype(g.dtype)

        upd = jax.tree_util.tree_map(step, mu, nu, grads)
        return upd, ScaleByAdaHessianState(count, mu, nu)

    return optax.GradientTransformationExtraArgs(init, update)


def adahessian(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-4, weight_decay: float = 0.0, hessian_power: float = 1.0,
               block_size: int | None = None,
               n_samples: int | None = None) -> optax.GradientTransformationExtraArgs:
    """AdaHessian with decoupled weight decay.

    ``update`` needs ``value_fn=`` and ``key=`` (see :func:`scale_by_adahessian`).

    Args:
      learning_rate: step size or schedule.
      b1, b2, eps, hessian_power, block_size, n_samples: see :func:`scale_by_adahessian`.
      weight_decay: decoupled weight decay.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Yao et al., 2020 (arXiv:2006.00719).
    """
    return optax.chain(
        scale_by_adahessian(b1, b2, eps, hessian_power, block_size, n_samples),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )
