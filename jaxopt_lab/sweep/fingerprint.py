"""Content hashes of Python values, so that a checkpoint folder is only resumed by its own sweep.

Arrays are hashed by their bytes (blake2b), functions by their code, closure, defaults
and the module-level names they read, callable objects and dataclasses by their
fields; code of installed packages, the standard library and jaxopt_lab itself by
name. A value with no deterministic content (a lock, an open file) cannot be hashed:
the sweep then asks for an explicit ``run_key``. :mod:`jaxopt_lab.sweep.checkpoint`
combines these parts into a sweep's fingerprint.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import os
import sys
import sysconfig
import types
from collections.abc import Callable

import jax
import numpy as np

from jaxopt_lab.sweep.placement import _host


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
