"""Adaptive batch-size tests (norm and augmented inner-product) as an optax meta-transform."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def _stats(per_example_grads):
    leaves = jax.tree_util.tree_leaves(per_example_grads)
    b = leaves[0].shape[0]
    if b < 2 or any(x.shape[0] != b for x in leaves):
        raise ValueError("per_example_grads must share a leading batch axis of size >= 2.")
    acc = lambda x: jnp.promote_types(x.dtype, jnp.float32)
    flat = jnp.concatenate([x.reshape(b, -1).astype(acc(x)) for x in leaves], 1)
    mean = jnp.mean(flat, 0)
    return flat, mean, b


def norm_test(per_example_grads: Any, eta: float) -> tuple[jax.Array, jax.Array]:
    """Norm test: the batch is large enough if ``Var / b <= eta^2 ||g_bar||^2``.

    ``Var = sum_i ||g_i - g_bar||^2 / (b - 1)`` is the sample variance of the per-example
    gradients; the suggested batch size is ``ceil(Var / (eta^2 ||g_bar||^2))``.

    Args:
      per_example_grads: pytree whose leaves have a leading batch axis ``b >= 2``.
      eta: tolerance (``> 0``).

    Returns:
      ``(passed, suggested_batch_size)``.

    References:
      Byrd, Chin, Nocedal, Wu, "Sample size selection in optimization methods for machine
      learning", Math. Programming, 2012; Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size
      Schemes for Adaptive Gradient Methods", 2024 (arXiv:2402.11215).
    """
    flat, mean, b = _stats(per_example_grads)
    var = jnp.sum((flat - mean) ** 2) / (b - 1)
    target = eta**2 * jnp.sum(mean**2)
    return var / b <= target, jnp.ceil(var / jnp.maximum(target, 1e-30)).astype(jnp.int32)


def inner_product_test(per_example_grads: Any, theta: float) -> tuple[jax.Array, jax.Array]:
    """Augmented inner-product test: ``Var(<g_i, g_bar>) / b <= theta^2 ||g_bar||^4``.

    Args:
      per_example_grads: pytree whose leaves have a leading batch axis ``b >= 2``.
      theta: tolerance (``> 0``).

    Returns:
      ``(passed, suggested_batch_size)``.

    References:
      Bollapragada, Byrd, Nocedal, "Adaptive Sampling Strategies for Stochastic
      Optimization", 2018 (arXiv:1710.11258); Lau, Liu, Kolar, "AdAdaGrad", 2024 (arXiv:2402.11215).
    """
    flat, mean, b = _stats(per_example_grads)
    sq = jnp.sum(mean**2)
    var = jnp.sum((flat @ mean - sq) ** 2) / (b - 1)
    target = theta**2 * sq**2
    return var / b <= target, jnp.ceil(var / jnp.maximum(target, 1e-30)).astype(jnp.int32)


class AdaptiveBatchSizeState(NamedTuple):
    """State: the batch size to use next and whether the last test passed.

    Attributes:
      batch_size: the batch size the data loader should use next (int32 scalar); starts at
        ``initial_batch_size``, never shrinks and is capped at ``max_batch_size``.
      passed: whether the test on the last batch passed (boolean scalar; ``True`` before
        the first update).
    """

    batch_size: jax.Array
    passed: jax.Array


def adaptive_batch_size(initial_batch_size: int, tolerance: float = 0.5, test: str = "norm",
                        max_batch_size: int = 2**20) -> optax.GradientTransformationExtraArgs:
    """Meta-transform that passes updates through and tracks the batch size to use next.

    ``update(updates, state, params=None, *, per_example_grads)`` runs the chosen test on the
    per-example gradients of the current batch; when it fails the next batch size grows to
    the suggested one (never shrinks, capped at ``max_batch_size``). Read it from
    ``state.batch_size`` in the data loader; wrap any optimizer with ``optax.chain``.

    Args:
      initial_batch_size: starting batch size (``>= 2``).
      tolerance: ``eta`` of :func:`norm_test` or ``theta`` of :func:`inner_product_test`.
      test: ``"norm"`` or ``"inner_product"``.
      max_batch_size: upper bound.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` requiring ``per_example_grads=``.

    References:
      Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods",
      2024 (arXiv:2402.11215).
    """
    if test not in ("norm", "inner_product"):
        raise ValueError(f"test must be 'norm' or 'inner_product', got {test!r}.")
    if not isinstance(initial_batch_size, int) or initial_batch_size < 2:
        raise ValueError(f"initial_batch_size must be an int >= 2, got {initial_batch_size!r}.")
    if isinstance(tolerance, int | float) and tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}.")
    if not isinstance(max_batch_size, int) or max_batch_size < initial_batch_size:
        raise ValueError(f"max_batch_size must be an int >= initial_batch_size={initial_batch_size}, "
                         f"got {max_batch_size!r}.")
    run_test = norm_test if test == "norm" else inner_product_test

    def init(params):
        del params
        return AdaptiveBatchSizeState(jnp.asarray(initial_batch_size, jnp.int32), jnp.ones([], bool))

    def update(updates, state, params=None, *, per_example_grads=None, **extra):
        del params, extra
        if per_example_grads is None:
            raise ValueError("adaptive_batch_size.update needs the keyword argument per_example_grads=.")
        passed, suggested = run_test(per_example_grads, tolerance)
        nxt = jnp.where(passed, state.batch_size, jnp.maximum(state.batch_size, suggested))
        return updates, AdaptiveBatchSizeState(jnp.minimum(nxt, max_batch_size), passed)

    return optax.GradientTransformationExtraArgs(init, update)


__all__ = ["AdaptiveBatchSizeState", "adaptive_batch_size"]
