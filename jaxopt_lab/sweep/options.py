"""What a sweep config names: the problem, the solver or transform, and their options.

Names are resolved (a built-in problem or ``pkg.module:function``; a jaxopt_lab
solver, or an optax or jaxopt_lab transform factory) and option values checked before
anything runs (``tol >= 0``, ``0 < c1 < c2 < 1``, integer options such as ``maxiter``
and ``history_size``, learning rates ``> 0``), and ``[grid]`` entries expanded to lists of
numbers (a list, or a ``logspace``/``linspace`` table). Every error is a :class:`ConfigError`
naming the config key and, where there is a list, the allowed values.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math

import numpy as np

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """An invalid sweep config; the message names the key and the allowed values.

    A ``ValueError`` subclass, so callers catching ``ValueError`` also catch it.

    Args:
      *args: the error message, as for ``ValueError``.
    """


def _fail(key: str, msg: str, allowed=None):
    extra = f" Allowed: {', '.join(map(str, allowed))}." if allowed is not None else ""
    raise ConfigError(f"config key `{key}`: {msg}.{extra}")


def _check_keys(table: dict, where: str, allowed) -> None:
    if not isinstance(table, dict):
        _fail(where, f"must be a table, got {type(table).__name__}")
    for k in table:
        if k not in allowed:
            _fail(f"{where}.{k}" if where else k, "unknown key", allowed)


def _problem_factories() -> dict:
    from jaxopt_lab import problems

    return {"logreg": problems.logreg, "mlp": problems.mlp}


def _resolve_problem(name: str):
    if not isinstance(name, str):
        _fail("problem.name", f"must be a string, got {name!r}")
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            _fail("problem.name", f"cannot import {name!r} ({e})")
        if not callable(factory):
            _fail("problem.name", f"{name!r} is not callable")
        return factory
    factories = _problem_factories()
    if name not in factories:
        _fail("problem.name", f"unknown problem {name!r}", [*sorted(factories), "'pkg.module:function'"])
    return factories[name]


def _solver_classes() -> dict:
    import jaxopt_lab
    from jaxopt_lab.core.solver import IterativeSolver

    out = {}
    for name in dir(jaxopt_lab):
        obj = getattr(jaxopt_lab, name)
        if (isinstance(obj, type) and issubclass(obj, IterativeSolver) and dataclasses.is_dataclass(obj)
                and "fun" in {f.name for f in dataclasses.fields(obj)}
                and "opt" not in {f.name for f in dataclasses.fields(obj)}):
            out[name] = obj
    return out


def _resolve_solver(name: str):
    """``("solver", cls)`` or ``("transform", factory)``."""
    import optax

    import jaxopt_lab

    if not isinstance(name, str):
        _fail("solver.name", f"must be a string, got {name!r}")
    solvers = _solver_classes()
    if name in solvers:
        return "solver", solvers[name]
    for mod in (jaxopt_lab, optax):
        obj = getattr(mod, name, None)
        if callable(obj) and not isinstance(obj, type) and not name.startswith("_"):
            return "transform", obj
    _fail("solver.name", f"unknown solver or transform {name!r}",
          [*sorted(solvers), "or any optax / jaxopt_lab transform factory (adam, sgd, ...)"])


def _numeric_options(kind: str, target) -> dict:
    """Options that may be swept (traced numbers), with their defaults."""
    out = {}
    if kind == "solver":
        for f in dataclasses.fields(target):
            d = f.default
            if isinstance(d, float) and not isinstance(d, bool):
                probe = object.__new__(target)
                if not target._static_option(probe, f.name, d):
                    out[f.name] = d
        return out
    for p in inspect.signature(target).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty or (isinstance(p.default, float) and not isinstance(p.default, bool)):
            out[p.name] = p.default
    return out


def _all_options(kind: str, target) -> list[str]:
    if kind == "solver":
        return [f.name for f in dataclasses.fields(target) if f.name not in ("fun", "_")]
    return [p.name for p in inspect.signature(target).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _option_defaults(kind: str, target) -> dict:
    """Every option's default (``inspect.Parameter.empty`` when it has none)."""
    if kind == "solver":
        return {f.name: f.default for f in dataclasses.fields(target)}
    return {p.name: p.default for p in inspect.signature(target).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


_AT_LEAST_ONE = ("maxiter", "history_size", "maxls")
_LEARNING_RATES = ("learning_rate", "lr")


def _is_tol(name: str) -> bool:
    return name in ("tol", "atol", "rtol") or name.endswith("_tol")


def _check_option(key: str, name: str, v, default) -> None:
    """Validate one value of a solver or transform option (``key`` names it in the config)."""
    if isinstance(default, bool):
        if not isinstance(v, bool):
            _fail(key, f"must be true or false, got {v!r}")
        return
    if isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int):
            _fail(key, f"must be an integer (`{name}` is a static integer option), got {v!r}")
        low = 1 if name in _AT_LEAST_ONE else 0
        if v < low:
            _fail(key, f"must be an integer >= {low}, got {v!r}")
        return
    if not isinstance(v, int | float) or isinstance(v, bool):
        return  # strings, tables: left to the solver or transform
    if math.isnan(v):
        _fail(key, "must be a number, got NaN")
    if name in _AT_LEAST_ONE and not (float(v).is_integer() and v >= 1):
        _fail(key, f"must be an integer >= 1, got {v!r}")
    if _is_tol(name) and not (0 <= v < math.inf):
        _fail(key, f"must be a finite number >= 0, got {v!r}")
    if name in _LEARNING_RATES and not (0 < v < math.inf):
        _fail(key, f"must be a finite learning rate > 0, got {v!r}")
    if name == "stepsize" and v < 0:
        _fail(key, f"must be >= 0 (0 selects the line search), got {v!r}")
    if name in ("c1", "c2") and not 0 < v < 1:
        _fail(key, f"must satisfy 0 < c1 < c2 < 1, got {name} = {v!r}")


def _check_options(kind: str, target, s_opts: dict, grid: dict, prob_keys) -> None:
    """Values of ``solver.options`` and of the swept solver options, with errors naming the key."""
    defaults = _option_defaults(kind, target)
    for name, v in s_opts.items():
        _check_option(f"solver.options.{name}", name, v, defaults.get(name))
    for name, values in grid.items():
        if name in prob_keys and name not in defaults:
            for v in values:
                if math.isnan(v):
                    _fail(f"grid.{name}", "values must be numbers, got NaN")
            continue
        for v in values:
            _check_option(f"grid.{name}", name, v, defaults.get(name))
    if "c1" in defaults and "c2" in defaults:
        def values(name):
            if name in grid:
                return f"grid.{name}", grid[name]
            if name in s_opts:
                return f"solver.options.{name}", [s_opts[name]]
            return None, [defaults[name]]

        (k1, c1), (k2, c2) = values("c1"), values("c2")
        if max(c1) >= min(c2):
            _fail(k2 or k1 or "solver.options.c2",
                  f"the line search needs 0 < c1 < c2 < 1, got c1 = {max(c1)!r} and c2 = {min(c2)!r}")


def _grid_values(key: str, spec) -> list[float]:
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in ("logspace", "linspace"):
            _fail(f"grid.{key}", f"a table must be {{logspace = [lo, hi, num]}} or {{linspace = ...}}, "
                  f"got {spec!r}")
        kind, v = next(iter(spec.items()))
        if (not isinstance(v, list) or len(v) != 3 or not isinstance(v[2], int) or v[2] < 1
                or not all(isinstance(x, int | float) for x in v[:2])):
            _fail(f"grid.{key}.{kind}", f"must be [lo, hi, num] with an int num >= 1, got {v!r}")
        if kind == "logspace":
            if v[0] <= 0 or v[1] <= 0:
                _fail(f"grid.{key}.logspace", f"lo and hi must be > 0, got {v!r}")
            return np.geomspace(v[0], v[1], v[2]).tolist()
        return np.linspace(v[0], v[1], v[2]).tolist()
    if (not isinstance(spec, list) or not spec
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in spec)):
        _fail(f"grid.{key}", f"must be a non-empty list of numbers or a logspace/linspace table, "
              f"got {spec!r}")
    return [float(x) for x in spec]
