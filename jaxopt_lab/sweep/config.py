"""The config of ``jaxopt-lab sweep CONFIG.toml``: TOML tables validated into a :class:`SweepConfig`.

A config has four tables (see ``examples/sweep_logreg.toml``)::

    [problem]   name = "logreg" | "mlp" | "pkg.module:function";  options = {...}
    [solver]    name = "LBFGS" (a jaxopt_lab solver) | "adam" (an optax or jaxopt_lab
                transform, trained for `steps` full-batch steps);  options = {...};  steps = 200
    [grid]      hyperparameter = [values] | {logspace = [lo, hi, num]} | {linspace = [lo, hi, num]}
    [sweep]     seeds = [0, 1];  devices = 1 | "all";  chunk_size = 16;  output = "sweep_out";
                metric = "val_loss";  checkpoint = true;  checkpoint_every = 50;  x64 = false

Grid keys are the problem's hyperparameters (e.g. ``l2``) and the solver's or
transform's numeric options (e.g. ``tol``, ``learning_rate``); they are traced,
so the whole grid is one compiled program. A problem factory (``pkg.module:function``)
takes keyword options and returns a :class:`jaxopt_lab.problems.SweepProblem`.
Relative ``output`` paths are taken from the current directory. Option values are
checked before anything runs (see :mod:`jaxopt_lab.sweep.options`); every error is
a :class:`ConfigError` (a ``ValueError``) naming the key and the allowed values.
``x64 = true`` applies to this sweep only: validation and
:func:`jaxopt_lab.sweep.cli.run_config` run inside a scoped ``jax.enable_x64``, and
the global JAX setting is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import tomllib
from typing import Any

from jaxopt_lab.sweep.options import (
    ConfigError,
    _all_options,
    _check_keys,
    _check_options,
    _fail,
    _grid_values,
    _numeric_options,
    _problem_factories,
    _resolve_problem,
    _resolve_solver,
    _solver_classes,
)

__all__ = ["ConfigError", "SweepConfig", "config_hash", "load_config", "validate_config"]

_TOP = {"problem": True, "solver": True, "grid": True, "sweep": False}
_PROBLEM_KEYS = ("name", "options")
_SOLVER_KEYS = ("name", "options", "steps")
_SWEEP_KEYS = ("seeds", "devices", "chunk_size", "output", "metric", "checkpoint", "checkpoint_every",
               "x64")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config, built by :func:`validate_config` or :func:`load_config`.

    Attributes:
      raw: the parsed TOML tables, as given (hashed by :func:`config_hash`).
      x64: ``sweep.x64``: run in float64, scoped to the sweep (never switched on globally).
      problem: the ``SweepProblem`` built from ``[problem]``.
      kind: ``"solver"`` (a jaxopt_lab solver class) or ``"transform"`` (a transform factory).
      target: the solver class or transform factory named by ``solver.name``.
      solver_name: ``solver.name``.
      solver_options: ``solver.options``.
      steps: training steps of a transform (``solver.steps``); ``None`` for a solver.
      grid: each swept hyperparameter and its list of values.
      seeds: ``sweep.seeds``.
      devices: the number of devices (``sweep.devices``, ``"all"`` resolved).
      chunk_size: ``sweep.chunk_size``; ``None`` runs all members at once.
      output: the output folder (``sweep.output``).
      checkpoint: ``sweep.checkpoint``.
      checkpoint_every: ``sweep.checkpoint_every`` (steps between mid-run saves) or ``None``.
      metric: the metric plotted (``sweep.metric``).
    """

    raw: dict
    x64: bool
    problem: Any
    kind: str
    target: Any
    solver_name: str
    solver_options: dict
    steps: int | None
    grid: dict
    seeds: list
    devices: int
    chunk_size: int | None
    output: str
    checkpoint: bool
    checkpoint_every: int | None
    metric: str

    def __getitem__(self, key: str) -> Any:
        """``cfg[key]``, kept for code written when the validated config was a dict.

        Args:
          key: a field name.

        Returns:
          The field's value.
        """
        if not isinstance(key, str) or key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)


def load_config(path: str) -> SweepConfig:
    """Read and validate a sweep config.

    Args:
      path: the TOML file.

    Returns:
      The :class:`SweepConfig`: the resolved problem, solver, grid, seeds and sweep options.

    Raises:
      ConfigError: naming the offending key and the allowed values.
    """
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path!r} is not valid TOML: {e}.") from None
    return validate_config(raw)


def validate_config(raw: dict) -> SweepConfig:
    """Validate a parsed config (see :func:`load_config`).

    Args:
      raw: the parsed TOML tables.

    Returns:
      The :class:`SweepConfig`.

    Raises:
      ConfigError: naming the offending key and the allowed values.
    """
    _check_keys(raw, "", list(_TOP))
    for k, required in _TOP.items():
        if required and k not in raw:
            _fail(k, "missing table", list(_TOP))
    prob, solv, grid_raw, sw = raw["problem"], raw["solver"], raw["grid"], raw.get("sweep", {})
    _check_keys(prob, "problem", _PROBLEM_KEYS)
    _check_keys(solv, "solver", _SOLVER_KEYS)
    _check_keys(grid_raw, "grid", list(grid_raw))
    _check_keys(sw, "sweep", _SWEEP_KEYS)
    x64 = sw.get("x64", False)
    if not isinstance(x64, bool):
        _fail("sweep.x64", f"got {x64!r}", ["true", "false"])
    # x64 is scoped to this config (a context manager), never switched on globally.
    with _x64_scope(x64):
        out = _validate_tables(prob, solv, grid_raw, sw)
    return SweepConfig(raw=raw, x64=x64, **out)


def _x64_scope(x64: bool):
    import jax

    return jax.enable_x64(True) if x64 else contextlib.nullcontext()


def _validate_tables(prob: dict, solv: dict, grid_raw: dict, sw: dict) -> dict:
    if "name" not in prob:
        _fail("problem.name", "missing", [*sorted(_problem_factories()), "'pkg.module:function'"])
    factory = _resolve_problem(prob["name"])
    p_opts = prob.get("options", {})
    _check_keys(p_opts, "problem.options", _all_options("transform", factory))
    problem = factory(**p_opts)
    if not all(hasattr(problem, a) for a in ("loss", "init_params", "data", "metrics", "hparams")):
        _fail("problem.name", f"{prob['name']!r} must return a jaxopt_lab.problems.SweepProblem")
    if "name" not in solv:
        _fail("solver.name", "missing", sorted(_solver_classes()))
    kind, target = _resolve_solver(solv["name"])
    s_opts = solv.get("options", {})
    allowed_opts = [o for o in _all_options(kind, target) if o not in ("opt", "key")]
    _check_keys(s_opts, "solver.options", allowed_opts)
    steps = solv.get("steps")
    if kind == "solver" and steps is not None:
        _fail("solver.steps", f"only for transforms; {solv['name']} stops by `options.maxiter`/`tol`")
    if kind == "transform":
        steps = 100 if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            _fail("solver.steps", f"must be an int >= 1, got {steps!r}")
    sweepable = sorted({*problem.hparams, *_numeric_options(kind, target)})
    if not grid_raw:
        _fail("grid", "needs at least one hyperparameter", sweepable)
    grid = {}
    for k, v in grid_raw.items():
        if k not in sweepable:
            _fail(f"grid.{k}", "not a sweepable hyperparameter of this problem and solver", sweepable)
        if k in s_opts:
            _fail(f"grid.{k}", "also fixed in solver.options; keep one of the two")
        grid[k] = _grid_values(k, v)
    _check_options(kind, target, s_opts, grid, problem.hparams)
    missing = [k for k, d in _numeric_options(kind, target).items()
               if d is inspect.Parameter.empty and k not in grid and k not in s_opts]
    if missing:
        _fail(f"grid.{missing[0]}", f"required by {solv['name']}; set it in [grid] or solver.options")
    seeds = sw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        _fail("sweep.seeds", f"must be a non-empty list of ints >= 0, got {seeds!r}")
    import jax

    ndev = len(jax.devices())
    devices = sw.get("devices", 1)
    if devices != "all" and (isinstance(devices, bool) or not isinstance(devices, int)
                             or not 1 <= devices <= ndev):
        _fail("sweep.devices", f"got {devices!r}", ["'all'", *range(1, ndev + 1)])
    devices = ndev if devices == "all" else devices
    chunk = sw.get("chunk_size")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1
                              or chunk % devices):
        _fail("sweep.chunk_size", f"must be a positive multiple of devices={devices}, got {chunk!r}")
    output = sw.get("output", "sweep_out")
    if not isinstance(output, str) or not output:
        _fail("sweep.output", f"must be a folder path, got {output!r}")
    checkpoint = sw.get("checkpoint", True)
    if not isinstance(checkpoint, bool):
        _fail("sweep.checkpoint", f"got {checkpoint!r}", ["true", "false"])
    every = sw.get("checkpoint_every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        _fail("sweep.checkpoint_every", f"must be an int >= 1 (steps between saves), got {every!r}")
    if every is not None and not checkpoint:
        _fail("sweep.checkpoint_every", "needs `sweep.checkpoint = true`")
    x0 = problem.init_params(jax.random.PRNGKey(0))
    names = sorted(jax.eval_shape(problem.metrics, x0, dict(problem.hparams), problem.eval_data))
    metric = sw.get("metric", names[0] if "val_loss" not in names else "val_loss")
    if metric not in names:
        _fail("sweep.metric", f"unknown metric {metric!r}", names)
    return {"problem": problem, "kind": kind, "target": target, "solver_name": solv["name"],
            "solver_options": s_opts, "steps": steps, "grid": grid, "seeds": seeds, "devices": devices,
            "chunk_size": chunk, "output": output, "checkpoint": checkpoint,
            "checkpoint_every": every, "metric": metric}


def config_hash(raw: dict) -> str:
    """SHA-256 of the config's canonical JSON form.

    Args:
      raw: the parsed TOML tables.

    Returns:
      A hex digest.
    """
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
