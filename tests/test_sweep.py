"""Sweeps: grid/random, sweep == Python loop == sharded run, one compile, resume, hypergradients."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jo
from jaxopt_lab import sweep
from tests import problems
from tests.sweep_config import with_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B = problems.ridge_data(n=30, d=4, seed=1)


def ridge_fun(x, lam, A, b):
    r = A @ x - b
    return 0.5 * jnp.sum(r**2) + 0.5 * lam * jnp.sum(x**2)


def gd_member(h, A, b):
    # Fixed step 1/L: members with small lam need more iterations (lanes differ).
    return jo.GradientDescent(ridge_fun, stepsize=h["step"], tol=1e-9, maxiter=400).run(
        jnp.zeros(4), h["lam"], A, b)


def lbfgs_member(h, A, b):
    return jo.LBFGS(ridge_fun, tol=1e-11, maxiter=60).run(jnp.zeros(4), h["lam"], A, b)


def _step():
    return 1.0 / (np.linalg.eigvalsh(np.asarray(A.T @ A)).max() + 10.0)


def test_grid_order_and_validation():
    g = sweep.grid(a=[1.0, 2.0], seed=[0, 1, 2])
    np.testing.assert_array_equal(g["a"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(g["seed"], [0, 1, 2, 0, 1, 2])
    assert jnp.issubdtype(g["seed"].dtype, jnp.integer)
    with pytest.raises(ValueError, match="grid axis `a`"):
        sweep.grid(a=[[1.0]])
    with pytest.raises(TypeError, match="grid axis `a`"):
        sweep.grid(a=["x"])
    with pytest.raises(ValueError, match="leaves disagree"):
        sweep.num_members({"a": jnp.ones(3), "b": jnp.ones(4)})


def test_random_distributions():
    key = jax.random.PRNGKey(0)
    r = sweep.random(key, 2000, lr=("loguniform", 1e-4, 1e-1), s=("randint", 0, 5),
                     c=("choice", [0.5, 2.0]), u=("uniform", -1.0, 1.0))
    assert r["lr"].shape == (2000,)
    assert float(r["lr"].min()) >= 1e-4 and float(r["lr"].max()) <= 1e-1
    # log10(lr) is uniform on [-4, -1]: its mean is -2.5 with std 0.87/sqrt(2000) ~ 0.02.
    assert abs(float(jnp.mean(jnp.log10(r["lr"]))) + 2.5) < 0.1
    assert set(np.unique(r["s"]).tolist()) == {0, 1, 2, 3, 4}
    assert set(np.unique(r["c"]).tolist()) == {0.5, 2.0}
    assert abs(float(jnp.mean(r["u"]))) < 0.1
    np.testing.assert_array_equal(sweep.random(key, 2000, lr=("loguniform", 1e-4, 1e-1))["lr"].shape, (2000,))
    with pytest.raises(ValueError, match="distribution `lr`.*kind must be one of"):
        sweep.random(key, 3, lr=("lognormal", 0.0, 1.0))
    with pytest.raises(ValueError, match="0 < lo < hi"):
        sweep.random(key, 3, lr=("loguniform", 0.0, 1.0))


def test_sweep_equals_loop_and_closed_form():
    hp = sweep.grid(lam=np.logspace(-2, 1, 7), step=[_step()])
    res = sweep.run(gd_member, hp, A, B)
    chunked = sweep.run(gd_member, hp, A, B, chunk_size=3)  # 3 chunks, last one padded
    assert res.params.shape == (7, 4)
    status = sweep.member_status(res)
    np.testing.assert_array_equal(status, jo.Status.CONVERGED)
    iters = np.asarray(res.state.iter_num)
    assert iters[0] > iters[-1]  # small lam: worse conditioning, more iterations
    for i in range(7):
        one = gd_member({"lam": hp["lam"][i], "step": hp["step"][i]}, A, B)
        np.testing.assert_allclose(res.params[i], one.params, rtol=0, atol=1e-13)
        assert int(res.state.iter_num[i]) == int(one.state.iter_num)
        np.testing.assert_allclose(res.params[i], problems.ridge_solution(hp["lam"][i], A, B), atol=1e-7)
    np.testing.assert_allclose(chunked.params, res.params, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(chunked.state.iter_num, res.state.iter_num)


def test_one_compilation_for_two_grids():
    traces = []

    def member(h, A, b):
        traces.append(1)
        return gd_member(h, A, b)

    r1 = sweep.run(member, sweep.grid(lam=[0.1, 1.0, 3.0, 10.0], step=[_step()]), A, B, chunk_size=2)
    first = len(traces)  # a solver-run member is traced once per bucket program of batch_run
    r2 = sweep.run(member, sweep.grid(lam=[0.2, 0.5, 2.0, 5.0], step=[_step()]), A, B, chunk_size=2)
    assert len(traces) == first
    assert not np.allclose(r1.params, r2.params)
    np.testing.assert_allclose(r2.params[1], problems.ridge_solution(0.5, A, B), atol=1e-7)


def test_bad_arguments():
    hp = sweep.grid(lam=[0.1, 1.0])
    with pytest.raises(ValueError, match="chunk_size"):
        sweep.run(gd_member, hp, A, B, chunk_size=0)
    with pytest.raises(TypeError, match="mesh"):
        sweep.run(gd_member, hp, A, B, mesh="cpu")
    with pytest.raises(ValueError, match="data_specs"):
        sweep.run(gd_member, hp, A, B, data_specs=(None, None))
    with pytest.raises(ValueError, match="scalar"):
        sweep.run(gd_member, {"lam": 1.0}, A, B)


def test_hypergradient_through_sweep():
    # Aggregate metric: sum over members of the validation loss of x*(lam_i).
    Av, bv = problems.ridge_data(n=20, d=4, seed=2)
    val = lambda x: 0.5 * jnp.sum((Av @ x - bv) ** 2)

    def metric(lams):
        hp = {"lam": lams, "step": jnp.full(lams.shape, _step())}
        res = sweep.run(gd_member, hp, A, B, chunk_size=2)
        return jnp.sum(jax.vmap(val)(res.params))

    lams = jnp.array([0.3, 1.0, 4.0])
    g = jax.grad(metric)(lams)
    exact = lambda l: sum(val(problems.ridge_solution(li, A, B)) for li in l)
    eps = 1e-5
    fd = np.array([(exact(lams.at[i].add(eps)) - exact(lams.at[i].add(-eps))) / (2 * eps) for i in range(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    # Finite differences of the sweep itself agree too.
    fd_sweep = (metric(lams.at[1].add(1e-4)) - metric(lams.at[1].add(-1e-4))) / 2e-4
    np.testing.assert_allclose(g[1], fd_sweep, rtol=1e-5)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        jax.grad(lambda l: jnp.sum(sweep.run(lbfgs_member, {"lam": l}, A, B, checkpoint_dir="x").params)
                 )(lams)


_SHARDED = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from jax.sharding import Mesh, PartitionSpec as P
from jaxopt_lab import sweep
from tests.test_sweep import A, B, gd_member, _step
assert len(jax.devices()) == 8
hp = sweep.grid(lam=np.logspace(-2, 1, 12), step=[_step()])
single = sweep.run(gd_member, hp, A, B)
# on_chunk keeps the plain vmapped chunk program (a solver-run member otherwise runs batch_run's).
single2 = sweep.run(gd_member, hp, A, B, chunk_size=2, on_chunk=lambda *a: None)
mesh = sweep.mesh_for(8)
out = {}
def seen(i, n, loaded):
    out.setdefault("chunks", []).append(i)
sharded = sweep.run(gd_member, hp, A, B, mesh=mesh, chunk_size=16, on_chunk=seen)
mesh2 = Mesh(np.array(jax.devices()).reshape(4, 2), ("members", "data"))
gspmd = sweep.run(gd_member, hp, A, B, mesh=mesh2, data_specs=(P("data"), P("data")))
try:
    sweep.run(gd_member, hp, A, B, mesh=mesh, chunk_size=4)
    print("NO_ERROR")
except ValueError as e:
    print("ERR", e)
d = lambda r, s: float(np.max(np.abs(np.asarray(r.params) - np.asarray(s.params))))
print("DIFF", d(sharded, single), d(gspmd, single), d(single2, single))
print("EXACT_BATCH2", np.array_equal(np.asarray(sharded.params), np.asarray(single2.params)))
from tests.test_sweep_steps import gd_init, gd_step, gd_done
kw = dict(num_steps=400, done=gd_done, checkpoint_every=100)
rs1 = sweep.run_steps(gd_init, gd_step, hp, A, B, **kw)
rs8 = sweep.run_steps(gd_init, gd_step, hp, A, B, mesh=mesh, chunk_size=16, **kw)
print("STEPS", d(rs8, rs1), d(rs1, single), np.array_equal(rs8.state.iter_num, single.state.iter_num))
print("ITERS", np.array_equal(sharded.state.iter_num, single.state.iter_num),
      np.array_equal(gspmd.state.iter_num, single.state.iter_num), out["chunks"])
"""


def _run_script(code, *extra, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_sharded_equals_single_device():
    p = _run_script(_SHARDED)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = {ln.split()[0]: ln.split(maxsplit=1)[1] for ln in p.stdout.splitlines() if ln}
    assert "multiple of the 8 devices" in lines["ERR"]
    diffs = [float(x) for x in lines["DIFF"].split()]
    assert max(diffs) <= 1e-13, diffs
    # Per device the sharded run is the single-device program at batch 2: bitwise equal.
    assert lines["EXACT_BATCH2"] == "True"
    assert lines["ITERS"] == "True True [0]"
    # run_steps (segments of 100 steps) on 8 devices equals the single-device run and solver.run.
    steps = lines["STEPS"].split()
    assert float(steps[0]) <= 1e-13 and float(steps[1]) <= 1e-13 and steps[2] == "True", steps


_RESUME = """
import os, signal, sys, json
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxopt_lab import sweep
from tests.test_sweep import A, B, gd_member, _step
ckpt, kill_after = sys.argv[1], int(sys.argv[2])
hp = sweep.grid(lam=np.logspace(-2, 1, 7), step=[_step()])
log = []
def on_chunk(i, n, loaded):
    log.append([i, loaded])
    if not loaded and sum(not l for _, l in log) == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)  # dies right after this chunk was saved
res = sweep.run(gd_member, hp, A, B, chunk_size=2, checkpoint_dir=ckpt, on_chunk=on_chunk)
ref = sweep.run(gd_member, hp, A, B, chunk_size=2, on_chunk=lambda *a: None)  # same program, no checkpoint
print(json.dumps({"log": log, "same": bool(np.array_equal(res.params, ref.params)),
                  "iters": bool(np.array_equal(res.state.iter_num, ref.state.iter_num)),
                  "status": np.asarray(res.state.status).tolist()}))
"""


def test_kill_and_resume(tmp_path):
    import json

    ckpt = str(tmp_path / "ckpt")
    p = _run_script(_RESUME, ckpt, "2")
    assert p.returncode == -9, p.stderr[-3000:]
    saved = sorted(d for d in os.listdir(ckpt) if d.startswith("chunk_"))
    assert saved == ["chunk_000000", "chunk_000001"]
    p = _run_script(_RESUME, ckpt, "0")
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    # Both finished chunks were loaded, not recomputed; the other two were computed.
    assert out["log"] == [[0, True], [1, True], [2, False], [3, False]]
    assert out["same"] and out["iters"]
    assert out["status"] == [int(jo.Status.CONVERGED)] * 7
    assert len([d for d in os.listdir(ckpt) if d.startswith("chunk_")]) == 4


def test_checkpoint_of_another_sweep_is_rejected(tmp_path):
    hp = sweep.grid(lam=[0.5, 1.0], step=[_step()])
    sweep.run(gd_member, hp, A, B, checkpoint_dir=tmp_path)
    again = sweep.run(gd_member, hp, A, B, checkpoint_dir=tmp_path)  # all loaded
    np.testing.assert_allclose(again.params[0], problems.ridge_solution(0.5, A, B), atol=1e-7)
    with pytest.raises(ValueError, match="holds a different sweep"):
        sweep.run(gd_member, sweep.grid(lam=[0.5, 2.0], step=[_step()]), A, B, checkpoint_dir=tmp_path)


# --------------------------------------------------------------------------- CLI

from jaxopt_lab import sweep_cli  # noqa: E402


def _config(**over):
    cfg = {
        "problem": {"name": "logreg", "options": {"n_samples": 60, "n_features": 5, "seed": 0}},
        "solver": {"name": "LBFGS", "options": {"maxiter": 30}},
        "grid": {"l2": [0.01, 0.1, 1.0], "tol": [1e-8]},
        "sweep": {"seeds": [0], "chunk_size": 2, "output": "unused"},
    }
    return with_overrides(cfg, **over)


@pytest.mark.parametrize("over, match", [
    ({"extra": {}}, r"`extra`: unknown key. Allowed: problem, solver, grid, sweep"),
    ({"sweep__seed": [0]}, r"`sweep.seed`: unknown key. Allowed: seeds, devices"),
    ({"problem__name": "nope"}, r"`problem.name`: unknown problem 'nope'. Allowed: logreg, mlp"),
    ({"problem__options": {"n": 3}}, r"`problem.options.n`: unknown key. Allowed: n_samples, n_features"),
    ({"solver__name": "Nope"}, r"`solver.name`: unknown solver or transform 'Nope'. Allowed: .*LBFGS"),
    ({"solver__options": {"memory": 3}}, r"`solver.options.memory`: unknown key. Allowed: .*history_size"),
    ({"solver__steps": 10}, r"`solver.steps`: only for transforms"),
    ({"grid": {"lr": [0.1]}}, r"`grid.lr`: not a sweepable .* Allowed: .*c1, .*l2, .*tol"),
    ({"grid": {"l2": []}}, r"`grid.l2`: must be a non-empty list"),
    ({"grid": {"l2": {"logspace": [0, 1, 3]}}}, r"`grid.l2.logspace`: lo and hi must be > 0"),
    ({"grid": {"l2": [0.1], "maxiter": [3]}}, r"`grid.maxiter`: not a sweepable"),
    ({"sweep__devices": 99}, r"`sweep.devices`: got 99. Allowed: 'all', 1"),
    ({"sweep__chunk_size": 0}, r"`sweep.chunk_size`: must be a positive multiple"),
    ({"sweep__metric": "loss"}, r"`sweep.metric`: unknown metric 'loss'. Allowed: train_loss, val_accuracy"),
    ({"sweep__seeds": [-1]}, r"`sweep.seeds`: must be a non-empty list of ints"),
    ({"solver": {"name": "adam", "steps": 5}}, r"`grid.tol`: not a sweepable .* Allowed: b1, b2"),
    ({"solver": {"name": "adam", "steps": 5}, "grid": {"b1": [0.9]}},
     r"`grid.learning_rate`: required by adam"),
])
def test_config_validation(over, match):
    with pytest.raises(sweep_cli.ConfigError, match=match):
        sweep_cli.validate_config(_config(**over))


def test_cli_bad_file_returns_2(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('[problem]\nname = "logreg"\n[solver]\nname = "LBFGS"\n[grid]\nl2 = [0.1]\nfoo = 1\n')
    assert sweep_cli.main(str(path), progress=False) == 2
    assert "`grid.foo`: not a sweepable" in capsys.readouterr().err
    assert sweep_cli.main(str(tmp_path / "missing.toml"), progress=False) == 2


def test_cli_end_to_end_matches_direct_solves(tmp_path):
    import csv
    import json

    from jaxopt_lab import cli
    from jaxopt_lab.problems import logreg

    out = tmp_path / "out"
    path = tmp_path / "c.toml"
    path.write_text(f"""
[problem]
name = "logreg"
options = {{ n_samples = 60, n_features = 5, seed = 0 }}
[solver]
name = "LBFGS"
options = {{ maxiter = 40 }}
[grid]
l2 = {{ logspace = [0.01, 1.0, 3] }}
tol = [1e-9, 1e-7]
[sweep]
seeds = [0, 1]
chunk_size = 4
output = "{out}"
""")
    assert cli.main(["sweep", str(path), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 12
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status_counts"] == {"CONVERGED": 12}
    assert len(meta["config_hash"]) == 64 and meta["versions"]["jax"] == jax.__version__
    parquet = ["results.parquet"] if meta["tables"] == ["results.csv", "results.parquet"] else []
    assert sorted(os.listdir(out)) == sorted(["checkpoints", "metadata.json", "results.csv", *parquet,
                                              "val_loss_heatmap.png", "val_loss_vs_l2.png",
                                              "val_loss_vs_tol.png"])
    assert (out / "val_loss_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    prob = logreg(n_samples=60, n_features=5, seed=0)
    for r in rows[::5]:
        hp = {"l2": jnp.asarray(float(r["l2"]))}
        x0 = prob.init_params(jax.random.PRNGKey(int(r["seed"])))
        res = jo.LBFGS(prob.loss, maxiter=40, tol=float(r["tol"])).run(x0, hp, prob.data)
        m = prob.metrics(res.params, hp, prob.eval_data)
        assert abs(float(m["val_loss"]) - float(r["val_loss"])) < 1e-12
        assert int(r["iter_num"]) == int(res.state.iter_num)
    # A second run resumes from the checkpoints and rewrites the same table.
    assert cli.main(["sweep", str(path), "--no-progress"]) == 0
    assert list(csv.DictReader(open(out / "results.csv"))) == rows


@pytest.mark.slow
def test_cli_optax_transform_matches_hand_written_loop(tmp_path):
    import csv

    import optax

    from jaxopt_lab.problems import mlp

    cfg = sweep_cli.validate_config({
        "problem": {"name": "mlp", "options": {"n_samples": 40, "n_features": 4, "hidden": 8}},
        "solver": {"name": "adam", "steps": 25, "options": {"b2": 0.99}},
        "grid": {"learning_rate": [0.01, 0.1]},
        "sweep": {"output": str(tmp_path), "checkpoint": False},
    })
    sweep_cli.run_config(cfg, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["status"] for r in rows] == ["MAX_ITER", "MAX_ITER"] and rows[0]["iter_num"] == "25"
    prob = mlp(n_samples=40, n_features=4, hidden=8)
    hp = {"l2": jnp.asarray(prob.hparams["l2"])}
    for r in rows:
        opt = optax.adam(float(r["learning_rate"]), b2=0.99)

        def step(carry, _, opt=opt):
            params, state = carry
            upd, state = opt.update(jax.grad(prob.loss)(params, hp, prob.data), state, params)
            return (optax.apply_updates(params, upd), state), None

        params = prob.init_params(jax.random.PRNGKey(0))
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=25)
        want = prob.metrics(params, hp, prob.eval_data)["val_loss"]
        np.testing.assert_allclose(float(r["val_loss"]), float(want), rtol=1e-10)
