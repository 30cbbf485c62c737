"""Sweep checkpoints never mix runs; the sweep CLI validates option values and exits cleanly on Ctrl-C."""

import csv
import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jo
from jaxopt_lab import cli, sweep, sweep_cli
from jaxopt_lab.sweep.checkpoint import _Checkpoints
from tests.sweep_config import with_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_rng = np.random.default_rng(0)
A = jnp.asarray(_rng.normal(size=(12, 3)), jnp.float32)
B = jnp.asarray(_rng.normal(size=12), jnp.float32)
HP = sweep.grid(lam=np.array([0.1, 1.0, 10.0], np.float32))


def ridge(h, A, b):
    """Closed-form ridge solution (A^T A + lam I)^-1 A^T b, one member."""
    return {"x": jnp.linalg.solve(A.T @ A + h["lam"] * jnp.eye(A.shape[1], dtype=A.dtype), A.T @ b)}


def _ridge_ref(lam, A, b):
    A, b = np.asarray(A, np.float64), np.asarray(b, np.float64)
    return np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ b)


def scaled(m):
    return lambda h, A, b: {"x": m * ridge(h, A, b)["x"]}


def test_other_data_is_rejected(tmp_path):
    res = sweep.run(ridge, HP, A, B, checkpoint_dir=tmp_path)
    for i, lam in enumerate([0.1, 1.0, 10.0]):
        np.testing.assert_allclose(res["x"][i], _ridge_ref(lam, A, B), rtol=2e-5)
    again = sweep.run(ridge, HP, A, B, checkpoint_dir=tmp_path)  # loaded
    np.testing.assert_array_equal(again["x"], res["x"])
    with pytest.raises(ValueError, match=rf"{tmp_path}.*differs in data"):
        sweep.run(ridge, HP, A, B + 1.0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="differs in data"):  # same values, another dtype
        sweep.run(ridge, HP, A, np.asarray(B, np.float64), checkpoint_dir=tmp_path)
    scaled_b = lambda h, A, b, s: ridge(h, A, s * b)
    sweep.run(scaled_b, HP, A, B, checkpoint_dir=tmp_path / "k", s=1.0)
    with pytest.raises(ValueError, match="differs in data"):  # keyword arguments count too
        sweep.run(scaled_b, HP, A, B, checkpoint_dir=tmp_path / "k", s=2.0)


def test_low_precision_data_is_hashed(tmp_path):
    fun = lambda h, x: {"s": h["lam"] * jnp.sum(x.astype(jnp.float32))}
    res = sweep.run(fun, HP, jnp.full(5, 1.5, jnp.bfloat16), checkpoint_dir=tmp_path)
    np.testing.assert_allclose(res["s"], 7.5 * np.array([0.1, 1.0, 10.0]), rtol=1e-6)
    with pytest.raises(ValueError, match="differs in data"):
        sweep.run(fun, HP, jnp.full(5, 2.5, jnp.bfloat16), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="differs in data"):  # the same bytes read as float16
        sweep.run(fun, HP, jnp.full(5, 1.5, jnp.bfloat16).view(jnp.float16), checkpoint_dir=tmp_path)


def test_other_closure_is_rejected(tmp_path):
    one = sweep.run(scaled(1.0), HP, A, B, checkpoint_dir=tmp_path)
    np.testing.assert_allclose(one["x"][1], _ridge_ref(1.0, A, B), rtol=2e-5)
    np.testing.assert_array_equal(sweep.run(scaled(1.0), HP, A, B, checkpoint_dir=tmp_path)["x"], one["x"])
    with pytest.raises(ValueError, match=rf"{tmp_path}.*differs in function"):
        sweep.run(scaled(500.0), HP, A, B, checkpoint_dir=tmp_path)


def _lbfgs_member(m):
    f = lambda x, lam, A, b: 0.5 * jnp.sum((A @ x - b) ** 2) + 0.5 * lam * jnp.sum(x**2)
    return lambda h, A, b: jo.LBFGS(f, maxiter=m, tol=1e-6).run(jnp.zeros(3, A.dtype), h["lam"], A, b)


def test_solver_maxiter_in_closure_is_rejected(tmp_path):
    short = sweep.run(_lbfgs_member(1), HP, A, B, checkpoint_dir=tmp_path)
    assert np.asarray(short.state.iter_num).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="differs in function"):
        sweep.run(_lbfgs_member(500), HP, A, B, checkpoint_dir=tmp_path)
    full = sweep.run(_lbfgs_member(500), HP, A, B, checkpoint_dir=tmp_path / "fresh")
    assert sweep.member_status(full).tolist() == [int(jo.Status.CONVERGED)] * 3
    np.testing.assert_allclose(full.params[2], _ridge_ref(10.0, A, B), rtol=1e-4)


SCALE = 1.0


def scaled_by_global(h, A, b):
    return {"x": SCALE * ridge(h, A, b)["x"]}


def test_module_level_names_are_fingerprinted(tmp_path, monkeypatch):
    sweep.run(scaled_by_global, HP, A, B, checkpoint_dir=tmp_path)
    sweep.run(scaled_by_global, HP, A, B, checkpoint_dir=tmp_path)  # loaded
    monkeypatch.setattr(sys.modules[__name__], "SCALE", 2.0)
    with pytest.raises(ValueError, match="differs in function"):
        sweep.run(scaled_by_global, HP, A, B, checkpoint_dir=tmp_path)


def _times(h, A, b, m):
    return {"x": m * ridge(h, A, b)["x"]}


@jax.tree_util.register_static
class _Member:
    """A callable object: its attributes are part of the fingerprint."""

    def __init__(self, m):
        self.m = m

    def __call__(self, h, A, b):
        return {"x": self.m * ridge(h, A, b)["x"]}


def test_partial_and_callable_objects_are_fingerprinted(tmp_path):
    sweep.run(functools.partial(_times, m=1.0), HP, A, B, checkpoint_dir=tmp_path / "p")
    sweep.run(functools.partial(_times, m=1.0), HP, A, B, checkpoint_dir=tmp_path / "p")
    with pytest.raises(ValueError, match="differs in function"):
        sweep.run(functools.partial(_times, m=3.0), HP, A, B, checkpoint_dir=tmp_path / "p")
    sweep.run(_Member(1.0), HP, A, B, checkpoint_dir=tmp_path / "o")
    sweep.run(_Member(1.0), HP, A, B, checkpoint_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="differs in function"):
        sweep.run(_Member(2.0), HP, A, B, checkpoint_dir=tmp_path / "o")


def test_other_output_structure_is_rejected(tmp_path):
    # The same run_key (so the same "function") with another output tree or dtype.
    sweep.run(ridge, HP, A, B, checkpoint_dir=tmp_path, run_key="v1")
    with pytest.raises(ValueError, match=r"differs in output structure"):
        sweep.run(lambda h, A, b: {**ridge(h, A, b), "n": jnp.sum(A)}, HP, A, B, checkpoint_dir=tmp_path,
                  run_key="v1")
    with pytest.raises(ValueError, match=r"differs in output structure"):
        sweep.run(lambda h, A, b: {"x": ridge(h, A, b)["x"].astype(jnp.float16)}, HP, A, B,
                  checkpoint_dir=tmp_path, run_key="v1")
    with pytest.raises(ValueError, match=r"differs in function"):
        sweep.run(ridge, HP, A, B, checkpoint_dir=tmp_path, run_key="v2")


def test_unfingerprintable_function_asks_for_run_key(tmp_path):
    lock = threading.Lock()

    def member(h, A, b):
        with lock:
            return ridge(h, A, b)

    with pytest.raises(ValueError, match=r"closure variable `lock`.*run_key"):
        sweep.run(member, HP, A, B, checkpoint_dir=tmp_path)
    res = sweep.run(member, HP, A, B, checkpoint_dir=tmp_path, run_key="locked ridge v1")
    np.testing.assert_allclose(res["x"][0], _ridge_ref(0.1, A, B), rtol=2e-5)
    with pytest.raises(TypeError, match="run_key"):
        sweep.run(member, HP, A, B, checkpoint_dir=tmp_path, run_key=1)


def _two_chunk_runs(tmp_path):
    hp = sweep.grid(lam=np.array([0.1, 1.0, 10.0, 100.0], np.float32))
    a = sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=tmp_path / "a")
    sweep.run(ridge, hp, A, 2.0 * B, chunk_size=2, checkpoint_dir=tmp_path / "b")
    return hp, a


def test_chunk_folder_from_another_run_is_rejected(tmp_path):
    hp, a = _two_chunk_runs(tmp_path)
    shutil.rmtree(tmp_path / "a" / "chunk_000001")
    shutil.move(tmp_path / "b" / "chunk_000001", tmp_path / "a" / "chunk_000001")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'a' / 'chunk_000001'}.*another sweep"):
        sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=tmp_path / "a")


def test_renamed_chunk_folder_is_rejected(tmp_path):
    hp, a = _two_chunk_runs(tmp_path)
    d = tmp_path / "a"
    os.rename(d / "chunk_000000", d / "tmp")
    os.rename(d / "chunk_000001", d / "chunk_000000")
    os.rename(d / "tmp", d / "chunk_000001")
    with pytest.raises(ValueError, match=rf"{d / 'chunk_000000'}.*holds chunk 1, not 0"):
        sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=d)


def _largest_file(folder):
    files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f != "sweep_chunk.json"]
    return max(files, key=os.path.getsize)


def test_truncated_or_corrupt_file_is_named(tmp_path):
    hp, a = _two_chunk_runs(tmp_path)
    d = tmp_path / "a"
    path = _largest_file(d / "chunk_000001")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path}.*truncated"):
        sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=d)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(ValueError, match=rf"{path}.*corrupt"):
        sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=d)
    with open(path, "wb") as f:
        f.write(data)  # restored: loads again, the same results
    np.testing.assert_array_equal(sweep.run(ridge, hp, A, B, chunk_size=2, checkpoint_dir=d)["x"], a["x"])


# --------------------------------------------------------------------------- run_steps


def gd_init(h, A, b):
    return jnp.zeros(A.shape[1], A.dtype)


def gd_step_factory(lr):
    return lambda x, h, A, b: x - lr * (A.T @ (A @ x - b) + h["lam"] * x)


def test_run_steps_fingerprints_data_closures_and_states(tmp_path):
    step = gd_step_factory(0.01)
    kw = dict(num_steps=20, checkpoint_every=5, chunk_size=2)

    class Stop(Exception):
        pass

    def stop(i, n, steps, resumed):
        if steps == 10 and not resumed:
            raise Stop

    with pytest.raises(Stop):
        sweep.run_steps(gd_init, step, HP, A, B, checkpoint_dir=tmp_path, on_segment=stop, **kw)
    assert sorted(os.listdir(tmp_path)) == ["state_000000_000000010", "sweep.json"]
    with pytest.raises(ValueError, match="differs in data"):
        sweep.run_steps(gd_init, step, HP, A, 2 * B, checkpoint_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="differs in function"):
        sweep.run_steps(gd_init, gd_step_factory(0.02), HP, A, B, checkpoint_dir=tmp_path, **kw)
    # A state folder renamed to claim more steps.
    os.rename(tmp_path / "state_000000_000000010", tmp_path / "state_000000_000000015")
    with pytest.raises(ValueError, match=r"state_000000_000000015.*holds steps 10, not 15"):
        sweep.run_steps(gd_init, step, HP, A, B, checkpoint_dir=tmp_path, **kw)
    os.rename(tmp_path / "state_000000_000000015", tmp_path / "state_000000_000000010")
    res = sweep.run_steps(gd_init, step, HP, A, B, checkpoint_dir=tmp_path, **kw)
    ref = sweep.run_steps(gd_init, step, HP, A, B, **kw)
    np.testing.assert_array_equal(res, ref)


# --------------------------------------------------------------------------- CLI


def _config(out, **over):
    cfg = {
        "problem": {"name": "logreg", "options": {"n_samples": 40, "n_features": 4, "seed": 0}},
        "solver": {"name": "LBFGS", "options": {"maxiter": 30}},
        "grid": {"l2": [0.01, 0.1, 1.0], "tol": [1e-6]},
        "sweep": {"seeds": [0], "chunk_size": 2, "output": str(out)},
    }
    return with_overrides(cfg, **over)


@pytest.mark.parametrize("over, match", [
    ({"grid": {"l2": [0.1], "tol": [-1e-3]}}, r"`grid.tol`: must be a finite number >= 0, got -0.001"),
    ({"grid": {"l2": [0.1], "tol": [float("nan")]}}, r"`grid.tol`: must be a number, got NaN"),
    ({"grid": {"l2": [0.1], "tol": [float("inf")]}}, r"`grid.tol`: must be a finite number >= 0"),
    ({"grid": {"l2": [0.1], "c1": [1.5]}}, r"`grid.c1`: must satisfy 0 < c1 < c2 < 1, got c1 = 1.5"),
    ({"grid": {"l2": [0.1], "c1": [0.0]}}, r"`grid.c1`: must satisfy 0 < c1 < c2 < 1"),
    ({"grid": {"l2": [0.1], "c1": [0.5], "c2": [0.4, 0.9]}}, r"`grid.c2`: the line search needs 0 < c1 < c2"),
    ({"grid": {"l2": [0.1], "c2": [1.0]}}, r"`grid.c2`: must satisfy 0 < c1 < c2 < 1"),
    ({"grid": {"l2": [float("nan")]}}, r"`grid.l2`: values must be numbers, got NaN"),
    ({"solver__options": {"history_size": 10.5}},
     r"`solver.options.history_size`: must be an integer .* got 10.5"),
    ({"solver__options": {"maxiter": 2.5}}, r"`solver.options.maxiter`: must be an integer"),
    ({"solver__options": {"maxiter": -3}}, r"`solver.options.maxiter`: must be an integer >= 1, got -3"),
    ({"solver__options": {"c2": 1e-5}}, r"`solver.options.c2`: the line search needs 0 < c1 < c2 < 1"),
    ({"solver__options": {"tol": -1.0}, "grid": {"l2": [0.1]}}, r"`solver.options.tol`: must be a finite"),
    ({"solver": {"name": "adam", "steps": 5}, "grid": {"learning_rate": [0.1, 0.0]}},
     r"`grid.learning_rate`: must be a finite learning rate > 0, got 0.0"),
    ({"solver": {"name": "adam", "steps": 5, "options": {"learning_rate": -0.1}}, "grid": {"l2": [0.1]}},
     r"`solver.options.learning_rate`: must be a finite learning rate > 0"),
])
def test_option_values_are_validated(tmp_path, over, match):
    with pytest.raises(sweep_cli.ConfigError, match=match):
        sweep_cli.validate_config(_config(tmp_path, **over))


def test_valid_line_search_constants_pass(tmp_path):
    cfg = sweep_cli.validate_config(_config(tmp_path, grid={"l2": [0.1], "c1": [1e-4, 1e-3], "c2": [0.5]}))
    assert cfg["grid"]["c1"] == [1e-4, 1e-3]


_X64 = """
import csv, jax
from jaxopt_lab import sweep_cli
cfg = {"problem": {"name": "logreg", "options": {"n_samples": 40, "n_features": 4, "seed": 0}},
       "solver": {"name": "LBFGS", "options": {"maxiter": 30}}, "grid": {"l2": [0.1], "tol": [1e-6]},
       "sweep": {"output": OUT, "x64": True, "checkpoint": False}}
cfg = sweep_cli.validate_config(cfg)
print("after_validate", jax.config.jax_enable_x64)
sweep_cli.run_config(cfg, progress=False)
print("after_run", jax.config.jax_enable_x64)
row = next(csv.DictReader(open(OUT + "/results.csv")))
print("digits", len(row["objective"].split("e")[0].replace(".", "").lstrip("0")))
"""


def test_x64_validation_does_not_flip_the_global_flag(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_ENABLE_X64="0")
    code = textwrap.dedent(_X64).replace("OUT", repr(str(tmp_path)))
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = dict(ln.split() for ln in p.stdout.splitlines())
    assert lines["after_validate"] == "False" and lines["after_run"] == "False"
    assert int(lines["digits"]) > 9  # the sweep itself ran in float64 (a float32 prints <= 9 digits)


def _write_config(tmp_path, name="c.toml"):
    path = tmp_path / name
    out = tmp_path / "out"
    path.write_text(textwrap.dedent(f"""
        [problem]
        name = "logreg"
        options = {{ n_samples = 40, n_features = 4, seed = 0 }}
        [solver]
        name = "LBFGS"
        options = {{ maxiter = 30 }}
        [grid]
        l2 = [0.01, 0.1, 1.0, 10.0]
        tol = [1e-6]
        [sweep]
        chunk_size = 2
        output = "{out}"
    """))
    return path, out


def test_ctrl_c_exits_130_and_resumes(tmp_path, capsys, monkeypatch):
    path, out = _write_config(tmp_path)
    saves = []
    original = _Checkpoints.save

    def save_then_interrupt(self, i, leaves):
        original(self, i, leaves)
        saves.append(i)
        raise KeyboardInterrupt  # Ctrl-C right after the first chunk is written

    monkeypatch.setattr(_Checkpoints, "save", save_then_interrupt)
    assert cli.main(["sweep", str(path), "--no-progress"]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "interrupted" in err and "rerun the same command to resume" in err
    monkeypatch.setattr(_Checkpoints, "save", original)
    (ckpt,) = os.listdir(out / "checkpoints")
    assert saves == [0]
    assert sorted(os.listdir(out / "checkpoints" / ckpt)) == ["chunk_000000", "sweep.json"]
    loaded = []
    real_run = sweep.run

    def spy(*a, on_chunk=None, **k):
        def log(i, n, was_loaded):
            loaded.append(was_loaded)
            on_chunk(i, n, was_loaded)
        return real_run(*a, on_chunk=log, **k)

    monkeypatch.setattr(sweep, "run", spy)
    assert cli.main(["sweep", str(path), "--no-progress"]) == 0
    assert loaded == [True, False]  # resumed from the saved chunk
    monkeypatch.setattr(sweep, "run", real_run)
    resumed = list(csv.DictReader(open(out / "results.csv")))
    os.makedirs(tmp_path / "ref")
    ref_path, ref_out = _write_config(tmp_path / "ref")
    assert cli.main(["sweep", str(ref_path), "--no-progress"]) == 0
    assert list(csv.DictReader(open(ref_out / "results.csv"))) == resumed
    assert [r["status"] for r in resumed] == ["CONVERGED"] * 4


@pytest.mark.slow
def test_sigint_subprocess_exits_130_and_resumes(tmp_path):
    import signal
    import time

    path, out = _write_config(tmp_path)
    cmd = [sys.executable, "-m", "jaxopt_lab.cli", "sweep", str(path), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    # A tiny compiled program finishes chunks fast: pause after each chunk so SIGINT lands mid-sweep.
    code = ("import time, sys; from jaxopt_lab import cli\n"
            "from jaxopt_lab.sweep.checkpoint import _Checkpoints; orig = _Checkpoints.save\n"
            "def slow(self, i, leaves):\n    orig(self, i, leaves); time.sleep(30)\n"
            "_Checkpoints.save = slow; sys.exit(cli.main(sys.argv[1:]))\n")
    p = subprocess.Popen([sys.executable, "-c", code, *cmd[3:]], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    def first_chunk_saved():
        folders = os.listdir(out / "checkpoints") if os.path.isdir(out / "checkpoints") else []
        return any(os.path.isdir(out / "checkpoints" / c / "chunk_000000") for c in folders)

    while time.time() < deadline and not first_chunk_saved():
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted" in err
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["status"] for r in rows] == ["CONVERGED"] * 4
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["num_members"] == 4
