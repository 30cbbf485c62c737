"""Adaptive batch-size tests (norm, coordinate-wise norm, augmented inner-product) as an optax meta-transform.

Notation: ``g_i`` (``i = 1..b``) are the per-example gradients flattened over all leaves,
``g = mean_i g_i`` the batch gradient, and every variance is the sample variance with the
``b - 1`` denominator. Inner products and projections are taken over the whole flattened
gradient, as the tests are stated, not leaf by leaf (a per-leaf sum drops the cross-leaf
covariances of ``<g_i, g>``). Each test returns ``(passed, suggested_batch_size)`` where the
suggested size is the smallest ``b`` for which the test, with the same variance estimate,
would pass (clipped to the int32 range).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

_INT_MAX = 2**31 - 1


def _stats(per_example_grads):
    leaves = jax.tree_util.tree_leaves(per_example_grads)
    if not leaves:
        raise ValueError("per_example_grads must hold at least one array leaf.")
    b = leaves[0].shape[0] if leaves[0].ndim else 0
    if b < 2 or any(x.ndim == 0 or x.shape[0] != b for x in leaves):
        raise ValueError("per_example_grads must share a leading batch axis of size >= 2.")
    acc = lambda x: jnp.promote_types(x.dtype, jnp.float32)
    flat = jnp.concatenate([x.reshape(b, -1).astype(acc(x)) for x in leaves], 1)
    mean = jnp.mean(flat, 0)
    return flat, mean, b


def _suggest(variance, target):
    # smallest b with variance / b <= target
    ratio = variance / jnp.maximum(target, jnp.finfo(target.dtype).tiny)
    return jnp.ceil(jnp.minimum(ratio, _INT_MAX)).astype(jnp.int32)


def norm_test(per_example_grads: Any, eta: float) -> tuple[jax.Array, jax.Array]:
    """Norm test: the batch is large enough if ``sum_j Var_j / b <= eta^2 ||g||^2``.

    ``Var_j = sum_i (g_ij - g_j)^2 / (b - 1)`` is the sample variance of coordinate ``j``;
    the suggested batch size is ``ceil(sum_j Var_j / (eta^2 ||g||^2))``.

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
    return var / b <= target, _suggest(var, target)


def coordinate_norm_test(per_example_grads: Any, eta: float) -> tuple[jax.Array, jax.Array]:
    """Coordinate-wise norm test (for AdaGrad's per-coordinate steps): for every coordinate
    ``j``, ``Var_j / b <= eta^2 g_j^2``.

    The suggested batch size is ``max_j ceil(Var_j / (eta^2 g_j^2))``: the largest of the
    per-coordinate norm tests (a coordinate with ``g_j = 0`` and ``Var_j > 0`` asks for the
    int32 maximum; cap it with ``adaptive_batch_size``'s ``max_batch_size``).

    Args:
      per_example_grads: pytree whose leaves have a leading batch axis ``b >= 2``.
      eta: tolerance (``> 0``).

    Returns:
      ``(passed, suggested_batch_size)``.

    References:
      Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods",
      2024 (arXiv:2402.11215).
    """
    flat, mean, b = _stats(per_example_grads)
    var = jnp.sum((flat - mean) ** 2, axis=0) / (b - 1)
    target = eta**2 * mean**2
    return jnp.all(var / b <= target), jnp.max(_suggest(var, target))


def inner_product_test(per_example_grads: Any, theta: float, nu: float | None = None
                       ) -> tuple[jax.Array, jax.Array]:
    """(Augmented) inner-product test.

    Inner-product test: ``Var(<g_i, g>) / b <= theta^2 ||g||^4``. With ``nu`` it is the
    augmented test, which also asks the orthogonality test
    ``sum_j Var_j(g_i - (<g_i, g> / ||g||^2) g) / b <= nu^2 ||g||^2`` (the per-example
    gradients' components orthogonal to ``g``); the suggested batch size is then the larger
    of the two tests' sizes.

    Args:
      per_example_grads: pytree whose leaves have a leading batch axis ``b >= 2``.
      theta: inner-product tolerance (``> 0``).
      nu: orthogonality tolerance (``> 0``), or ``None`` for the inner-product test alone.

    Returns:
      ``(passed, suggested_batch_size)``.

    References:
      Bollapragada, Byrd, Nocedal, "Adaptive Sampling Strategies for Stochastic
      Optimization", 2018 (arXiv:1710.11258); Lau, Liu, Kolar, "AdAdaGrad", 2024 (arXiv:2402.11215).
    """
    flat, mean, b = _stats(per_example_grads)
    sq = jnp.sum(mean**2)
    inner = flat @ mean
    var = jnp.sum((inner - sq) ** 2) / (b - 1)  # mean_i <g_i, g> = ||g||^2
    target = theta**2 * sq**2
    passed, size = var / b <= target, _suggest(var, target)
    if nu is None:
        return passed, size
    ortho = flat - jnp.outer(inner / jnp.maximum(sq, jnp.finfo(sq.dtype).tiny), mean)
    var_o = jnp.sum((ortho - jnp.mean(ortho, 0)) ** 2) / (b - 1)
    target_o = nu**2 * sq
    return passed & (var_o / b <= target_o), jnp.maximum(size, _suggest(var_o, target_o))


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
                        max_batch_size: int = 2**20, orthogonality_tolerance: float | None = None
                        ) -> optax.GradientTransformationExtraArgs:
    """Meta-transform that passes updates through and tracks the batch size to use next.

    ``update(updates, state, params=None, *, per_example_grads)`` runs the chosen test on the
    per-example gradients of the current batch; when it fails the next batch size grows to
    the suggested one (never shrinks, capped at ``max_batch_size``). Read it from
    ``state.batch_size`` in the data loader; wrap any optimizer with ``optax.chain``.

    Args:
      initial_batch_size: starting batch size (``>= 2``).
      tolerance: ``eta`` of :func:`norm_test` / :func:`coordinate_norm_test`, or ``theta``
        of :func:`inner_product_test`.
      test: ``"norm"``, ``"coordinate_norm"`` (AdAdaGrad's coordinate-wise test),
        ``"inner_product"`` or ``"augmented_inner_product"`` (inner-product and
        orthogonality tests).
      max_batch_size: upper bound.
      orthogonality_tolerance: ``nu`` of the augmented test (default: ``tolerance``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` requiring ``per_example_grads=``.

    References:
      Lau, Liu, Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods",
      2024 (arXiv:2402.11215).
    """
    tests = ("norm", "coordinate_norm", "inner_product", "augmented_inner_product")
    if test not in tests:
        raise ValueError(f"test must be one of {tests}, got {test!r}.")
    if not isinstance(initial_batch_size, int) or initial_batch_size < 2:
        raise ValueError(f"initial_batch_size must be an int >= 2, got {initial_batch_size!r}.")
    if isinstance(tolerance, int | float) and tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}.")
    if not isinstance(max_batch_size, int) or max_batch_size < initial_batch_size:
        raise ValueError(f"max_batch_size must be an int >= initial_batch_size={initial_batch_size}, "
                         f"got {max_batch_size!r}.")
    if isinstance(orthogonality_tolerance, int | float) and orthogonality_tolerance <= 0:
        raise ValueError(f"orthogonality_tolerance must be positive, got {orthogonality_tolerance}.")
    nu = tolerance if orthogonality_tolerance is None else orthogonality_tolerance
    run_test = {"norm": norm_test, "coordinate_norm": coordinate_norm_test,
                "inner_product": inner_product_test,
                "augmented_inner_product": lambda g, theta: inner_product_test(g, theta, nu)}[test]

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
