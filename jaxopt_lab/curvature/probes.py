"""Rademacher probes from packed random bits.

``jax.random.rademacher`` draws one random word (and a float comparison) per
entry. Here one ``uint32`` word gives 32 signs: we draw ``ceil(n / 32)`` words and
unpack their bits with a shift and a mask, which on CPU is many times cheaper for
large pytrees. The bits of the whole pytree are drawn at once and split over the
leaves in order, so a pytree and its flattened concatenation get the same signs.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.core.checks import check_int


def rademacher_like(key: jax.Array, tree: Any, n_samples: int | None = None) -> Any:
    """Random ``+-1`` entries with the structure, shapes and dtypes of ``tree``.

    Args:
      key: a PRNG key.
      tree: a pytree of arrays (only shapes and dtypes are used).
      n_samples: if given (static int ``>= 1``), every leaf gets a leading axis of
        this size holding independent probes.

    Returns:
      A pytree like ``tree`` (with a leading ``n_samples`` axis when given) whose
      entries are independent and equal to ``+1`` or ``-1`` with probability 1/2.

    References:
      Hutchinson, "A stochastic estimator of the trace of the influence matrix
      for Laplacian smoothing splines", 1990.
    """
    if n_samples is not None:
        check_int(n_samples, "n_samples", minimum=1)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    sizes = [int(np.prod(jnp.shape(x))) for x in leaves]
    total = sum(sizes)
    rows = 1 if n_samples is None else n_samples
    words = max(1, math.ceil(total / 32))
    bits = jax.random.bits(key, (rows, words), jnp.uint32)
    shifts = jnp.arange(32, dtype=jnp.uint32)
    unpacked = ((bits[:, :, None] >> shifts) & jnp.uint32(1)).reshape(rows, words * 32)[:, :total]
    out, start = [], 0
    for leaf, size in zip(leaves, sizes, strict=True):
        dtype = jnp.result_type(leaf)
        chunk = unpacked[:, start:start + size]
        signs = (1 - 2 * chunk.astype(jnp.int8)).astype(dtype)
        shape = jnp.shape(leaf) if n_samples is None else (n_samples, *jnp.shape(leaf))
        out.append(signs.reshape(shape))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)
