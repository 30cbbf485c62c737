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
      basis: per leaf, those columns ``Q = D[:, index]`` (``(max(m, n), rank)``, float32 or
        wider), kept so that steps between refreshes only project.
      mu: per leaf, Adam's first moment of the projected gradient (not bias-corrected),
        shape ``(rank, n)`` for an ``m x n`` leaf with ``m >= n``, else ``(m, rank)``.
      nu: per leaf, Adam's second moment of the projected gradient (not bias-corrected),
        shaped like ``mu``.
    """

    count: jax.Array
    index: optax.Updates
    basis: optax.Updates
    mu: optax.Updates
    nu: optax.Updates


def _side(shape):
    return 0 if shape[0] >= shape[1] else 1  # project the larger dimension


def _default_rank(shape: tuple[int, ...]) -> int:
    """The rank :func:`scale_by_lowrank_dct` uses for a leaf when ``rank=None``.

    A quarter of the smaller side, at least 1 and at most 128 (GaLore's rank for its
    1B-parameter runs): ``min(128, max(1, min(m, n) // 4))``.

    Args:
      shape: the leaf's ``(m, n)``.

    Returns:
      The subspace dimension for that leaf.
    """
    return min(128, max(1, min(shape) // 4))


def _select(G, rank):
    """The ``rank`` DCT columns with the largest ``||D[:, j]^T G||`` and those columns.

    ``D^T G`` is the orthonormal DCT-II of ``G``'s columns (an FFT, ``O(m n log m)``), and the
    columns ``D[:, S]`` are the inverse DCT of one-hot vectors (``O(rank m log m)``), so no
    ``m x m`` basis is formed.
    """
    scores = jnp.sum(jax.scipy.fft.dct(G, type=2, norm="ortho", axis=0) ** 2, axis=1)
    idx = jax.lax.top_k(scores, rank)[1].astype(jnp.int32)
    onehot = jax.nn.one_hot(idx, G.shape[0], dtype=G.dtype).T
    return idx, jax.scipy.fft.idct(onehot, type=2, norm="ortho", axis=0)


def scale_by_lowrank_dct(rank: int | None = None, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                         update_interval: int = 50) -> optax.GradientTransformation:
    """Adam in a rank-``rank`` subspace spanned by fixed DCT columns (no SVD).

    For an ``m x n`` gradient with ``m >= n`` the basis is ``Q = D_m[:, S]`` (``D_m`` the
    orthonormal DCT-II, ``S`` the ``rank`` columns with the largest ``||D_m[:, j]^T G||``);
    the low-rank gradient ``R = Q^T G`` runs through Adam and the update is ``Q Adam(R)``.
    (``m < n``: the same on the right.)

    Columns are selected only on refresh steps (``count % update_interval == 0``, the first
    step included) inside ``lax.cond``; the state carries the indices and the columns
    themselves, so any other step costs the two projections ``Q^T G`` and ``Q U`` (``4 m n
    rank`` flops) and Adam on ``rank x n`` entries. A refresh scores the columns with one
    DCT of ``G`` (an FFT, ``O(m n log m)``, instead of the ``2 m^2 n`` of a dense ``D^T G``).
    Under ``jax.vmap`` with a batched step count ``lax.cond`` becomes a select and the
    selection runs on every step.

    Args:
      rank: subspace dimension (static; ``1 <= rank <= min(m, n)`` for every leaf), or
        ``None`` for ``min(128, max(1, min(m, n) // 4))`` per leaf (a quarter of the smaller
        side, capped at GaLore's rank for its 1B-parameter runs).
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
    if rank is not None:
        rank = check_int(rank, "rank", minimum=1)
    update_interval = check_traceable_int(update_interval, "update_interval", minimum=1)
    leaf_rank = lambda shape: _default_rank(shape) if rank is None else rank

    def check(params):
        check_matrix_leaves(params, "scale_by_lowrank_dct")
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if leaf_rank(p.shape) > min(p.shape):
                raise ValueError(f"rank={rank} exceeds min(shape)={min(p.shape)} of leaf "
                                 f"{jax.tree_util.keystr(path)} with shape {p.shape}.")

    def low_shape(p):
        r = leaf_rank(p.shape)
        return (r, p.shape[1]) if _side(p.shape) == 0 else (p.shape[0], r)

    def basis_dtype(p):
        return jnp.promote_types(p.dtype, jnp.float32)

    def init(params):
        check(params)
        tmap = lambda f: jax.tree_util.tree_map(f, params)
        index = tmap(lambda p: jnp.arange(leaf_rank(p.shape), dtype=jnp.int32))
        # Placeholder columns; the first update is a refresh and replaces them.
        basis = tmap(lambda p: jnp.eye(max(p.shape), leaf_rank(p.shape), dtype=basis_dtype(p)))
        zeros = lambda: tmap(lambda p: jnp.zeros(low_shape(p), p.dtype))
        return ScaleByLowRankDCTState(jnp.zeros([], jnp.int32), index, basis, zeros(), zeros())

    def update(grads, state, params=None):
        check_update_args("scale_by_lowrank_dct", grads, params)
        del params
        check(grads)
        refresh = state.count % update_interval == 0
        count = state.count + 1
        bc1, bc2 = 1 - b1**count, 1 - b2**count

        def leaf(g, idx, Q, m, v):
            side = _side(g.shape)
            G = g.astype(Q.dtype) if side == 0 else g.astype(Q.dtype).T
            idx, Q = jax.lax.cond(refresh, lambda: _select(G, idx.shape[0]), lambda: (idx, Q))
            R = Q.T @ G
            R = R if side == 0 else R.T
            m = b1 * m + (1 - b1) * R
            v = b2 * v + (1 - b2) * R * R
            step = (m / bc1) / (jnp.sqrt(v / bc2) + eps)
            out = Q @ (step if side == 0 else step.T)
            out = out if side == 0 else out.T
            return out.astype(g.dtype), idx, Q, m.astype(g.dtype), v.astype(g.dtype)

        res = jax.tree_util.tree_map(leaf, grads, state.index, state.basis, state.mu, state.nu)
        pick = lambda i: jax.tree_util.tree_map(lambda _, r: r[i], grads, res)
        return pick(0), ScaleByLowRankDCTState(count, pick(1), pick(2), pick(3), pick(4))

    return optax.GradientTransformation(init, update)


def lowrank_dct(learning_rate: optax.ScalarOrSchedule, rank: int | None = None, b1: float = 0.9,
                b2: float = 0.999, eps: float = 1e-8, update_interval: int = 50
                ) -> optax.GradientTransformation:
    """Low-rank DCT Adam: :func:`scale_by_lowrank_dct` followed by the learning rate.

    Args:
      learning_rate: step size or schedule.
      rank, b1, b2, eps, update_interval: see :func:`scale_by_lowrank_dct` (``rank=None``:
        ``min(128, max(1, min(m, n) // 4))`` per leaf).

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Modoranu et al., "SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language
      Models", 2025 (arXiv:2505.17967).
    """
    return optax.chain(scale_by_lowrank_dct(rank, b1, b2, eps, update_interval),
                       optax.scale_by_learning_rate(learning_rate))


__all__ = ["ScaleByLowRankDCTState", "scale_by_lowrank_dct", "lowrank_dct"]
