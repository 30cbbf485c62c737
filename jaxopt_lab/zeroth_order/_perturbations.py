"""Perturbation plumbing shared by the zeroth-order estimators: option checks, flat views of the
params, direction sampling and batched evaluation of the perturbed points."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab.core.checks import (
    check_callable,
    check_int,
    check_params_tree,
    check_positive,
    check_same_structure,
    is_concrete,
)
from jaxopt_lab.curvature.probes import rademacher_like


def check_options(num_directions=None, smoothing=None, chunk_size=None, difference=None,
                  differences=("forward", "central")) -> None:
    """Raise a clear error for a bad estimator option (before any tracing)."""
    if num_directions is not None:
        check_int(num_directions, "num_directions", minimum=1)
    if smoothing is not None:
        check_positive(smoothing, "smoothing")
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", minimum=1)
    if difference is not None and difference not in differences:
        raise ValueError(f"`difference` must be one of {differences}, got {difference!r}.")


def flatten_checked(fun: Callable, params, args, kwargs):
    """Flatten ``params`` and check that ``fun`` returns a real scalar.

    Returns:
      ``(x, unravel, f)`` where ``f(x_flat)`` evaluates ``fun`` at a flat point.
    """
    check_callable(fun, "fun")
    check_params_tree(params, "params")
    x, unravel = ravel_pytree(params)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`params` must hold real floating-point arrays, got dtype {x.dtype}.")
    out = jax.eval_shape(lambda p: fun(p, *args, **kwargs), params)
    shape = getattr(out, "shape", None)
    if shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        what = f"shape {shape} dtype {getattr(out, 'dtype', type(out).__name__)}"
        raise ValueError(f"`fun` must return a real scalar (use has_aux-free functions), got {what}.")
    return x, unravel, lambda z: fun(unravel(z), *args, **kwargs)


def batched_map(fn: Callable, xs, chunk_size: int | None):
    """``vmap(fn)(xs)`` in one call, or in chunks of ``chunk_size`` to bound memory."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if chunk_size is None or chunk_size >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def sample_directions(key, num: int, dim: int, distribution: str, dtype):
    """``num`` random directions in ``R^dim``: Gaussian, uniform on the sphere or Rademacher."""
    if distribution == "gaussian":
        return jax.random.normal(key, (num, dim), dtype)
    if distribution == "sphere":
        u = jax.random.normal(key, (num, dim), jnp.float32 if dtype == jnp.bfloat16 else dtype)
        return (u / jnp.linalg.norm(u, axis=1, keepdims=True)).astype(dtype)
    if distribution == "rademacher":  # signs unpacked from random words: ~5x jax.random.rademacher on CPU
        return rademacher_like(key, jax.ShapeDtypeStruct((dim,), dtype), n_samples=num)
    raise ValueError(
        f"`distribution` must be 'gaussian', 'sphere' or 'rademacher', got {distribution!r}."
    )


def flat_mask(mask, params):
    """The boolean mask pytree flattened in ``ravel_pytree`` order (checked against ``params``)."""
    try:
        check_same_structure(mask, params, "mask", "params")
    except ValueError as err:
        raise ValueError(f"`mask` must match `params` in structure and shapes: {err}") from None
    leaves = jax.tree_util.tree_leaves(mask)
    if all(is_concrete(leaf) for leaf in leaves):
        return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in leaves]).astype(bool)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves]).astype(bool)
