"""``jaxopt-lab sweep CONFIG.toml``: run a hyperparameter sweep described by a TOML file.

The config and its validation are in :mod:`jaxopt_lab.sweep.config`. Outputs:
``results.csv`` (and ``results.parquet`` when pyarrow is installed, the ``sweep``
extra), ``metadata.json`` (versions, config hash, devices), and PNG plots of the
metric against each grid key (a heat map when there are two). With
``checkpoint_every = N`` each member's run is saved every ``N`` steps (iterations
of a solver, training steps of a transform), so a killed sweep resumes mid-run
(:func:`jaxopt_lab.sweep.run_steps`); otherwise each finished chunk is saved.
Ctrl-C stops a sweep with exit code 130 and keeps its checkpoints: rerunning the
same command resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np

from jaxopt_lab.sweep.config import (
    ConfigError,
    SweepConfig,
    _x64_scope,
    config_hash,
    load_config,
    validate_config,
)
from jaxopt_lab.sweep.outputs import _plots, _versions, _write_csv, _write_parquet

__all__ = ["ConfigError", "SweepConfig", "checkpoint_dir", "config_hash", "load_config", "main",
           "run_config", "validate_config"]


def _member_parts(cfg: SweepConfig):
    """``(setup, finish)``: ``setup(h) -> (solver, x0, hp)``, ``finish(h, res, data, eval_data)``."""
    import jax
    import jax.numpy as jnp

    from jaxopt_lab.solvers import OptaxSolver

    problem, kind, target, s_opts = cfg.problem, cfg.kind, cfg.target, cfg.solver_options
    prob_keys = [k for k in cfg.grid if k in problem.hparams]
    opt_keys = [k for k in cfg.grid if k not in problem.hparams]
    steps = cfg.steps

    def setup(h):
        hp = {k: h[k] if k in prob_keys else jnp.asarray(v, jnp.result_type(float))
              for k, v in problem.hparams.items()}
        x0 = problem.init_params(jax.random.PRNGKey(h["seed"]))
        opts = {**s_opts, **{k: h[k] for k in opt_keys}}
        if kind == "solver":
            solver = target(problem.loss, **opts)
        else:
            solver = OptaxSolver(problem.loss, target(**opts), maxiter=steps, tol=0.0)
        return solver, x0, hp

    def finish(h, res, data, eval_data):
        hp = setup(h)[2]
        out = dict(problem.metrics(res.params, hp, eval_data))
        out["objective"] = problem.loss(res.params, hp, data)
        return {"metrics": out, "iter_num": res.state.iter_num, "status": res.state.status}

    return setup, finish


def _member_fun(cfg: SweepConfig):
    setup, finish = _member_parts(cfg)

    def member(h, data, eval_data):
        solver, x0, hp = setup(h)
        return finish(h, solver.run(x0, hp, data), data, eval_data)

    return member


def _run_in_segments(cfg: SweepConfig, hp, mesh, ckpt, on_segment):
    """Members run by ``init_state``/``update`` in saved segments (``sweep.checkpoint_every``)."""
    from jaxopt_lab import sweep
    from jaxopt_lab.core.types import OptStep, Status

    setup, finish = _member_parts(cfg)
    problem = cfg.problem

    def init(h, data, eval_data):
        solver, x0, hparams = setup(h)
        return OptStep(x0, solver.init_state(x0, hparams, data))

    def step(c, h, data, eval_data):
        solver, _, hparams = setup(h)
        return solver.update(c.params, c.state, hparams, data)

    def done(c):
        return c.state.status != Status.RUNNING

    if cfg.kind == "solver":
        maxiter = cfg.solver_options.get("maxiter")
        if maxiter is None:
            maxiter = {f.name: f.default for f in dataclasses.fields(cfg.target)}["maxiter"]
    else:
        maxiter = cfg.steps
    res = sweep.run_steps(init, step, hp, problem.data, problem.eval_data, num_steps=int(maxiter), done=done,
                          checkpoint_every=cfg.checkpoint_every, checkpoint_dir=ckpt, mesh=mesh,
                          chunk_size=cfg.chunk_size, on_segment=on_segment, run_key=_run_key(cfg))

    def metrics(m, data, eval_data):
        return finish(m["h"], m["res"], data, eval_data)

    return sweep.run(metrics, {"h": hp, "res": res}, problem.data, problem.eval_data, mesh=mesh,
                     chunk_size=cfg.chunk_size)


def checkpoint_dir(cfg: SweepConfig) -> str | None:
    """The folder where a config's sweep saves its checkpoints.

    Args:
      cfg: from :func:`load_config`.

    Returns:
      ``OUTPUT/checkpoints/<config hash prefix>``, or ``None`` when ``sweep.checkpoint`` is false.
    """
    if not cfg.checkpoint:
        return None
    return os.path.join(cfg.output, "checkpoints", config_hash(cfg.raw)[:16])


def run_config(cfg: SweepConfig, progress: bool = True) -> dict:
    """Run a validated config and write its outputs.

    Runs in float64 when the config says ``sweep.x64 = true`` (scoped to this call).

    Args:
      cfg: from :func:`load_config`.
      progress: show a tqdm progress bar over chunks.

    Returns:
      The metadata dict written to ``metadata.json``.
    """
    with _x64_scope(cfg.x64):
        return _run_config(cfg, progress)


def _run_key(cfg: SweepConfig) -> str:
    # The member functions are closures over the config; the config hash and the
    # library version name what they compute (their data are hashed by the sweep).
    import jaxopt_lab

    return f"jaxopt-lab sweep {config_hash(cfg.raw)} {jaxopt_lab.__version__}"


def _run_config(cfg: SweepConfig, progress: bool) -> dict:
    import jax
    from tqdm import tqdm

    from jaxopt_lab import sweep
    from jaxopt_lab.core.types import status_name

    out_dir = cfg.output
    os.makedirs(out_dir, exist_ok=True)
    h = config_hash(cfg.raw)
    keys = list(cfg.grid)
    hp = sweep.grid(**cfg.grid, seed=cfg.seeds)
    hp = {k: (v.astype(jax.numpy.result_type(float)) if k != "seed" else v) for k, v in hp.items()}
    n = sweep.num_members(hp)
    mesh = sweep.mesh_for(cfg.devices) if cfg.devices > 1 else None
    ckpt = checkpoint_dir(cfg)
    bar = tqdm(total=n, desc="sweep", unit="member", disable=not progress)
    chunk = cfg.chunk_size or n

    def on_chunk(i, num, loaded):
        bar.update(min(chunk, n - i * chunk))
        bar.set_postfix(chunk=f"{i + 1}/{num}", resumed=loaded)

    def on_segment(i, num, steps, resumed):
        bar.set_postfix(chunk=f"{i + 1}/{num}", step=steps, resumed=resumed)

    problem = cfg.problem
    t0 = time.perf_counter()
    try:
        if cfg.checkpoint_every is not None:
            res = _run_in_segments(cfg, hp, mesh, ckpt, on_segment)
            bar.update(n)
        else:
            res = sweep.run(_member_fun(cfg), hp, problem.data, problem.eval_data, mesh=mesh,
                            chunk_size=cfg.chunk_size, checkpoint_dir=ckpt, on_chunk=on_chunk,
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
    _write_csv(os.path.join(out_dir, "results.csv"), table, n)
    tables = ["results.csv"]
    if _write_parquet(os.path.join(out_dir, "results.parquet"), table):
        tables.append("results.parquet")
    plots = _plots(out_dir, table, keys, cfg.metric)
    statuses, counts = np.unique(table["status"], return_counts=True)
    meta = {
        "config": cfg.raw, "config_hash": h, "versions": _versions(),
        "devices": [str(d) for d in (mesh.devices.flat if mesh is not None else jax.devices()[:1])],
        "platform": jax.default_backend(), "num_members": n, "chunk_size": cfg.chunk_size,
        "wall_seconds": wall, "status_counts": dict(zip(statuses.tolist(), counts.tolist(), strict=True)),
        "metric": cfg.metric, "plots": [os.path.basename(p) for p in plots], "tables": tables,
        "checkpoint_every": cfg.checkpoint_every,
        "command": " ".join(["jaxopt-lab", *sys.argv[1:]]) if sys.argv else "",
    }
    with open(os.path.join(out_dir, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=2, default=str)
    return meta


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
          f"results in {os.path.abspath(cfg.output)}")
    return 0
