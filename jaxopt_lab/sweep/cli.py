"""``jaxopt-lab sweep CONFIG.toml``: a hyperparameter sweep described by a TOML file.

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
Relative ``output`` paths are taken from the current directory. Outputs:
``results.csv`` (and ``results.parquet`` when pyarrow is installed, the ``sweep``
extra), ``metadata.json`` (versions, config hash, devices), and PNG plots of the
metric against each grid key (a heat map when there are two). With
``checkpoint_every = N`` each member's run is saved every ``N`` steps (iterations
of a solver, training steps of a transform), so a killed sweep resumes mid-run
(:func:`jaxopt_lab.sweep.run_steps`); otherwise each finished chunk is saved.
Ctrl-C stops a sweep with exit code 130 and keeps its checkpoints: rerunning the
same command resumes. Option values are checked before anything runs (``tol >=
0``, ``0 < c1 < c2 < 1``, integer options such as ``maxiter`` and
``history_size``, learning rates ``> 0``); ``x64 = true`` applies to this sweep
only (the global JAX setting is left as it was).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import os
import platform
import sys
import time
import tomllib
from typing import Any

import numpy as np

_TOP = {"problem": True, "solver": True, "grid": True, "sweep": False}
_PROBLEM_KEYS = ("name", "options")
_SOLVER_KEYS = ("name", "options", "steps")
_SWEEP_KEYS = ("seeds", "devices", "chunk_size", "output", "metric", "checkpoint", "checkpoint_every",
               "x64")


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
    from jaxopt_lab.base import IterativeSolver

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


def load_config(path: str) -> dict:
    """Read and validate a sweep config.

    Args:
      path: the TOML file.

    Returns:
      A dict with the resolved problem factory, solver, grid, seeds and sweep options.

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


def validate_config(raw: dict) -> dict:
    """Validate a parsed config (see :func:`load_config`).

    Args:
      raw: the parsed TOML tables.

    Returns:
      The resolved config dict.
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
    return {"raw": raw, "x64": x64, **out}


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


def _member_parts(cfg: dict):
    """``(setup, finish)``: ``setup(h) -> (solver, x0, hp)``, ``finish(h, res, data, eval_data)``."""
    import jax
    import jax.numpy as jnp

    from jaxopt_lab.solvers import OptaxSolver

    problem, kind, target, s_opts = cfg["problem"], cfg["kind"], cfg["target"], cfg["solver_options"]
    prob_keys = [k for k in cfg["grid"] if k in problem.hparams]
    opt_keys = [k for k in cfg["grid"] if k not in problem.hparams]
    steps = cfg["steps"]

    def setup(h):
        hp = {k: h[k] if k in prob_keys else jnp.asarray(v, jnp.result_type(float))
              for k, v in problem.hparams.items()}
        x0 = problem.init_params(jax.random.PRNGKey(h["seed"]))
        opts = {**s_opts, **{k: h[k] for k in opt_keys}}
        if kind == "solver":
            solver = target(problem.loss, **opts)
        else:
            solver = OptaxSolver(target(**opts), problem.loss, maxiter=steps, tol=0.0)
        return solver, x0, hp

    def finish(h, res, data, eval_data):
        hp = setup(h)[2]
        out = dict(problem.metrics(res.params, hp, eval_data))
        out["objective"] = problem.loss(res.params, hp, data)
        return {"metrics": out, "iter_num": res.state.iter_num, "status": res.state.status}

    return setup, finish


def _member_fun(cfg: dict):
    setup, finish = _member_parts(cfg)

    def member(h, data, eval_data):
        solver, x0, hp = setup(h)
        return finish(h, solver.run(x0, hp, data), data, eval_data)

    return member


def _run_in_segments(cfg: dict, hp, mesh, ckpt, on_segment):
    """Members run by ``init_state``/``update`` in saved segments (``sweep.checkpoint_every``)."""
    from jaxopt_lab import sweep
    from jaxopt_lab.base import OptStep, Status

    setup, finish = _member_parts(cfg)
    problem = cfg["problem"]

    def init(h, data, eval_data):
        solver, x0, hparams = setup(h)
        return OptStep(x0, solver.init_state(x0, hparams, data))

    def step(c, h, data, eval_data):
        solver, _, hparams = setup(h)
        return solver.update(c.params, c.state, hparams, data)

    def done(c):
        return c.state.status != Status.RUNNING

    if cfg["kind"] == "solver":
        maxiter = cfg["solver_options"].get("maxiter")
        if maxiter is None:
            maxiter = {f.name: f.default for f in dataclasses.fields(cfg["target"])}["maxiter"]
    else:
        maxiter = cfg["steps"]
    res = sweep.run_steps(init, step, hp, problem.data, problem.eval_data, num_steps=int(maxiter), done=done,
                          checkpoint_every=cfg["checkpoint_every"], checkpoint_dir=ckpt, mesh=mesh,
                          chunk_size=cfg["chunk_size"], on_segment=on_segment, run_key=_run_key(cfg))

    def metrics(m, data, eval_data):
        return finish(m["h"], m["res"], data, eval_data)

    return sweep.run(metrics, {"h": hp, "res": res}, problem.data, problem.eval_data, mesh=mesh,
                     chunk_size=cfg["chunk_size"])


def config_hash(raw: dict) -> str:
    """SHA-256 of the config's canonical JSON form.

    Args:
      raw: the parsed TOML tables.

    Returns:
      A hex digest.
    """
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def _versions() -> dict:
    import jax
    import jaxlib
    import optax

    import jaxopt_lab

    return {"jaxopt_lab": jaxopt_lab.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _plots(out_dir: str, table: dict, keys: list[str], metric: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(table[metric], float)
    files = []
    for k in keys:
        x = np.asarray(table[k], float)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(x, y, s=12, alpha=0.5, label="members")
        ux = np.unique(x)
        ax.plot(ux, [np.nanmean(y[x == u]) for u in ux], "o-", color="C1", label="mean")
        if ux.min() > 0 and ux.max() / ux.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(k)
        ax.set_ylabel(metric)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric}_vs_{k}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    if len(keys) == 2:
        a, b = (np.asarray(table[k], float) for k in keys)
        ua, ub = np.unique(a), np.unique(b)
        heat = np.array([[np.nanmean(y[(a == i) & (b == j)]) for j in ub] for i in ua])
        fig, ax = plt.subplots(figsize=(5, 4))
        im = ax.imshow(heat, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(ub)), [f"{v:.3g}" for v in ub], rotation=45)
        ax.set_yticks(range(len(ua)), [f"{v:.3g}" for v in ua])
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        fig.colorbar(im, ax=ax, label=f"mean {metric}")
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric}_heatmap.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def checkpoint_dir(cfg: dict) -> str | None:
    """The folder where a config's sweep saves its checkpoints.

    Args:
      cfg: from :func:`load_config`.

    Returns:
      ``OUTPUT/checkpoints/<config hash prefix>``, or ``None`` when ``sweep.checkpoint`` is false.
    """
    if not cfg["checkpoint"]:
        return None
    return os.path.join(cfg["output"], "checkpoints", config_hash(cfg["raw"])[:16])


def run_config(cfg: dict, progress: bool = True) -> dict:
    """Run a validated config and write its outputs.

    Runs in float64 when the config says ``sweep.x64 = true`` (scoped to this call).

    Args:
      cfg: from :func:`load_config`.
      progress: show a tqdm progress bar over chunks.

    Returns:
      The metadata dict written to ``metadata.json``.
    """
    with _x64_scope(cfg.get("x64", False)):
        return _run_config(cfg, progress)


def _run_key(cfg: dict) -> str:
    # The member functions are closures over the config; the config hash and the
    # library version name what they compute (their data are hashed by the sweep).
    import jaxopt_lab

    return f"jaxopt-lab sweep {config_hash(cfg['raw'])} {jaxopt_lab.__version__}"


def _run_config(cfg: dict, progress: bool) -> dict:
    import jax
    from tqdm import tqdm

    from jaxopt_lab import sweep
    from jaxopt_lab.base import status_name

    out_dir = cfg["output"]
    os.makedirs(out_dir, exist_ok=True)
    h = config_hash(cfg["raw"])
    keys = list(cfg["grid"])
    hp = sweep.grid(**cfg["grid"], seed=cfg["seeds"])
    hp = {k: (v.astype(jax.numpy.result_type(float)) if k != "seed" else v) for k, v in hp.items()}
    n = sweep.num_members(hp)
    mesh = sweep.mesh_for(cfg["devices"]) if cfg["devices"] > 1 else None
    ckpt = checkpoint_dir(cfg)
    bar = tqdm(total=n, desc="sweep", unit="member", disable=not progress)
    chunk = cfg["chunk_size"] or n

    def on_chunk(i, num, loaded):
        bar.update(min(chunk, n - i * chunk))
        bar.set_postfix(chunk=f"{i + 1}/{num}", resumed=loaded)

    def on_segment(i, num, steps, resumed):
        bar.set_postfix(chunk=f"{i + 1}/{num}", step=steps, resumed=resumed)

    problem = cfg["problem"]
    t0 = time.perf_counter()
    try:
        if cfg["checkpoint_every"] is not None:
            res = _run_in_segments(cfg, hp, mesh, ckpt, on_segment)
            bar.update(n)
        else:
            res = sweep.run(_member_fun(cfg), hp, problem.data, problem.eval_data, mesh=mesh,
                            chunk_size=cfg["chunk_size"], checkpoint_dir=ckpt, on_chunk=on_chunk,
                            run_key=_run_key(cfg))
        jax.block_until_ready(res)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    table = {"member": np.arange(n), "seed": np.asarray(hp["seed"])}
    table.update({k: np.asarray(hp[k]) for k in keys})
    table["status"] = np.array([status_name(s) for s in np.asarray(res["status"])])
    table["iter_num"] = np.asarray(res["iter_num"])
    table.update({k: np.asarray(v) for k, v in sorted(res["metrics"].items())})
    cols = list(table)
    with open(os.path.join(out_dir, "results.csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for i in range(n):
            f.write(",".join(_fmt(table[c][i]) for c in cols) + "\n")
    tables = ["results.csv"]
    if _write_parquet(os.path.join(out_dir, "results.parquet"), table):
        tables.append("results.parquet")
    plots = _plots(out_dir, table, keys, cfg["metric"])
    statuses, counts = np.unique(table["status"], return_counts=True)
    meta = {
        "config": cfg["raw"], "config_hash": h, "versions": _versions(),
        "devices": [str(d) for d in (mesh.devices.flat if mesh is not None else jax.devices()[:1])],
        "platform": jax.default_backend(), "num_members": n, "chunk_size": cfg["chunk_size"],
        "wall_seconds": wall, "status_counts": dict(zip(statuses.tolist(), counts.tolist(), strict=True)),
        "metric": cfg["metric"], "plots": [os.path.basename(p) for p in plots], "tables": tables,
        "checkpoint_every": cfg["checkpoint_every"],
        "command": " ".join(["jaxopt-lab", *sys.argv[1:]]) if sys.argv else "",
    }
    with open(os.path.join(out_dir, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=2, default=str)
    return meta


def _write_parquet(path: str, table: dict) -> bool:
    """Write ``table`` (column name -> 1-D array) as Parquet; False when pyarrow is missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    tmp = path + ".tmp"
    pq.write_table(pa.table({k: np.asarray(v) for k, v in table.items()}), tmp)
    os.replace(tmp, path)
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, np.floating):
        return str(v)  # shortest repr that round-trips in the array's own precision
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, np.bool_ | bool):
        return str(bool(v))
    return str(v)


def main(config_path: str, progress: bool = True) -> int:
    """Entry point of ``jaxopt-lab sweep CONFIG.toml``.

    Args:
      config_path: the TOML config.
      progress: show a progress bar.

    Returns:
      0 on success, 2 for an invalid config, 130 when interrupted (Ctrl-C); the
      checkpoints saved so far are kept, and rerunning the same command resumes.
    """
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        print(f"jaxopt-lab sweep: error: {e}", file=sys.stderr)
        return 2
    try:
        meta = run_config(cfg, progress=progress)
    except KeyboardInterrupt:
        ckpt = checkpoint_dir(cfg)
        if ckpt is None:
            hint = "checkpoints are off (sweep.checkpoint = false), so rerunning starts over"
        else:
            hint = (f"rerun the same command to resume from the last checkpoint "
                    f"(in {os.path.abspath(ckpt)})")
        print(f"jaxopt-lab sweep: interrupted; {hint}.", file=sys.stderr)
        return 130
    print(f"{meta['num_members']} members in {meta['wall_seconds']:.1f} s, status {meta['status_counts']}; "
          f"results in {os.path.abspath(cfg['output'])}")
    return 0
