"""The convex program of a two-layer ReLU network with sampled gate patterns (test problem)."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import scipy.linalg


def _noise_target(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    return rng.standard_normal(X.shape[0])


def convex_relu(n: int = 12, d: int = 3, num_gates: int = 4, beta: float = 0.1, seed: int = 0,
                target: Callable[[np.random.Generator, np.ndarray], np.ndarray] = _noise_target) -> dict:
    """Pilanci and Ergen's convex program for a two-layer ReLU network, in ADMM form.

    ``min_u 1/2 ||F u - y||^2 + beta sum_j ||u_j||`` s.t. ``K u >= 0``, with
    ``u = (v_1..v_P, w_1..w_P)``, ``F = [D_i X, ..., -D_i X, ...]`` and
    ``K = blockdiag((2 D_i - I) X)`` (each gate pattern's cone). For ADMM: ``fun`` is the
    squared loss, ``A = [I; K]`` and ``g`` the group norm plus the indicator of ``t >= 0``
    (its prox is ``prox``).

    Args:
      n: samples.
      d: features, the last one a bias column of ones.
      num_gates: sampled gate patterns ``P``.
      beta: weight of the group norm.
      seed: seed of the data, the target and the gates (drawn in that order).
      target: ``target(rng, X) -> y`` (default: standard normal noise).

    Returns:
      A dict with ``X, y, D, F, K, A, prox, beta, groups (= 2P), d`` and ``objective(u)``.

    References:
      Pilanci and Ergen, "Neural Networks are Convex Regularizers", 2020 (arXiv:2002.10553);
      Bai, Gautam and Sojoudi, "Efficient Global Optimization of Two-layer ReLU Networks:
      Quadratic-time Algorithms and Adversarial Training", 2022 (arXiv:2201.01965).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[:, -1] = 1.0  # bias
    y = target(rng, X)
    D = (X @ rng.standard_normal((d, num_gates)) >= 0).astype(float)
    F = np.concatenate([D[:, [i]] * X for i in range(num_gates)] + [-D[:, [i]] * X for i in range(num_gates)],
                       axis=1)
    cones = [(2 * D[:, [i]] - 1) * X for i in range(num_gates)]
    K = scipy.linalg.block_diag(*(cones + cones))
    groups = 2 * num_gates

    def prox(v, beta, scaling):
        g = v[: groups * d].reshape(groups, d)
        norms = jnp.linalg.norm(g, axis=1, keepdims=True)
        g = g * jnp.maximum(1.0 - beta * scaling / jnp.maximum(norms, 1e-30), 0.0)
        return jnp.concatenate([g.ravel(), jnp.maximum(v[groups * d:], 0.0)])

    def objective(u):
        u = np.asarray(u)
        return 0.5 * np.sum((F @ u - y) ** 2) + beta * np.sum(np.linalg.norm(u.reshape(groups, d), axis=1))

    return dict(X=X, y=y, D=D, F=F, K=K, A=np.vstack([np.eye(groups * d), K]), prox=prox, beta=beta,
                groups=groups, d=d, objective=objective)
