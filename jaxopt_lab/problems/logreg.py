"""Synthetic sweep problems: L2-regularized logistic regression and a small MLP classifier.

Each factory returns a :class:`SweepProblem`, the protocol ``jaxopt-lab sweep`` and
the sweep benchmarks use: a training objective ``loss(params, hparams, data)``
whose ``hparams`` dict holds the problem's numeric hyperparameters, an
``init_params(key)`` for seeded starts, training and evaluation data, and
``metrics(params, hparams, data)`` returning a dict of scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class SweepProblem(NamedTuple):
    """A problem a sweep can train on.

    Attributes:
      loss: ``loss(params, hparams, data) -> scalar`` (the training objective).
      init_params: ``init_params(key) -> params``.
      data: training data (a pytree of arrays).
      eval_data: evaluation data with the same structure.
      metrics: ``metrics(params, hparams, data) -> dict[str, scalar]``.
      hparams: the problem's hyperparameter names and defaults.
    """

    loss: Callable
    init_params: Callable
    data: Any
    eval_data: Any
    metrics: Callable
    hparams: dict


def logistic_data(n: int, d: int, seed: int = 0, noise: float = 1.0, dtype=None):
    """Binary labels from a random linear teacher with logistic noise.

    Args:
      n: number of samples.
      d: number of features.
      seed: NumPy seed.
      noise: scale of the logistic label noise.
      dtype: feature dtype (default: JAX's default float).

    Returns:
      ``(X, y)`` with ``X`` of shape ``(n, d)`` and ``y`` in ``{0, 1}``.
    """
    if n < 1 or d < 1:
        raise ValueError(f"`n` and `d` must be >= 1, got n={n}, d={d}.")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    w = rng.standard_normal(d) * 3.0
    y = (X @ w + noise * rng.logistic(size=n) > 0).astype(np.float64)
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    return jnp.asarray(X, dtype), jnp.asarray(y, dtype)


def logreg_loss(w, l2, X, y) -> jax.Array:
    """Mean logistic loss plus ``0.5 * l2 * ||w||^2``.

    Args:
      w: weights ``(d,)``.
      l2: regularization strength.
      X: features ``(n, d)``.
      y: labels in ``{0, 1}``.

    Returns:
      A scalar.
    """
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * l2 * jnp.sum(w**2)


def logreg(n_samples: int = 2000, n_features: int = 100, seed: int = 0, l2: float = 1e-2) -> SweepProblem:
    """L2-regularized logistic regression on synthetic data (strongly convex).

    Args:
      n_samples: training samples (the evaluation set has half as many).
      n_features: features.
      seed: data seed.
      l2: default regularization strength (the ``"l2"`` hyperparameter).

    Returns:
      A :class:`SweepProblem` with metrics ``train_loss``, ``val_loss``, ``val_accuracy``.
    """
    X, y = logistic_data(n_samples + n_samples // 2, n_features, seed)
    data, eval_data = (X[:n_samples], y[:n_samples]), (X[n_samples:], y[n_samples:])
    dtype = X.dtype

    def loss(w, hp, data):
        return logreg_loss(w, hp["l2"], *data)

    def init_params(key):
        return 0.01 * jax.random.normal(key, (n_features,), dtype)

    def metrics(w, hp, eval_data):
        Xe, ye = eval_data
        return {
            "train_loss": logreg_loss(w, 0.0, *data),
            "val_loss": logreg_loss(w, 0.0, Xe, ye),
            "val_accuracy": jnp.mean(((Xe @ w) > 0) == (ye > 0.5)),
        }

    return SweepProblem(loss, init_params, data, eval_data, metrics, {"l2": l2})


def mlp_init(key, sizes) -> list[dict]:
    """He-initialized weights of an MLP with layer widths ``sizes``.

    Args:
      key: PRNG key.
      sizes: widths, input first, classes last.

    Returns:
      A list of ``{"W", "b"}`` dicts.
    """
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"W": jax.random.normal(k, (a, b)) * jnp.sqrt(2.0 / a), "b": jnp.zeros(b)}
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp_apply(params, X) -> jax.Array:
    """Logits of a tanh MLP.

    Every layer but the last is ``tanh(h W + b)``; the last is affine.

    Args:
      params: MLP parameters from :func:`mlp_init` (a list of ``{"W", "b"}`` dicts).
      X: features ``(n, d)``.

    Returns:
      Logits ``(n, k)``, ``k`` the width of the last layer.
    """
    h = X
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["W"] + layer["b"])
    return h @ params[-1]["W"] + params[-1]["b"]


def mlp_loss(params, l2, X, y) -> jax.Array:
    """Mean softmax cross-entropy plus ``0.5 * l2 * sum ||W||^2``.

    Args:
      params: MLP parameters from :func:`mlp_init`.
      l2: weight decay strength.
      X: features.
      y: integer labels.

    Returns:
      A scalar.
    """
    logits = mlp_apply(params, X)
    ce = jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])
    return ce + 0.5 * l2 * sum(jnp.sum(p["W"] ** 2) for p in params)


def mlp(n_samples: int = 512, n_features: int = 16, hidden: int = 32, n_classes: int = 3,
        seed: int = 0, l2: float = 1e-4) -> SweepProblem:
    """A one-hidden-layer tanh MLP on data labelled by a random two-layer teacher.

    Args:
      n_samples: training samples (the evaluation set has half as many).
      n_features: input dimension.
      hidden: hidden width.
      n_classes: classes.
      seed: data seed.
      l2: default weight decay (the ``"l2"`` hyperparameter).

    Returns:
      A :class:`SweepProblem` with metrics ``train_loss``, ``val_loss``, ``val_accuracy``.
    """
    rng = np.random.default_rng(seed)
    n = n_samples + n_samples // 2
    X = rng.standard_normal((n, n_features))
    teacher = np.tanh(X @ rng.standard_normal((n_features, 8))) @ rng.standard_normal((8, n_classes))
    y = np.argmax(teacher + 0.3 * rng.standard_normal((n, n_classes)), axis=1)
    X, y = jnp.asarray(X, jnp.zeros(()).dtype), jnp.asarray(y, jnp.int32)
    data, eval_data = (X[:n_samples], y[:n_samples]), (X[n_samples:], y[n_samples:])
    sizes = (n_features, hidden, n_classes)

    def loss(params, hp, data):
        return mlp_loss(params, hp["l2"], *data)

    def metrics(params, hp, eval_data):
        Xe, ye = eval_data
        return {
            "train_loss": mlp_loss(params, 0.0, *data),
            "val_loss": mlp_loss(params, 0.0, Xe, ye),
            "val_accuracy": jnp.mean(jnp.argmax(mlp_apply(params, Xe), axis=1) == ye),
        }

    return SweepProblem(loss, lambda key: mlp_init(key, sizes), data, eval_data, metrics, {"l2": l2})
