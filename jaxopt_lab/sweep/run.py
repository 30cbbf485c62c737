"""Hyperparameter sweeps: one compiled program over many members, chunked, sharded, resumable.

A sweep evaluates ``fun(member_hparams, *args, **kwargs)`` for every member of
``hparams`` (a pytree of arrays with a leading member axis) as ``jit(vmap(fun))``.
Numeric hyperparameters are traced, so a new grid of the same shape reuses the
compiled program (solvers keep float options as traced leaves, see
:mod:`jaxopt_lab.base`).

Cost model. Under ``vmap`` a data-dependent ``lax.while_loop`` (every solver's
``run``) executes its body for the whole batch until the *slowest* lane of the
batch stops; finished lanes are frozen by masks, so their results and status are
exact, but they still pay for every extra iteration. The batch is one chunk on one
device, or one chunk's slice on each device of a mesh (each device runs its slice
with ``shard_map``, so a device stops when its own slowest lane stops). Wall time
is therefore about ``sum over chunks of max_iters(chunk slice) * cost(batched
iteration)``: sort or group members by expected difficulty (e.g. by
regularization strength) to make lanes of one chunk finish together, and use
``chunk_size`` to bound memory (and the number of lanes that wait). Against a
Python loop of jitted runs (one dispatch per member) a sweep wins when per-member
work is small, and gains little once each run is compute-bound (see
``benchmarks/results/sweep.md``). Keep solvers' ``implicit_diff=True`` (the
default) in a sweep: ``implicit_diff=False`` unrolls ``run`` into a masked scan of
``maxiter`` steps.

Checkpointing. With ``checkpoint_dir`` the results of each finished chunk are
saved with orbax-checkpoint (written to a temporary folder and renamed when
complete); a restarted call of the same sweep loads the saved chunks and computes
only the missing ones. "The same sweep" is checked by a fingerprint of the grid,
the chunking, the shared arguments (tree, shapes, dtypes and a blake2b hash of
their bytes), the function (its code, closure, defaults and the module-level names
it reads, or an explicit ``run_key``) and its output structure: a folder of
another sweep raises ``ValueError``. Each chunk folder carries a manifest (its
index, the fingerprint, a checksum of its arrays and of every file), checked on
load, so a moved, renamed, truncated or corrupt chunk raises an error naming it.

Long runs (:func:`run_steps`): a member that is a loop of steps (a training run,
a solver driven by ``init_state``/``update``) is run in segments of
``checkpoint_every`` steps; after each segment the whole stacked state is saved,
so a killed run resumes mid-run from the last segment (bitwise the same results
as an uninterrupted run: the same compiled segment program continues from the
same saved arrays).

Many hosts: after ``jax.distributed.initialize()``, pass a mesh over
``jax.devices()`` (all hosts); every process calls :func:`run` with the same
``hparams`` and gets the full results.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import os
import re
import sys
import sysconfig
import types
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

PyTree = Any

__all__ = ["grid", "mesh_for", "random", "run", "run_steps", "member_status", "num_members"]

_CHUNK_RE = re.compile(r"^chunk_(\d{6})$")
_STATE_RE = re.compile(r"^state_(\d{6})_(\d{9})$")


# --------------------------------------------------------------------------- grids


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


def member_status(results: PyTree) -> jax.Array | None:
    """Per-member :class:`jaxopt_lab.Status` codes of a sweep that returned an ``OptStep``.

    Args:
      results: the output of :func:`run`.

    Returns:
      The ``(n,)`` int32 status array, or ``None`` when ``results`` has no solver state.
    """
    state = getattr(results, "state", None)
    return getattr(state, "status", None)


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


# --------------------------------------------------------------------------- fingerprints


def _qualname(fun) -> str:
    return getattr(fun, "__module__", "") + "." + getattr(fun, "__qualname__", type(fun).__name__)


class _Unhashable(Exception):
    """A value that cannot be fingerprinted deterministically (message: where and what)."""


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(sorted(r + os.sep for r in roots))


_LIBRARY_ROOTS = _library_roots()


def _is_library(obj) -> bool:
    """True for code of installed packages, the standard library and jaxopt_lab itself.

    Their functions are fingerprinted by name and closure (not by code or globals): a
    library's code is fixed by its version, and recursing into it is slow and brittle.
    """
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str) or name == "__main__":
        return False
    if name.split(".")[0] in ("jaxopt_lab", "builtins"):
        return True
    mod = sys.modules.get(name)
    file = getattr(mod, "__file__", None)
    if mod is None or file is None:
        return mod is not None  # built-in (compiled) modules
    return os.path.realpath(file).startswith(_LIBRARY_ROOTS)


def _array_digest(x) -> str:
    arr = np.ascontiguousarray(_host(x))
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{arr.dtype.name}{arr.dtype.byteorder}{arr.shape}".encode())
    h.update(arr.reshape(-1).view(np.uint8))  # the raw bytes, no copy (also bfloat16, float8)
    return h.hexdigest()


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


class _Hasher:
    """A deterministic content hash of Python values: arrays by their bytes, functions by
    their code, closure, defaults and the module-level names they read."""

    _MAX_DEPTH = 64

    def __init__(self):
        self.h = hashlib.blake2b(digest_size=20)
        self.memo: dict[int, int] = {}
        self.keep: list = []  # memoized objects stay alive, so their ids stay unique

    def put(self, *parts) -> None:
        for p in parts:
            self.h.update(p if isinstance(p, bytes) else str(p).encode())
            self.h.update(b"\x00")

    def hexdigest(self) -> str:
        return self.h.hexdigest()

    def value(self, v, where: str, depth: int = 0) -> None:
        if depth > self._MAX_DEPTH:
            raise _Unhashable(f"{where} nests deeper than {self._MAX_DEPTH} levels")
        if v is None or v is Ellipsis or isinstance(v, bool | int | float | complex | str):
            self.put(type(v).__name__, repr(v))
            return
        if isinstance(v, bytes | bytearray):
            self.put("bytes", bytes(v))
            return
        if isinstance(v, jax.core.Tracer):
            raise _Unhashable(f"{where} is a traced value")
        if isinstance(v, np.ndarray | np.generic) and v.dtype.hasobject:
            self.put("object array", np.shape(v))
            self.value(np.asarray(v).tolist(), where, depth + 1)
            return
        if isinstance(v, np.ndarray | np.generic | jax.Array):
            self.put("array", _array_digest(v))
            return
        if isinstance(v, np.dtype | enum.Enum | types.ModuleType | type):
            self.put(type(v).__name__, _qualname(v) if isinstance(v, type) else
                     getattr(v, "__name__", None) or repr(v))
            return
        key = id(v)
        if key in self.memo:  # shared or cyclic reference
            self.put("ref", self.memo[key])
            return
        self.memo[key] = len(self.memo)
        self.keep.append(v)
        self._compound(v, where, depth + 1)

    def _compound(self, v, where: str, depth: int) -> None:
        if isinstance(v, types.CodeType):
            self.put("code", v.co_name, v.co_argcount, v.co_kwonlyargcount, v.co_flags, v.co_code,
                     v.co_names, v.co_varnames, v.co_freevars, v.co_cellvars)
            for c in v.co_consts:
                self.value(c, where, depth)
        elif isinstance(v, functools.partial):
            self.put("partial")
            self.value(v.func, f"{where}.func", depth)
            self.value(v.args, f"{where}.args", depth)
            self.value(v.keywords, f"{where}.keywords", depth)
        elif isinstance(v, types.MethodType):
            self.put("method")
            self.value(v.__func__, where, depth)
            self.value(v.__self__, f"{where}.__self__", depth)
        elif isinstance(v, types.FunctionType):
            self._function(v, where, depth)
        elif isinstance(v, dict):
            items = list(v.items())
            if all(isinstance(k, str) for k in v):
                items.sort(key=lambda kv: kv[0])
            self.put("dict", len(items))
            for k, x in items:
                self.value(k, f"{where} key", depth)
                self.value(x, f"{where}[{k!r}]", depth)
        elif isinstance(v, tuple | list):
            self.put(_qualname(type(v)), len(v))
            for j, x in enumerate(v):
                self.value(x, f"{where}[{j}]", depth)
        elif isinstance(v, set | frozenset):
            digests = []
            for x in v:
                sub = _Hasher()
                sub.value(x, f"{where} element", depth)
                digests.append(sub.hexdigest())
            self.put(type(v).__name__, *sorted(digests))
        elif isinstance(v, jax.ShapeDtypeStruct):
            self.put("shape", v.shape, v.dtype)
        elif dataclasses.is_dataclass(v):
            self.put("dataclass", _qualname(type(v)))
            self._call_method(v, where, depth)
            for f in dataclasses.fields(v):
                self.put(f.name)
                self.value(getattr(v, f.name, None), f"{where}.{f.name}", depth)
        elif callable(v) and hasattr(v, "__wrapped__"):  # jax.jit, functools.wraps, custom_jvp
            self.put("wrapped", _qualname(type(v)))
            self.value(v.__wrapped__, f"{where}.__wrapped__", depth)
        elif isinstance(v, types.BuiltinFunctionType | np.ufunc) or (callable(v) and _is_library(v)
                                                                     and hasattr(v, "__qualname__")):
            self.put("builtin", _qualname(v))
        elif hasattr(v, "__dict__") and not _is_library(type(v)):
            self.put("object", _qualname(type(v)))
            self._call_method(v, where, depth)
            self.value(vars(v), f"{where}.__dict__", depth)
        elif type(v) is object:  # a sentinel (e.g. jax.vmap's "no axis name")
            self.put("object()")
        else:
            text = repr(v)
            if type(v).__repr__ is object.__repr__ or " at 0x" in text:
                raise _Unhashable(f"{where} is a {_qualname(type(v))} with no deterministic content")
            self.put("repr", _qualname(type(v)), text)

    def _call_method(self, v, where: str, depth: int) -> None:
        call = next((k.__dict__["__call__"] for k in type(v).__mro__ if "__call__" in k.__dict__), None)
        if isinstance(call, types.FunctionType) and not _is_library(call):
            self.value(call, f"{where}.__call__", depth)

    def _function(self, fn: types.FunctionType, where: str, depth: int) -> None:
        self.put("function", _qualname(fn))
        if not _is_library(fn):
            self.value(fn.__code__, where, depth)
            # Module-level names the code reads: hashed when they can be (values, arrays,
            # functions), by type otherwise (a lock, a logger) -- they are not arguments.
            glb = fn.__globals__
            for name in sorted(_code_names(fn.__code__)):
                if name in glb and name != "__builtins__":
                    self.put("global", name)
                    try:
                        self.value(glb[name], f"global `{name}` of {_qualname(fn)}", depth)
                    except _Unhashable:
                        self.put("opaque", _qualname(type(glb[name])))
        self.value(fn.__defaults__, f"defaults of {where}", depth)
        self.value(fn.__kwdefaults__, f"keyword defaults of {where}", depth)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned after the closure was made)
                self.put("empty cell", name)
                continue
            self.put("cell", name)
            self.value(contents, f"closure variable `{name}` of {_qualname(fn)}", depth)


def _function_part(funs: dict[str, Callable], run_key: str | None) -> str:
    h = _Hasher()
    if run_key is not None:  # the user's name for what the functions compute, in place of their code
        h.put("run_key", run_key)
        return h.hexdigest()
    for role, fn in funs.items():
        h.put(role, _qualname(fn) if fn is not None else "None")
        try:
            h.value(fn, f"`{role}`")
        except _Unhashable as e:
            raise ValueError(
                f"cannot fingerprint `{role}` for `checkpoint_dir`: {e}. Pass `run_key=` (a string that "
                "changes whenever the function's behaviour does, e.g. a config hash) to name the run "
                "yourself.") from None
    return h.hexdigest()


def _data_part(args, kwargs) -> str:
    h = _Hasher()
    leaves, _ = jax.tree_util.tree_flatten_with_path((args, kwargs))
    h.put("leaves", len(leaves))
    for path, leaf in leaves:
        where = "shared argument " + jax.tree_util.keystr(path)
        h.put(where)
        try:
            h.value(leaf, where)
        except _Unhashable as e:
            raise ValueError(f"cannot fingerprint the shared arguments for `checkpoint_dir`: {e}.") from None
    return h.hexdigest()


def _tree_desc(tree, drop_leading: bool = False) -> list[str]:
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(np.shape(leaf))[1:] if drop_leading else tuple(np.shape(leaf))
        dtype = np.dtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)
        out.append(f"{jax.tree_util.keystr(path)}:{dtype.name}{list(shape)}")
    return out


def _fingerprint(funs: dict[str, Callable], hparams, args, kwargs, out_shape, n: int, chunk: int,
                 run_key: str | None, options: str = "") -> dict[str, str]:
    """What identifies a sweep's results, part by part (each a hex digest)."""
    grid = _Hasher()
    grid.put(*_tree_desc(hparams))
    for leaf in jax.tree_util.tree_leaves(hparams):
        grid.put(_array_digest(leaf))
    digest = lambda *parts: hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=20).hexdigest()
    parts = {
        "grid": grid.hexdigest(),
        "chunking": digest(n, chunk, options),
        "data": _data_part(args, kwargs),
        "function": _function_part(funs, run_key),
        "output structure": digest(*_tree_desc(out_shape, drop_leading=True)),
    }
    parts["fingerprint"] = digest(*(f"{k}={v}" for k, v in sorted(parts.items())))
    return parts


# --------------------------------------------------------------------------- checkpoints

_MANIFEST = "sweep_chunk.json"


def _leaves_checksum(leaves) -> str:
    h = hashlib.blake2b(digest_size=20)
    for x in leaves:
        h.update(_array_digest(x).encode())
    return h.hexdigest()


def _file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Checkpoints:
    """One orbax checkpoint per finished chunk under ``directory/chunk_XXXXXX``.

    Every saved folder holds a manifest (``sweep_chunk.json``): what it is (chunk
    index, steps done), the sweep's fingerprint, a checksum of the saved arrays and
    the size and hash of every file, all checked when it is loaded.
    """

    def __init__(self, directory: str, parts: dict[str, str], n: int, chunk: int):
        import orbax.checkpoint as ocp

        self.dir = os.path.abspath(directory)
        self.fingerprint = parts["fingerprint"]
        self.ckpt = ocp.PyTreeCheckpointer()
        os.makedirs(self.dir, exist_ok=True)
        meta_path = os.path.join(self.dir, "sweep.json")
        meta = {"fingerprint": self.fingerprint, "parts": parts, "num_members": n, "chunk_size": chunk}
        if os.path.exists(meta_path):
            try:
                with open(meta_path) as f:
                    old = json.load(f)
            except (OSError, ValueError) as e:
                raise ValueError(f"`checkpoint_dir` {directory!r}: file {meta_path!r} cannot be read ({e}); "
                                 "use a fresh folder or delete it.") from None
            if old.get("fingerprint") != self.fingerprint:
                old_parts = old.get("parts") or {}
                differ = [k for k in parts if k != "fingerprint" and old_parts.get(k) != parts[k]]
                what = ", ".join(differ) if old_parts else "all (saved by an older version)"
                raise ValueError(
                    f"`checkpoint_dir` {directory!r} holds a different sweep: differs in {what} "
                    f"(grid = hparams, chunking = number of members, chunk_size and steps, data = the "
                    f"shared arguments, function = fun's code, closure and defaults or run_key, output "
                    f"structure = fun's output tree, shapes and dtypes); use a fresh folder or delete it."
                )
        elif jax.process_index() == 0:
            tmp = meta_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, meta_path)

    def done(self) -> set[int]:
        out = set()
        for name in os.listdir(self.dir):
            m = _CHUNK_RE.match(name)
            if m and os.path.isdir(os.path.join(self.dir, name)):
                out.add(int(m.group(1)))
        return out

    def path(self, i: int) -> str:
        return os.path.join(self.dir, f"chunk_{i:06d}")

    def _write(self, path: str, leaves: list[np.ndarray], what: dict) -> None:
        # Written whole under a staging name (orbax, then the manifest), then renamed:
        # a killed process leaves a complete folder or none under the final name.
        import shutil

        stage = path + ".partial"
        if jax.process_index() == 0:
            shutil.rmtree(stage, ignore_errors=True)
        self.ckpt.save(stage, {f"leaf_{j:04d}": x for j, x in enumerate(leaves)})
        if jax.process_index() == 0:
            files = {}
            for root, _, names in os.walk(stage):
                for name in sorted(names):
                    full = os.path.join(root, name)
                    files[os.path.relpath(full, stage)] = [os.path.getsize(full), _file_digest(full)]
            manifest = {**what, "fingerprint": self.fingerprint, "num_leaves": len(leaves),
                        "checksum": _leaves_checksum(leaves), "files": files}
            with open(os.path.join(stage, _MANIFEST), "w") as f:
                json.dump(manifest, f)
            shutil.rmtree(path, ignore_errors=True)
            os.rename(stage, path)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxopt_lab.sweep:{path}")

    def _read(self, path: str, what: dict, num_leaves: int) -> list[np.ndarray]:
        mpath = os.path.join(path, _MANIFEST)
        try:
            with open(mpath) as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"checkpoint file {mpath!r} is missing: {path!r} is incomplete or was not "
                             "written by this version of jaxopt_lab.sweep; delete it to recompute.") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"checkpoint file {mpath!r} is corrupt ({e}); delete {path!r} to "
                             "recompute.") from None
        if manifest.get("fingerprint") != self.fingerprint:
            raise ValueError(f"checkpoint {path!r} belongs to another sweep (its {_MANIFEST} has another "
                             "fingerprint): a folder was moved between checkpoint folders.")
        for k, v in what.items():
            if manifest.get(k) != v:
                raise ValueError(f"checkpoint {path!r} holds {k} {manifest.get(k)!r}, not {v!r} (its "
                                 f"{_MANIFEST}): a checkpoint folder was renamed or moved.")
        for rel, (size, digest) in sorted(manifest.get("files", {}).items()):
            full = os.path.join(path, rel)
            if not os.path.isfile(full):
                raise ValueError(f"checkpoint file {full!r} is missing.")
            if os.path.getsize(full) != size:
                raise ValueError(f"checkpoint file {full!r} is truncated or altered: "
                                 f"{os.path.getsize(full)} bytes, {size} were saved.")
            if _file_digest(full) != digest:
                raise ValueError(f"checkpoint file {full!r} is corrupt (its checksum differs from the "
                                 "saved one).")
        if manifest.get("num_leaves") != num_leaves:
            raise ValueError(f"checkpoint {path!r} holds {manifest.get('num_leaves')} arrays, "
                             f"the sweep's output has {num_leaves}.")
        try:
            tree = self.ckpt.restore(path)
            leaves = [np.asarray(tree[f"leaf_{j:04d}"]) for j in range(num_leaves)]
        except Exception as e:  # orbax / tensorstore errors on damaged files
            raise ValueError(f"checkpoint {path!r} cannot be read: {type(e).__name__}: {e}") from None
        if _leaves_checksum(leaves) != manifest.get("checksum"):
            raise ValueError(f"checkpoint {path!r}: the restored arrays do not match the saved checksum.")
        return leaves

    def save(self, i: int, leaves: list[np.ndarray]) -> None:
        self._write(self.path(i), leaves, {"kind": "chunk", "chunk": i})

    def load(self, i: int, num_leaves: int) -> list[np.ndarray]:
        return self._read(self.path(i), {"kind": "chunk", "chunk": i}, num_leaves)

    # Mid-run states of an unfinished chunk (run_steps): state_<chunk>_<steps done>.
    def latest_state(self, i: int) -> tuple[int, str | None]:
        best = (0, None)
        for name in os.listdir(self.dir):
            m = _STATE_RE.match(name)
            if m and int(m.group(1)) == i and int(m.group(2)) > best[0]:
                best = (int(m.group(2)), os.path.join(self.dir, name))
        return best

    def save_state(self, i: int, steps: int, leaves: list[np.ndarray]) -> None:
        path = os.path.join(self.dir, f"state_{i:06d}_{steps:09d}")
        self._write(path, leaves, {"kind": "state", "chunk": i, "steps": steps})
        self.drop_states(i, keep=path)

    def load_state(self, i: int, steps: int, path: str, num_leaves: int) -> list[np.ndarray]:
        return self._read(path, {"kind": "state", "chunk": i, "steps": steps}, num_leaves)

    def drop_states(self, i: int, keep: str | None = None) -> None:
        if jax.process_index() != 0:
            return
        import shutil

        for name in os.listdir(self.dir):
            m = _STATE_RE.match(name)
            path = os.path.join(self.dir, name)
            if m and int(m.group(1)) == i and path != keep:
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- run


def run(
    fun: Callable[..., PyTree],
    hparams: PyTree,
    *args,
    mesh: Mesh | None = None,
    chunk_size: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    axis_name: str | None = None,
    data_specs: PyTree | None = None,
    on_chunk: Callable[[int, int, bool], None] | None = None,
    run_key: str | None = None,
    **kwargs,
) -> PyTree:
    """Evaluate ``fun`` for every member of a hyperparameter sweep in one compiled program.

    ``fun(member_hparams, *args, **kwargs)`` gets one member's hyperparameters
    (``hparams`` with the member axis removed) and returns a pytree (e.g. a solver's
    ``OptStep``, or a dict of metrics). ``args``/``kwargs`` are shared by all members
    (pytrees of arrays, traced). Differentiable: ``jax.grad`` of a function of the
    results with respect to ``hparams`` (or ``args``) works, with implicit
    differentiation per member when ``fun`` runs a solver (no checkpointing then).

    Args:
      fun: the per-member function; the same Python object reuses the compiled program.
      hparams: pytree of arrays with a leading member axis (see :func:`grid`, :func:`random`).
      *args: shared arguments of ``fun``.
      mesh: a ``jax.sharding.Mesh``; members are split over ``axis_name`` (each device
        runs its slice vmapped). ``None`` runs on the default device.
      chunk_size: members per compiled call (bounds memory; a multiple of the mesh
        axis size). ``None`` runs all members at once. The last chunk is padded by
        repeating the last member, so every chunk has the same shape (one compile).
      checkpoint_dir: folder where each finished chunk is saved (orbax); a rerun with
        the same folder resumes from the saved chunks. A folder written by another
        sweep (other ``hparams``, ``chunk_size``, shared arguments, ``fun`` or output
        structure) raises ``ValueError``, and so does a moved, renamed or damaged chunk.
      axis_name: mesh axis for the members (default: the mesh's first axis).
      data_specs: optional tuple with one ``PartitionSpec`` (or ``None``) per positional
        argument, sharding the shared data (e.g. ``P("data")`` splits rows) over other
        mesh axes; then XLA partitions ``fun`` itself (GSPMD), and lanes wait
        for the slowest member of the whole chunk.
      on_chunk: optional callback ``(chunk_index, num_chunks, loaded_from_checkpoint)``
        called after each chunk is finished (and saved).
      run_key: with ``checkpoint_dir``, a string that names ``fun``'s behaviour instead
        of fingerprinting its code, closure and defaults (needed when ``fun`` holds
        something that has no deterministic content, e.g. a lock or an open file;
        change it whenever ``fun`` computes something else).
      **kwargs: shared keyword arguments of ``fun``.

    Returns:
      ``fun``'s output pytree with a leading member axis of length ``n``. When ``fun``
      returns an ``OptStep``, ``results.state.status`` holds each member's status
      (see :func:`member_status`).

    References:
      Bradbury et al., "JAX: composable transformations of Python+NumPy programs", 2018;
      Xu et al., "GSPMD: General and Scalable Parallelization for ML Computation
      Graphs", 2021 (arXiv:2105.04663).
    """
    if not callable(fun):
        raise TypeError(f"`fun` must be callable, got {type(fun).__name__}.")
    plan = _Plan(hparams, len(args), mesh, chunk_size, axis_name, data_specs)
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(hparams))
    ckpts = None
    if checkpoint_dir is not None:
        if traced:
            raise ValueError("`checkpoint_dir` cannot be used while differentiating or tracing a sweep.")
        if run_key is not None and not isinstance(run_key, str):
            raise TypeError(f"`run_key` must be a string or None, got {type(run_key).__name__}.")
        out_shape = jax.eval_shape(lambda h: plan.compute(fun, h, args, kwargs), plan.chunk_of(hparams, 0))
        out_tree = jax.tree_util.tree_structure(out_shape)
        parts = _fingerprint({"fun": fun}, hparams, args, kwargs, out_shape, plan.n, plan.chunk, run_key)
        ckpts = _Checkpoints(os.fspath(checkpoint_dir), parts, plan.n, plan.chunk)
    else:
        out_tree = None
    pieces = []
    done = ckpts.done() if ckpts else set()
    for i in range(plan.num_chunks):
        if i in done:
            pieces.append([jnp.asarray(x) for x in ckpts.load(i, out_tree.num_leaves)])
        else:
            leaves, out_tree = jax.tree_util.tree_flatten(plan.compute(fun, plan.chunk_of(hparams, i),
                                                                       args, kwargs))
            if ckpts is not None:
                ckpts.save(i, [_host(x) for x in leaves])
            pieces.append(leaves)
        if on_chunk is not None:
            on_chunk(i, plan.num_chunks, i in done)
    return plan.assemble(pieces, out_tree, traced)


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


def _strong(tree, like=None):
    # Carries are kept strongly typed, so a carry restored from disk (numpy, no weak
    # types) runs the very same compiled segment as one kept in memory.
    like = tree if like is None else like
    return jax.tree_util.tree_map(lambda x, r: jnp.asarray(x, jnp.result_type(r)), tree, like)


@functools.lru_cache(maxsize=128)
def _strong_init(init: Callable) -> Callable:
    return lambda h, *args, **kwargs: _strong(init(h, *args, **kwargs))


@functools.lru_cache(maxsize=128)
def _segment(step: Callable, done: Callable | None) -> Callable:
    """Per-member program: up to ``length`` steps (a traced count), frozen once ``done``."""

    def seg(member, length, *args, **kwargs):
        h, carry = member

        def cond(c):
            go = c[0] < length
            return go if done is None else go & ~jnp.asarray(done(c[1]), bool)

        body = lambda c: (c[0] + 1, _strong(step(c[1], h, *args, **kwargs), c[1]))
        return jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), carry))[1]

    return seg


def run_steps(
    init: Callable[..., PyTree],
    step: Callable[..., PyTree],
    hparams: PyTree,
    *args,
    num_steps: int,
    done: Callable[[PyTree], jax.Array] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    data_specs: PyTree | None = None,
    on_segment: Callable[[int, int, int, bool], None] | None = None,
    run_key: str | None = None,
    **kwargs,
) -> PyTree:
    """A sweep of long step loops (training runs, solvers), checkpointed mid-run.

    Every member runs ``carry = init(h, *args, **kwargs)`` then up to ``num_steps``
    times ``carry = step(carry, h, *args, **kwargs)``, stopping early (its carry
    frozen) once ``done(carry)`` is true. The steps run as one compiled vmapped
    ``while_loop`` per segment of ``checkpoint_every`` steps; with
    ``checkpoint_dir`` the stacked carry is saved (orbax) after every segment, so a
    killed process restarted with the same call resumes from the last saved
    segment and returns bitwise the results of an uninterrupted run. Finished
    chunks are kept as in :func:`run`. A solver is driven by
    ``init = lambda h, *a: OptStep(x0, solver(h).init_state(x0, *a))``,
    ``step = lambda c, h, *a: solver(h).update(c.params, c.state, *a)`` and
    ``done = lambda c: c.state.status != Status.RUNNING`` (what ``solver.run`` does,
    without its non-finite guard and implicit differentiation).

    Args:
      init: ``init(member_hparams, *args, **kwargs) -> carry`` (a pytree of arrays).
      step: ``step(carry, member_hparams, *args, **kwargs) -> carry`` (same structure).
      hparams: pytree of arrays with a leading member axis.
      *args: shared arguments of ``init`` and ``step``.
      num_steps: maximum steps per member.
      done: optional ``done(carry) -> bool`` per member (e.g. a solver's status left RUNNING).
      checkpoint_every: steps per compiled segment (default ``num_steps``: one segment).
      checkpoint_dir: folder for the per-segment states and finished chunks.
      mesh, chunk_size, axis_name, data_specs: as in :func:`run`.
      on_segment: optional callback ``(chunk_index, num_chunks, steps_done, resumed)``
        after each segment is finished (and saved); ``resumed`` is true for a state
        or chunk loaded from ``checkpoint_dir``.
      run_key: with ``checkpoint_dir``, a string naming what ``init``, ``step`` and
        ``done`` compute, used instead of fingerprinting their code (see :func:`run`).
      **kwargs: shared keyword arguments of ``init`` and ``step``.

    Returns:
      The final carries stacked along a leading member axis of length ``n``.

    References:
      Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016
      (arXiv:1604.06174), for checkpointing long runs; orbax-checkpoint (Google).
    """
    for f, name in ((init, "init"), (step, "step")):
        if not callable(f):
            raise TypeError(f"`{name}` must be callable, got {type(f).__name__}.")
    if done is not None and not callable(done):
        raise TypeError(f"`done` must be callable or None, got {type(done).__name__}.")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    every = num_steps if checkpoint_every is None else checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"`checkpoint_every` must be a positive int, got {checkpoint_every!r}.")
    plan = _Plan(hparams, len(args), mesh, chunk_size, axis_name, data_specs)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(hparams)):
        raise ValueError("`run_steps` cannot be traced or differentiated; use `run` with a solver's `run` "
                         "(implicit differentiation) instead.")
    seg, init_ = _segment(step, done), _strong_init(init)
    ckpts = None
    if checkpoint_dir is not None:
        if run_key is not None and not isinstance(run_key, str):
            raise TypeError(f"`run_key` must be a string or None, got {type(run_key).__name__}.")
        carry_shape = jax.eval_shape(lambda hh: plan.compute(init_, hh, args, kwargs),
                                     plan.chunk_of(hparams, 0))
        parts = _fingerprint({"init": init, "step": step, "done": done}, hparams, args, kwargs, carry_shape,
                             plan.n, plan.chunk, run_key, options=f"steps {num_steps}/{every}")
        ckpts = _Checkpoints(os.fspath(checkpoint_dir), parts, plan.n, plan.chunk)
    finished = ckpts.done() if ckpts else set()
    out_tree, pieces = None, []

    def all_done(carry):
        return done is not None and bool(np.all(_host(jax.vmap(done)(carry))))

    for i in range(plan.num_chunks):
        h = plan.chunk_of(hparams, i)
        carry_shape = jax.eval_shape(lambda hh: plan.compute(init_, hh, args, kwargs), h)
        out_tree = jax.tree_util.tree_structure(carry_shape)
        if i in finished:
            pieces.append([jnp.asarray(x) for x in ckpts.load(i, out_tree.num_leaves)])
            if on_segment is not None:
                on_segment(i, plan.num_chunks, num_steps, True)
            continue
        steps, path = ckpts.latest_state(i) if ckpts else (0, None)
        if path is not None:
            saved = ckpts.load_state(i, steps, path, out_tree.num_leaves)
            carry = jax.tree_util.tree_unflatten(out_tree, saved)
            if on_segment is not None:
                on_segment(i, plan.num_chunks, steps, True)
        else:
            carry = plan.compute(init_, h, args, kwargs)
        while steps < num_steps and not all_done(carry):
            length = min(every, num_steps - steps)
            carry = plan.compute(seg, (h, carry), (np.int32(length), *args), kwargs, extra_specs=(P(),))
            steps += length
            if ckpts is not None and steps < num_steps:
                ckpts.save_state(i, steps, [_host(x) for x in jax.tree_util.tree_leaves(carry)])
            if on_segment is not None:
                on_segment(i, plan.num_chunks, steps, False)
        leaves = jax.tree_util.tree_leaves(carry)
        if ckpts is not None:
            ckpts.save(i, [_host(x) for x in leaves])
            ckpts.drop_states(i)
        pieces.append(leaves)
    return plan.assemble(pieces, out_tree, False)
