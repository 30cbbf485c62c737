"""Where a sweep runs: a mesh over the member axis, the compiled programs, chunking.

One device runs ``jit(vmap(fun))``; a mesh splits the members over a mesh axis and each
device runs its slice vmapped (``shard_map``), or, with ``data_specs``, XLA partitions
``fun`` itself over the member and data axes (GSPMD). Members are cut into chunks of
one shape (the last one padded), so every chunk runs the same compiled program.

Many hosts: after ``jax.distributed.initialize()``, pass a mesh over
``jax.devices()`` (all hosts); every process calls :func:`jaxopt_lab.sweep.run` with
the same ``hparams`` and gets the full results.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab.sweep.spaces import num_members

__all__ = ["mesh_for"]


def mesh_for(devices: int | Sequence | None = None, axis_name: str = "members") -> Mesh:
    """A 1-D mesh over the member axis.

    Args:
      devices: ``None`` for all devices (all hosts after ``jax.distributed.initialize``),
        an int for the first ``k`` devices, or a sequence of devices.
      axis_name: the mesh axis name.

    Returns:
      A ``jax.sharding.Mesh``.
    """
    all_devices = jax.devices()
    if devices is None:
        devs = all_devices
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise ValueError(f"`devices` must be between 1 and {len(all_devices)}, got {devices}.")
        devs = all_devices[:devices]
    else:
        devs = list(devices)
    return Mesh(np.array(devs), (axis_name,))


# --------------------------------------------------------------------------- compiled programs


@functools.partial(jax.jit, static_argnums=(0,))
def _vmapped(fun, hparams, args, kwargs):
    return jax.vmap(lambda h: fun(h, *args, **kwargs))(hparams)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _sharded(fun, mesh, axis, hparams, args, kwargs):
    body = lambda h, a, k: jax.vmap(lambda hh: fun(hh, *a, **k))(h)
    mapped = jax.shard_map(body, mesh=mesh, in_specs=(P(axis), P(), P()), out_specs=P(axis),
                           check_vma=False)
    return mapped(hparams, args, kwargs)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _gspmd(fun, mesh, axis, data_specs, hparams, args, kwargs):
    # Member axis and data axis both sharded; XLA's SPMD partitioner inserts the
    # reductions over the data axis inside ``fun``.
    hparams = jax.lax.with_sharding_constraint(hparams, NamedSharding(mesh, P(axis)))
    args = tuple(
        jax.tree_util.tree_map(lambda x, s=s: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, s)), a)
        for a, s in zip(args, data_specs, strict=True)
    )
    out = jax.vmap(lambda h: fun(h, *args, **kwargs))(hparams)
    return jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P(axis)))


def _host(x):
    """A host numpy copy of a (possibly multi-host) array."""
    if jax.process_count() > 1 and isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _place(tree, mesh, spec):
    """Put host values on ``mesh`` with ``spec`` (works across hosts: each reads its shards)."""
    sharding = NamedSharding(mesh, spec)

    def put(x):
        if isinstance(x, jax.core.Tracer):
            return x
        arr = np.asarray(x)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree_util.tree_map(put, tree)


class _Plan:
    """Chunking and placement shared by :func:`run` and :func:`run_steps`."""

    def __init__(self, hparams, nargs, mesh, chunk_size, axis_name, data_specs):
        self.n = n = num_members(hparams)
        self.mesh, self.axis, ndev = mesh, None, 1
        if mesh is not None:
            if not isinstance(mesh, Mesh):
                raise TypeError(f"`mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
            self.axis = axis = axis_name or mesh.axis_names[0]
            if axis not in mesh.axis_names:
                raise ValueError(f"`axis_name` {axis!r} is not a mesh axis; mesh axes: {mesh.axis_names}.")
            ndev = mesh.shape[axis]
            explicit = [a for a, t in zip(mesh.axis_names, getattr(mesh, "axis_types", ()), strict=False)
                        if "Explicit" in str(t)]
            if data_specs is not None and explicit:
                raise ValueError(f"`mesh` axes {explicit} are Explicit; `data_specs` needs Auto axes (jax."
                                 "sharding.Mesh(devices, names) or jax.make_mesh(..., axis_types=Auto)).")
        elif data_specs is not None:
            raise ValueError("`data_specs` needs a `mesh`.")
        self.specs = None
        if data_specs is not None:
            self.specs = tuple(P() if s is None else s for s in data_specs)
            if len(self.specs) != nargs or not all(isinstance(s, P) for s in self.specs):
                raise ValueError(f"`data_specs` must hold one PartitionSpec (or None) per positional "
                                 f"argument ({nargs}), got {data_specs!r}.")
        if chunk_size is None:
            self.chunk = -(-n // ndev) * ndev
        else:
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
                raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
            if chunk_size % ndev:
                raise ValueError(f"`chunk_size` must be a multiple of the {ndev} devices on mesh axis "
                                 f"{self.axis!r}, got {chunk_size}.")
            self.chunk = chunk_size
        self.num_chunks = -(-n // self.chunk)

    def compute(self, fun, h, args, kwargs, extra_specs=()):
        if self.mesh is None:
            return _vmapped(fun, h, args, kwargs)
        if self.specs is None:
            h = _place(h, self.mesh, P(self.axis))
            a, k = _place((args, kwargs), self.mesh, P())
            return _sharded(fun, self.mesh, self.axis, h, a, k)
        return _gspmd(fun, self.mesh, self.axis, (*extra_specs, *self.specs), h, args, kwargs)

    def chunk_of(self, tree, i):
        if self.num_chunks == 1 and self.chunk == self.n:
            return tree  # no copy: one chunk, no padding
        idx = np.minimum(np.arange(i * self.chunk, (i + 1) * self.chunk), self.n - 1)  # pad: last member
        return jax.tree_util.tree_map(
            lambda x: x[idx] if isinstance(x, jax.core.Tracer) else np.asarray(x)[idx], tree)

    def assemble(self, pieces, out_tree, traced):
        if len(pieces) == 1:
            leaves = pieces[0] if self.chunk == self.n else [x[:self.n] for x in pieces[0]]
        else:
            leaves = [jnp.concatenate([_gathered(p[j], traced) for p in pieces])[:self.n]
                      for j in range(out_tree.num_leaves)]
        return jax.tree_util.tree_unflatten(out_tree, leaves)


def _gathered(x, traced: bool):
    if traced or not isinstance(x, jax.Array) or x.is_fully_addressable:
        return x
    return jnp.asarray(_host(x))
