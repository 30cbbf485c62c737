"""SVD-free low-rank Adam: project matrix gradients on ``rank`` columns of a fixed DCT basis."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.core.checks import check_int, check_traceable_int, check_update_args
from jaxopt_lab.transforms._checks import check_matrix_leaves


def dct_basis(n: int, dtype=jnp.float32) -> jax.Array:
    """Orthonormal DCT-II basis: column ``j`` is ``sqrt(2/n) c_j cos(pi (2i + 1) j / (2n))``.

    Args:
      n: size.
      dtype: dtype of the result.

    Returns:
      An ``(n, n)`` orthogonal matrix.

    References:
      Ahmed, Natarajan, Rao, "Discrete Cosine Transform", IEEE Trans. Computers, 1974.
    """
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    D = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * j / (2 * n))
    D[:, 0] /= np.sqrt(2.0)
    return jnp.asarray(D, dtype)


class ScaleByLowRankDCTState(NamedTuple):
    """State of :func:`scale_by_lowrank_dct`: count, selected DCT columns, moments in the subspace.

    Attributes:
      count: number of updates taken (int32 scalar); columns are re-selected when it is a
        multiple of ``update_interval``.
      index: per leaf, the ``(rank,)`` int32 indices of the selected DCT columns.
      mu: per leaf, Adam's first moment of the projected gradient (not bias-corrected),
        shape ``(rank, n)`` for an ``m x n`` leaf with ``m >= n``, else ``(m, rank)``.
      nu: per leaf, Adam's second moment of the projected gradient (not bias-corrected),
        shaped like ``mu``.
    """

    count: jax.Array
    index: optax.Updates
    mu: optax.Updates
    nu: optax.Updates


def _side(shape):
    return 0 if shape[0] >= shape[1] else 1  # project the larger dimension


def scale_by_lowrank_dct(rank: int, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                         update_interval: int = 50) -> optax.GradientTransformation:
    """Adam in a rank-``rank`` subspace spanned by fixed DCT columns (no SVD).

    For an ``m x n`` gradient with ``m >= n`` the basis is ``Q = D_m[:, S]`` (``D_m`` the
    orthonormal DCT-II, ``S`` the ``rank`` columns with the largest ``||D_m[:, j]^T G||``,
    re-selected every ``update_interval`` steps); the low-rank gradient ``R = Q^T G`` runs
    through Adam and the update is ``Q Adam(R)``. (``m < n``: the same on the right.)
    Selecting columns costs one matrix product instead of GaLore's SVD.

    Args:
      rank: subspace dimension (static, ``1 <= rank <= min(m, n)`` for every leaf).
      b1, b2, eps: Adam's parameters in the subspace.
      update_interval: steps between column re-selections (an int ``>= 1``; may be traced,
        e.g. by ``optax.inject_hyperparams``, where ``rank`` goes in ``static_args``).

    Returns:
      An ``optax.GradientTransformation``; every leaf must be a matrix.

    References:
      Modoranu, Safaryan, Schultheis, Alistarh, "SVD-Free Low-Rank
      Adaptive Gradient Optimization for Large Language Models", 2025 (arXiv:2505.17967);
      Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection",
      2024 (arXiv:2403.03507).
    """
    rank = check_int(rank, "rank", minimum=1)
    update_interval = check_traceable_int(update_interval, "update_interval", minimum=1)

    def check(params):
        check_matrix_leaves(params, "scale_by_lowrank_dct")
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if rank > min(p.shape):
                raise ValueError(f"rank={rank} exceeds min(shape)={min(p.shape)} of leaf "
                                 f"{jax.tree_util.keystr(path)} with shape {p.shape}.")

    def low_shape(p):
        return (rank, p.shape[1]) if _side(p.shape) == 0 else (p.shape[0], rank)

    def init(params):
        check(params)
        index = jax.tree_util.tree_map(lambda p: jnp.arange(rank, dtype=jnp.int32), params)
        zeros = lambda: jax.tree_util.tree_map(lambda p: jnp.zeros(low_shape(p), p.dtype), params)
        return ScaleByLowRankDCTState(jnp.zeros([], jnp.int32), index, zeros(), zeros())

    def update(grads, state, params=None):
        check_update_args("scale_by_lowrank_dct", grads, params)
        del params
        check(grads)
        refresh = state.count % update_interval == 0
        count = state.count + 1
        bc1, bc2 = 1 - b1**count, 1 - b2**count

        def leaf(g, idx, m, v):
            side = _side(g.shape)
            acc = jnp.promote_types(g.dtype, jnp.float32)
            G = g.astype(acc) if side == 0 else g.astype(acc).T
            D = dct_basis(G.shape[0], acc)
            scores = jnp.sum((D.T @ G) ** 2, axis=1)
            idx = jnp.where(refresh, jax.lax.top_k(scores, rank)[1].astype(jnp.int32), idx)
            Q = D[:, idx]
            R = Q.T @ G
            R = R if side == 0 else R.T
            m = b1 * m + (1 - b1) * R
            v = b2 * v + (1 - b2) * R * R
            step = (m / bc1) / (jnp.sqrt(v / bc2) + eps)
            out = Q @ (step if side == 0 else step.T)
            out = out if side == 0 else out.T
            return out.astype(g.dtype), idx, m.astype(g.dtype), v.astype(g.dtype)

        res = jax.tree_util.tree_map(leaf, grads, state.index, state.mu, state.nu)
        pick = lambda i: jax.tree_util.tree_map(lambda _, r: r[i], grads, res)
        return pick(0), ScaleByLowRankDCTState(count, pick(1), pick(2), pick(3))

    return optax.GradientTransformation(init, update)


def lowrank_dct(learning_rate: optax.ScalarOrSchedule, rank: int, b1: float = 0.9, b2: float = 0.999,
                eps: float = 1e-8, update_interval: int = 50) -> optax.GradientTransformation:
    """Low-rank DCT Adam: :func:`scale_by_lowrank_dct` followed by the learning rate.

    Args:
      learning_rate: step size or schedule.
      rank, b1, b2, eps, update_interval: see :func:`scale_by_lowrank_dct`.

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Modoranu et al., "SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language
      Models", 2025 (arXiv:2505.17967).
    """
    return optax.chain(scale_by_lowrank_dct(rank, b1, b2, eps, update_interval),
                       optax.scale_by_learning_rate(learning_rate))


__all__ = ["ScaleByLowRankDCTState", "scale_by_lowrank_dct", "lowrank_dct"]
