"""Search spaces of a sweep: grids and random draws of hyperparameters, one member axis.

A sweep's ``hparams`` is a pytree of arrays sharing a leading member axis; :func:`grid`
builds a Cartesian product and :func:`random` independent draws, both as a dict
``name -> (n,) array`` that :func:`jaxopt_lab.sweep.run` takes as it is.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

__all__ = ["grid", "random", "num_members"]


def grid(**axes) -> dict[str, jax.Array]:
    """Cartesian product of hyperparameter values, flattened to one member axis.

    The first axis varies slowest (``itertools.product`` order).

    Args:
      **axes: ``name=values`` with ``values`` a 1-D sequence of numbers
        (floats, ints, e.g. seeds).

    Returns:
      A dict ``name -> array`` of shape ``(prod(len(values)),)``.

    References:
      Bergstra and Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 2012
      (grid search as the baseline).
    """
    if not axes:
        raise ValueError("`grid` needs at least one axis, e.g. grid(lam=[0.1, 1.0]).")
    values = {}
    for name, v in axes.items():
        arr = np.asarray(v)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"grid axis `{name}` must be a non-empty 1-D sequence, got shape {arr.shape}.")
        if not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"grid axis `{name}` must hold numbers, got dtype {arr.dtype}.")
        values[name] = arr
    mesh = np.meshgrid(*values.values(), indexing="ij")
    return {name: jnp.asarray(m.reshape(-1)) for name, m in zip(values, mesh, strict=True)}


def _sample(key, n: int, name: str, spec):
    if callable(spec):
        return jnp.asarray(spec(key, (n,)))
    if not isinstance(spec, tuple | list) or not spec or not isinstance(spec[0], str):
        raise TypeError(
            f"distribution `{name}` must be a callable (key, shape) -> array or a tuple like "
            f"('loguniform', lo, hi); got {spec!r}."
        )
    kind, rest = spec[0], tuple(spec[1:])
    nargs = {"uniform": 2, "loguniform": 2, "normal": 2, "randint": 2, "choice": 1}
    if kind not in nargs:
        raise ValueError(f"distribution `{name}`: kind must be one of {sorted(nargs)}, got {kind!r}.")
    if len(rest) != nargs[kind]:
        raise ValueError(f"distribution `{name}`: {kind!r} takes {nargs[kind]} parameters, got {len(rest)}.")
    if kind == "uniform":
        return jax.random.uniform(key, (n,), minval=rest[0], maxval=rest[1])
    if kind == "loguniform":
        lo, hi = rest
        if lo <= 0 or hi <= lo:
            raise ValueError(f"distribution `{name}`: loguniform needs 0 < lo < hi, got {rest}.")
        return jnp.exp(jax.random.uniform(key, (n,), minval=np.log(lo), maxval=np.log(hi)))
    if kind == "normal":
        return rest[0] + rest[1] * jax.random.normal(key, (n,))
    if kind == "randint":
        return jax.random.randint(key, (n,), rest[0], rest[1])
    return jax.random.choice(key, jnp.asarray(rest[0]), (n,))


def random(key: jax.Array, n: int, **distributions) -> dict[str, jax.Array]:
    """``n`` random members, each hyperparameter drawn independently.

    Args:
      key: a PRNG key.
      n: number of members.
      **distributions: ``name=spec`` with ``spec`` one of ``("uniform", lo, hi)``,
        ``("loguniform", lo, hi)``, ``("normal", mean, std)``, ``("randint", lo, hi)``
        (``hi`` excluded), ``("choice", values)``, or a callable ``(key, shape) -> array``.

    Returns:
      A dict ``name -> array`` of shape ``(n,)``.

    References:
      Bergstra and Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 2012.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive int, got {n!r}.")
    if not distributions:
        raise ValueError("`random` needs at least one distribution, e.g. lr=('loguniform', 1e-4, 1e-1).")
    keys = jax.random.split(key, len(distributions))
    return {name: _sample(k, n, name, spec)
            for k, (name, spec) in zip(keys, distributions.items(), strict=True)}


def num_members(hparams: PyTree) -> int:
    """Length of the leading member axis shared by every leaf of ``hparams``.

    Args:
      hparams: a pytree of arrays with a leading member axis.

    Returns:
      The number of members.
    """
    leaves = jax.tree_util.tree_leaves_with_path(hparams)
    if not leaves:
        raise ValueError("`hparams` is an empty pytree; build it with sweep.grid or sweep.random.")
    sizes = {}
    for path, leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) == 0:
            raise ValueError(f"`hparams` leaf {jax.tree_util.keystr(path)} is a scalar; "
                             "every leaf needs a leading member axis.")
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"`hparams` leaves disagree on the member axis length: {sizes}.")
    return next(iter(sizes.values()))
