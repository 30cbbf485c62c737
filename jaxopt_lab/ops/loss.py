"""Losses with jaxopt's names and signatures (``loss(label, prediction)``).

References:
  Blondel, Martins and Niculae, "Learning with Fenchel-Young losses", 2020
  (arXiv:1901.02324); Martins and Astudillo, "From softmax to sparsemax", 2016
  (arXiv:1602.02068); Huber, "Robust estimation of a location parameter", 1964.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def sparse_plus(x) -> jax.Array:
    """Sparse analogue of softplus: 0 below -1, ``(x + 1)^2 / 4`` on [-1, 1], x above.

    Args:
      x: input array.

    Returns:
      ``sparse_plus(x)`` elementwise.

    References:
      Martins and Astudillo, "From softmax to sparsemax", 2016 (arXiv:1602.02068).
    """
    return jnp.where(x <= -1.0, 0.0, jnp.where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


def sparse_sigmoid(x) -> jax.Array:
    """Derivative of :func:`sparse_plus`: ``clip((x + 1) / 2, 0, 1)``.

    Args:
      x: input array.

    Returns:
      Values in [0, 1].

    References:
      Martins and Astudillo, "From softmax to sparsemax", 2016 (arXiv:1602.02068).
    """
    return jnp.clip(0.5 * (x + 1.0), 0.0, 1.0)


def binary_logistic_loss(label, logit) -> jax.Array:
    """``softplus(logit) - label * logit`` for ``label`` in {0, 1}.

    Args:
      label: 0 or 1.
      logit: score.

    Returns:
      The loss value.

    References:
      Blondel et al., "Learning with Fenchel-Young losses", 2020 (arXiv:1901.02324).
    """
    return jax.nn.softplus(logit) - label * logit


def binary_sparsemax_loss(label, logit) -> jax.Array:
    """``sparse_plus(logit) - label * logit`` for ``label`` in {0, 1}.

    Args:
      label: 0 or 1.
      logit: score.

    Returns:
      The loss value.

    References:
      Blondel et al., "Learning with Fenchel-Young losses", 2020 (arXiv:1901.02324).
    """
    return sparse_plus(logit) - label * logit


def binary_hinge_loss(label, score) -> jax.Array:
    """``max(0, 1 - s * score)`` with ``s = 2 label - 1``.

    Args:
      label: 0 or 1.
      score: score.

    Returns:
      The loss value.

    References:
      Cortes and Vapnik, "Support-vector networks", 1995.
    """
    return jax.nn.relu(1.0 - (2.0 * label - 1.0) * score)


def binary_perceptron_loss(label, score) -> jax.Array:
    """``max(0, -s * score)`` with ``s = 2 label - 1``.

    Args:
      label: 0 or 1.
      score: score.

    Returns:
      The loss value.

    References:
      Rosenblatt, "The perceptron", 1958.
    """
    return jax.nn.relu(-(2.0 * label - 1.0) * score)


def huber_loss(target, pred, delta: float = 1.0) -> jax.Array:
    """Quadratic within ``delta`` of the target, linear beyond.

    Args:
      target: target value.
      pred: prediction.
      delta: switch point.

    Returns:
      ``0.5 a^2`` if ``a <= delta`` else ``delta (a - 0.5 delta)``, ``a = |pred - target|``.

    References:
      Huber, "Robust estimation of a location parameter", 1964.
    """
    a = jnp.abs(pred - target)
    return jnp.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))


def multiclass_logistic_loss(label, logits) -> jax.Array:
    """``logsumexp(logits) - logits[label]``.

    Args:
      label: integer class.
      logits: scores, shape ``(k,)``.

    Returns:
      The loss value.

    References:
      Blondel et al., "Learning with Fenchel-Young losses", 2020 (arXiv:1901.02324).
    """
    return jax.nn.logsumexp(logits) - jnp.take(logits, label)


def _sparsemax(scores):
    z = jnp.sort(scores)[::-1]
    k = jnp.arange(1, z.shape[0] + 1, dtype=scores.dtype)
    cs = jnp.cumsum(z)
    support = 1.0 + k * z > cs
    kz = jnp.sum(support)
    tau = (jnp.take(cs, kz - 1) - 1.0) / kz
    return jnp.maximum(scores - tau, 0.0)


def multiclass_sparsemax_loss(label, scores) -> jax.Array:
    """Fenchel-Young loss of sparsemax: ``<p, s> - 0.5 ||p||^2 + 0.5 - s[label]``.

    Args:
      label: integer class.
      scores: shape ``(k,)``.

    Returns:
      The loss value (``p = sparsemax(s)``, the projection of ``s`` on the simplex).

    References:
      Martins and Astudillo, "From softmax to sparsemax", 2016 (arXiv:1602.02068).
    """
    p = _sparsemax(scores)
    return jnp.vdot(p, scores) - 0.5 * jnp.vdot(p, p) + 0.5 - jnp.take(scores, label)


def multiclass_hinge_loss(label, scores) -> jax.Array:
    """Crammer-Singer hinge: ``max_j (scores_j + [j != label]) - scores[label]``.

    Args:
      label: integer class.
      scores: shape ``(k,)``.

    Returns:
      The loss value.

    References:
      Crammer and Singer, "On the algorithmic implementation of multiclass
      kernel-based vector machines", 2001.
    """
    margin = 1.0 - jax.nn.one_hot(label, scores.shape[-1], dtype=scores.dtype)
    return jnp.max(scores + margin) - jnp.take(scores, label)


def multiclass_perceptron_loss(label, scores) -> jax.Array:
    """``max_j scores_j - scores[label]``.

    Args:
      label: integer class.
      scores: shape ``(k,)``.

    Returns:
      The loss value.

    References:
      Collins, "Discriminative training methods for hidden Markov models", 2002.
    """
    return jnp.max(scores) - jnp.take(scores, label)


def make_fenchel_young_loss(max_fun: Callable) -> Callable:
    """Fenchel-Young loss ``max_fun(scores) - <y_true, scores>`` of a convex ``max_fun``.

    Args:
      max_fun: the conjugate regularizer, e.g. ``logsumexp``.

    Returns:
      ``loss(y_true, scores, *args, **kwargs)``; its gradient in ``scores`` is
      ``grad max_fun(scores) - y_true``.

    References:
      Blondel et al., "Learning with Fenchel-Young losses", 2020 (arXiv:1901.02324).
    """

    def fy_loss(y_true, scores, *args, **kwargs):
        return max_fun(scores, *args, **kwargs) - jnp.vdot(y_true, scores)

    return fy_loss


def _stablemax_s(x):
    # s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0; each branch evaluated where it is finite.
    # (where, not maximum/minimum: those split the derivative at 0 between the branches; s' = 1 there)
    pos = x >= 0
    return jnp.where(pos, jnp.where(pos, x, 0) + 1.0, 1.0 / (1.0 - jnp.where(pos, 0, x)))


def stablemax(logits, axis: int = -1) -> jax.Array:
    """StableMax, a softmax replacement: ``s(x_i) / sum_j s(x_j)``.

    ``s(x) = x + 1`` for ``x >= 0`` and ``1 / (1 - x)`` for ``x < 0`` grows linearly
    instead of exponentially, so large logits do not round the probabilities to exactly
    0 and 1 (softmax collapse) in float32.

    Args:
      logits: scores.
      axis: the class axis.

    Returns:
      Probabilities of the same shape, summing to one along ``axis``.

    References:
      Prieto, Barsbey, Mediano, Birdal, "Grokking at the Edge of Numerical Stability", 2025
      (arXiv:2501.04697).
    """
    s = _stablemax_s(jnp.asarray(logits))
    return s / jnp.sum(s, axis=axis, keepdims=True)


def log_stablemax(logits, axis: int = -1) -> jax.Array:
    """``log stablemax(logits)``, computed as ``log s(x_i) - log sum_j s(x_j)``.

    Args:
      logits: scores.
      axis: the class axis.

    Returns:
      Log-probabilities of the same shape.

    References:
      Prieto et al., "Grokking at the Edge of Numerical Stability", 2025 (arXiv:2501.04697).
    """
    s = _stablemax_s(jnp.asarray(logits))
    return jnp.log(s) - jnp.log(jnp.sum(s, axis=axis, keepdims=True))


def stablemax_cross_entropy(label, logits) -> jax.Array:
    """StableMax cross-entropy ``-log stablemax(logits)[label]`` (jaxopt's ``loss(label, logits)``).

    Batches: ``jax.vmap`` it, or pass ``logits`` of shape ``(..., k)`` with integer
    ``label`` of shape ``(...)``.

    Args:
      label: integer class (array of them for a batch).
      logits: scores, shape ``(..., k)``.

    Returns:
      The loss value(s), shape of ``label``.

    References:
      Prieto et al., "Grokking at the Edge of Numerical Stability", 2025 (arXiv:2501.04697).
    """
    logp = log_stablemax(logits)
    label = jnp.asarray(label)
    return -jnp.take_along_axis(logp, label[..., None].astype(jnp.int32), axis=-1)[..., 0]
