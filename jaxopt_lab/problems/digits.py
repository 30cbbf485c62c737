"""scikit-learn's bundled digits set (no download), split and standardized."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ClassificationData(NamedTuple):
    """Train / validation / test splits of a classification set.

    Attributes:
      X_train, y_train, X_val, y_val, X_test, y_test: features (float) and
        integer labels.
      num_classes: number of classes.
    """

    X_train: jax.Array
    y_train: jax.Array
    X_val: jax.Array
    y_val: jax.Array
    X_test: jax.Array
    y_test: jax.Array
    num_classes: int


def load_digits(seed: int = 0, fractions=(0.5, 0.25, 0.25), dtype=None) -> ClassificationData:
    """The 1797 8x8 digit images, standardized, shuffled and split.

    Args:
      seed: shuffling seed.
      fractions: train / validation / test fractions (summing to 1).
      dtype: feature dtype (default: JAX's default float).

    Returns:
      A :class:`ClassificationData` (features standardized with training statistics).
    """
    from sklearn.datasets import load_digits as _load

    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"`fractions` must be three positive numbers summing to 1, got {fractions}.")
    X, y = _load(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm].astype(np.float64), y[perm]
    n_tr = int(fractions[0] * len(y))
    n_va = int(fractions[1] * len(y))
    mean, std = X[:n_tr].mean(0), X[:n_tr].std(0)
    std = np.where(std > 1e-8, std, 1.0)  # pixels constant on the training split stay bounded
    X = (X - mean) / std
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    cast = lambda a: jnp.asarray(a, dtype)
    to_int = lambda a: jnp.asarray(a, jnp.int32)
    return ClassificationData(
        cast(X[:n_tr]), to_int(y[:n_tr]), cast(X[n_tr:n_tr + n_va]), to_int(y[n_tr:n_tr + n_va]),
        cast(X[n_tr + n_va:]), to_int(y[n_tr + n_va:]), 10,
    )


def multinomial_logreg_loss(params, X, y, num_classes: int = 10) -> jax.Array:
    """Mean cross-entropy of a linear softmax classifier.

    Args:
      params: ``{"W": (d, k), "b": (k,)}``.
      X: features ``(n, d)``.
      y: integer labels ``(n,)``.
      num_classes: ``k``.

    Returns:
      A scalar.
    """
    logits = X @ params["W"] + params["b"]
    logz = jax.nn.logsumexp(logits, axis=1)
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(logz - picked)


def accuracy(params, X, y) -> jax.Array:
    """Fraction of correct predictions of a linear softmax classifier.

    Args:
      params: ``{"W": (d, k), "b": (k,)}``.
      X: features ``(n, d)``.
      y: integer labels ``(n,)``.

    Returns:
      A scalar in ``[0, 1]``: the mean of ``argmax(X W + b) == y``.
    """
    return jnp.mean(jnp.argmax(X @ params["W"] + params["b"], axis=1) == y)
