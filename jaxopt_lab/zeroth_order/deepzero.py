"""DeepZero-style training: ZO pruning to layer-wise densities, sparse CGE on random masks.

DeepZero (Chen et al., 2023) trains networks with coordinate-wise estimates (CGE) on a
sparse set of coordinates: a zeroth-order saliency score at initialization fixes how
many coordinates of each layer to keep (layer-wise densities), and at every
``refresh_every`` steps a new random mask with those per-layer counts is drawn, so
each step costs ``num_coords + 1`` evaluations in one ``vmap``-ed call.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.core.checks import check_int, check_positive, check_traceable_int, check_update_args
from jaxopt_lab.zeroth_order.coordinate import cge
from jaxopt_lab.zeroth_order.layerwise import LayerwiseLoss, cge_layerwise
from jaxopt_lab.zeroth_order.randomized import rge


def zo_saliency(fun, params: Any, key: jax.Array, *args, num_directions: int = 64,
                smoothing: float = 1e-3, **kwargs) -> Any:
    """Zeroth-order saliency ``|params * g|`` with ``g`` an RGE estimate (no gradients used).

    Args:
      fun: ``fun(params, *args, **kwargs) -> scalar``.
      params: a pytree of float arrays (e.g. a network at initialization).
      key: a PRNG key.
      *args, **kwargs: passed to ``fun``.
      num_directions: RGE directions.
      smoothing: RGE radius.

    Returns:
      A pytree like ``params`` of non-negative scores.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    _, g = rge(fun, params, key, *args, num_directions=num_directions, smoothing=smoothing,
               **kwargs)
    return jax.tree_util.tree_map(lambda p, e: jnp.abs(p * e), params, g)


def layerwise_density(scores: Any, sparsity: float) -> Any:
    """Per-leaf densities from a global top-``(1 - sparsity)`` selection of ``scores``.

    Args:
      scores: a pytree of concrete score arrays.
      sparsity: fraction of coordinates pruned, in ``[0, 1)``.

    Returns:
      A pytree of Python floats: the fraction of each leaf kept (at least one coordinate).

    References:
      Chen et al., "DeepZero", 2023 (arXiv:2310.02025).
    """
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1), got {sparsity}.")
    leaves, treedef = jax.tree_util.tree_flatten(scores)
    flat = np.concatenate([np.ravel(np.asarray(leaf)) for leaf in leaves])
    keep = max(1, int(round((1.0 - float(sparsity)) * flat.size)))
    threshold = np.sort(flat)[::-1][keep - 1]
    dens = [max(1, int(np.sum(np.asarray(leaf) >= threshold))) / np.size(leaf) for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, [min(1.0, float(d)) for d in dens])


def _counts(params, density) -> list[int]:
    leaves = jax.tree_util.tree_leaves(params)
    dens = (jax.tree_util.tree_leaves(density) if not isinstance(density, int | float)
            else [density] * len(leaves))
    if len(dens) != len(leaves):
        raise ValueError("`density` must be a number or a pytree of numbers like `params`.")
    for d in dens:
        if not 0.0 < float(d) <= 1.0:
            raise ValueError(f"`density` entries must be in (0, 1], got {d}.")
    return [max(1, int(round(float(d) * np.size(leaf)))) for d, leaf in zip(dens, leaves, strict=True)]


def random_sparse_mask(key: jax.Array, params: Any, density: Any) -> tuple[Any, int]:
    """A random boolean mask with exactly ``round(density * size)`` entries per leaf.

    Args:
      key: a PRNG key.
      params: a pytree of arrays (only shapes are used).
      density: a number or a pytree of numbers (e.g. from :func:`layerwise_density`).

    Returns:
      ``(mask, num_coords)``: the mask pytree and its (static) total count of ``True``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    counts = _counts(params, density)
    keys = jax.random.split(key, len(leaves))
    masks = []
    for k, leaf, c in zip(keys, leaves, counts, strict=True):
        pick = jax.random.permutation(k, np.size(leaf))[:c]
        masks.append(jnp.zeros(np.size(leaf), bool).at[pick].set(True).reshape(np.shape(leaf)))
    return jax.tree_util.tree_unflatten(treedef, masks), int(sum(counts))


class ScaleBySparseCGEState(NamedTuple):
    """State of :func:`scale_by_sparse_cge`: step count and the current mask.

    Attributes:
      count: number of updates taken (int32 scalar); the mask is redrawn when it is a
        multiple of ``refresh_every``.
      mask: boolean arrays shaped like the parameters marking the coordinates estimated
        by CGE (all ``False`` before the first update).
    """

    count: jax.Array
    mask: Any


def scale_by_sparse_cge(density: Any, refresh_every: int = 1, smoothing: float = 1e-3,
                        difference: str = "forward", chunk_size: int | None = None
                        ) -> optax.GradientTransformationExtraArgs:
    """CGE on a random sparse mask with fixed per-layer counts, redrawn every ``refresh_every`` steps.

    Args:
      density: a number or a pytree of per-leaf densities (Python numbers: they set shapes;
        under ``optax.inject_hyperparams`` pass ``static_args=("density",)``).
      refresh_every: steps between mask redraws (an int ``>= 1``; may be traced).
      smoothing: CGE radius.
      difference: ``"forward"`` or ``"central"``.
      chunk_size: evaluate at most this many points at once.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes ``value_fn=`` and
      ``key=``; the estimate is zero off the current mask. When ``value_fn`` is a
      :class:`~jaxopt_lab.zeroth_order.LayerwiseLoss` (and ``params`` a per-layer list),
      the estimate reuses features (:func:`~jaxopt_lab.zeroth_order.cge_layerwise`).

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    refresh_every = check_traceable_int(refresh_every, "refresh_every", minimum=1)
    check_positive(smoothing, "smoothing")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    for leaf in jax.tree_util.tree_leaves(density):
        if isinstance(leaf, jax.Array):  # what optax.inject_hyperparams makes of a number
            raise TypeError("`density` sets how many coordinates are estimated (array shapes), so it "
                            "must be Python numbers; under optax.inject_hyperparams list it in "
                            "static_args (e.g. static_args=('density',)).")

    def init(params):
        _counts(params, density)
        mask = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), bool), params)
        return ScaleBySparseCGEState(jnp.zeros([], jnp.int32), mask)

    def update(updates, state, params=None, *, value_fn=None, key=None, **extra):
        del extra
        check_update_args("scale_by_sparse_cge", updates, params, name="updates", value_fn=value_fn)
        if params is None or value_fn is None or key is None:
            raise ValueError("scale_by_sparse_cge.update needs `params`, `value_fn=` and `key=`.")
        new_mask, k = random_sparse_mask(key, params, density)
        mask = jax.tree_util.tree_map(
            lambda n, o: jnp.where(state.count % refresh_every == 0, n, o), new_mask, state.mask)
        if isinstance(value_fn, LayerwiseLoss):  # feature reuse: per-layer static counts
            sizes = [len(jax.tree_util.tree_leaves(p)) for p in params]
            counts, starts = _counts(params, density), np.cumsum([0, *sizes])
            per_layer = [int(sum(counts[a:b])) for a, b in zip(starts[:-1], starts[1:], strict=True)]
            _, g = cge_layerwise(value_fn, params, smoothing=smoothing, mask=mask,
                                 num_coords=per_layer, difference=difference, chunk_size=chunk_size)
        else:
            _, g = cge(value_fn, params, smoothing=smoothing, mask=mask, num_coords=k,
                       difference=difference, chunk_size=chunk_size)
        g = jax.tree_util.tree_map(lambda e, u: e.astype(u.dtype), g, updates)
        return g, ScaleBySparseCGEState(optax.safe_increment(state.count), mask)

    return optax.GradientTransformationExtraArgs(init, update)


def deepzero_sgd(learning_rate: optax.ScalarOrSchedule, density: Any, refresh_every: int = 1,
                 momentum: float | None = 0.9, smoothing: float = 1e-3,
                 chunk_size: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DeepZero training rule: sparse CGE (:func:`scale_by_sparse_cge`) plus momentum SGD.

    Args:
      learning_rate: step size or schedule.
      density: per-leaf densities (e.g. ``layerwise_density(zo_saliency(...), sparsity)``).
      refresh_every: steps between mask redraws.
      momentum: heavy-ball coefficient (``None``: plain SGD).
      smoothing: CGE radius.
      chunk_size: evaluate at most this many points at once.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` taking ``value_fn=`` and ``key=``.

    References:
      Chen et al., "DeepZero: Scaling up zeroth-order optimization for deep model
      training", 2023 (arXiv:2310.02025).
    """
    parts = [scale_by_sparse_cge(density, refresh_every, smoothing, chunk_size=chunk_size)]
    if momentum is not None:
        parts.append(optax.trace(decay=momentum))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))
