"""EControl: compressed updates with error feedback whose strength is controlled by ``eta``."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab.core import tree_util as tu
from jaxopt_lab.core.checks import check_int, check_update_args
from jaxopt_lab.ops.sparsify import Compressor, topk_magnitude_mask


class ScaleByEControlState(NamedTuple):
    """State of :func:`scale_by_econtrol`: error ``e``, estimator ``h`` and the PRNG key.

    Attributes:
      error: the accumulated compression error ``e`` (gradient mass not yet passed on), a
        pytree like the parameters (with a leading worker axis for ``num_workers``); zeros
        at init.
      estimate: the compressed gradient estimator ``h`` (per worker), shaped like ``error``;
        zeros at init.
      key: PRNG key for the compressor, split on every update.
    """

    error: optax.Updates
    estimate: optax.Updates
    key: jax.Array


def top_fraction_compressor(fraction: float) -> Compressor:
    """Keep the ``ceil(fraction * d)`` largest-magnitude entries of each ``d``-entry leaf.

    Contractive with ``delta = ceil(fraction d) / d >= fraction`` for every leaf size, unlike
    a fixed ``k`` whose ``delta = k / d`` vanishes on large leaves. Exposes that ``delta``
    as ``compressor.contraction(d)``.

    Args:
      fraction: share of entries kept, in ``(0, 1]``.

    Returns:
      A compressor ``(x, key) -> x'``.

    References:
      Stich, Cordonnier, Jaggi, "Sparsified SGD with Memory", 2018 (arXiv:1809.07599).
    """
    if not isinstance(fraction, int | float) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}.")
    kept = lambda d: max(1, math.ceil(fraction * d))

    def compress(x, key):
        del key
        return jnp.where(topk_magnitude_mask(x, kept(x.size)), x, jnp.zeros_like(x))

    compress.contraction = lambda d: kept(d) / d  # type: ignore[attr-defined]
    return compress


def _leaf_eta(compressor, eta, size, who):
    """``eta`` if given, else ``delta / 4`` from the compressor's ``contraction(d)``."""
    if eta is not None:
        return eta
    contraction = getattr(compressor, "contraction", None)
    if contraction is None:
        raise ValueError(f"{who}: eta=None takes eta = delta / 4 from the compressor's contraction "
                         "parameter, but this compressor has no `contraction(d)` attribute; pass eta.")
    return contraction(size) / 4.0


def scale_by_econtrol(compressor: Compressor | None = None, eta: float | None = None, seed: int = 0,
                      num_workers: int | None = None) -> optax.GradientTransformation:
    """Compressed gradient estimate with EControl's error feedback, one or ``n`` workers.

    Per worker ``i`` and leaf (paper, Algorithm 1): ``Delta_i = C(eta e_i + g_i - h_i)``,
    ``h_i' = h_i + Delta_i``, ``e_i' = e_i + g_i - h_i'``; the server's direction is
    ``h' = mean_i h_i'`` (it receives only the compressed ``Delta_i``). Summing the last line
    gives the error-feedback identity ``sum_t h_i'(t) + e_i(T) = sum_t g_i(t)``: nothing is
    lost, only delayed. ``eta`` sets how strongly the accumulated error is fed back
    (``eta = 0``: the EF21 estimator only); the paper's theorems take ``eta`` proportional to
    the compressor's contraction ``delta`` (``||C(x) - x||^2 <= (1 - delta) ||x||^2``) and a
    step size of order ``delta / L``; ``eta`` near 1 double-counts the error and diverges.
    The default ``eta = delta / 4`` per leaf, with ``delta`` from ``compressor.contraction(d)``
    (``k / d`` for :func:`top_k_compressor` and :func:`random_k_compressor`).

    Args:
      compressor: ``(x, key) -> x'``; default :func:`top_fraction_compressor` ``(0.1)`` (10%
        of each leaf, ``delta >= 0.1``).
      eta: error-feedback strength (``>= 0``; may be traced), or ``None`` for ``delta / 4``.
      seed: seed of the compressor's PRNG key (kept in the state).
      num_workers: ``None`` for one worker; an int ``n`` for ``n`` workers, each with its own
        ``e_i`` and ``h_i``: every gradient leaf then has a leading axis of size ``n`` (worker
        ``i``'s gradient, e.g. ``jax.vmap(jax.grad(loss), (None, 0))(params, shards)``) and the
        workers' steps run under ``jax.vmap`` (shard that axis over devices with
        ``jax.sharding`` to run them in parallel; the mean is the all-reduce).

    Returns:
      An ``optax.GradientTransformation``; its updates have the parameters' shapes.

    References:
      Gao, Islamov, Stich, "EControl: Fast Distributed Optimization with Compression and
      Error Control", 2023 (arXiv:2311.05645).
    """
    compressor = top_fraction_compressor(0.1) if compressor is None else compressor
    if not callable(compressor):
        raise TypeError(f"compressor must be callable (x, key) -> x, got {type(compressor)}.")
    if isinstance(eta, int | float) and eta < 0:
        raise ValueError(f"eta must be non-negative, got {eta}.")
    if num_workers is not None:
        num_workers = check_int(num_workers, "num_workers", minimum=1)
    who = "scale_by_econtrol"

    def init(params):
        lead = () if num_workers is None else (num_workers,)
        zeros = lambda: jax.tree_util.tree_map(lambda p: jnp.zeros(lead + jnp.shape(p), p.dtype), params)
        for p in jax.tree_util.tree_leaves(params):
            _leaf_eta(compressor, eta, max(1, p.size), who)  # a missing contraction fails here
        return ScaleByEControlState(zeros(), zeros(), jax.random.PRNGKey(seed))

    def update(grads, state, params=None):
        if num_workers is None:
            check_update_args(who, grads, params, state_like=state.error)
        else:
            check_update_args(who, grads, state_like=state.error, name="grads (one row per worker)")
        del params
        leaves, treedef = jax.tree_util.tree_flatten(grads)
        key, *keys = jax.random.split(state.key, len(leaves) + 1)
        keys = jax.tree_util.tree_unflatten(treedef, keys)

        def worker(g, e, h, k):
            eta_leaf = _leaf_eta(compressor, eta, max(1, g.size), who)
            delta = compressor((eta_leaf * e + g - h).astype(g.dtype), k)
            h_new = (h + delta).astype(g.dtype)
            return h_new, (e + g - h_new).astype(g.dtype)

        def leaf(g, e, h, k):
            if num_workers is None:
                h_new, e_new = worker(g, e, h, k)
                return h_new, e_new, h_new
            h_new, e_new = jax.vmap(worker)(g, e, h, jax.random.split(k, num_workers))
            return h_new, e_new, jnp.mean(h_new, axis=0).astype(g.dtype)

        out = jax.tree_util.tree_map(leaf, grads, state.error, state.estimate, keys)
        h_new, e_new, direction = tu.tree_unzip(grads, out, 3)
        return direction, ScaleByEControlState(e_new, h_new, key)

    return optax.GradientTransformation(init, update)


def econtrol(learning_rate: optax.ScalarOrSchedule, compressor: Compressor | None = None,
             eta: float | None = None, seed: int = 0, num_workers: int | None = None
             ) -> optax.GradientTransformation:
    """SGD on EControl-compressed gradients (one or ``num_workers`` workers).

    Args:
      learning_rate: step size or schedule (the theory asks for ``O(delta / L)``).
      compressor, eta, seed, num_workers: see :func:`scale_by_econtrol` (defaults: 10% top-k
        per leaf, ``eta = delta / 4``, one worker).

    Returns:
      An ``optax.GradientTransformation``.

    References:
      Gao, Islamov, Stich, "EControl: Fast Distributed Optimization with Compression and
      Error Control", 2023 (arXiv:2311.05645).
    """
    return optax.chain(scale_by_econtrol(compressor, eta, seed, num_workers),
                       optax.scale_by_learning_rate(learning_rate))


__all__ = ["ScaleByEControlState", "scale_by_econtrol", "econtrol"]
