"""sweep.run_steps: long step loops in a sweep, checkpointed mid-run and resumed after a kill."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jo
from jaxopt_lab import sweep
from tests import problems
from tests.test_sweep import A, B, _run_script, _step, gd_member, ridge_fun


def _solver(h):
    return jo.GradientDescent(ridge_fun, stepsize=h["step"], tol=1e-9, maxiter=400)


def gd_init(h, A, b):
    x0 = jnp.zeros(4)
    return jo.OptStep(x0, _solver(h).init_state(x0, h["lam"], A, b))


def gd_step(c, h, A, b):
    return _solver(h).update(c.params, c.state, h["lam"], A, b)


def gd_done(c):
    return c.state.status != jo.Status.RUNNING


def _hp(n=7):
    return sweep.grid(lam=np.logspace(-2, 1, n), step=[_step()])


def test_solver_steps_match_solver_run():
    hp = _hp()
    ref = sweep.run(gd_member, hp, A, B)
    seen = []
    res = sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=400, done=gd_done, checkpoint_every=60,
                          chunk_size=4, on_segment=lambda *a: seen.append(a))
    np.testing.assert_allclose(res.params, ref.params, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(res.state.iter_num, ref.state.iter_num)
    np.testing.assert_array_equal(res.state.status, [int(jo.Status.CONVERGED)] * 7)
    for i, lam in enumerate(np.asarray(hp["lam"])):
        np.testing.assert_allclose(res.params[i], problems.ridge_solution(lam, A, B), atol=1e-7)
    # Members differ in length (lanes wait); segments stop once the chunk's slowest lane is done.
    iters = np.asarray(ref.state.iter_num)
    assert iters.min() < iters.max() < 400
    last = {c: s for c, _, s, _ in seen}
    assert last == {0: 60 * -(-iters[:4].max() // 60), 1: 60 * -(-iters[4:].max() // 60)}


def test_optax_training_matches_hand_written_scan():
    # A fixed number of adam steps per member (no early stop), 23 steps in segments of 5.
    X, y = problems.ridge_data(n=40, d=3, seed=4)
    loss = lambda w, X, y: jnp.mean((X @ w - y) ** 2)

    def init(h, X, y):
        w = jnp.zeros(3)
        return w, optax.adam(h["lr"]).init(w)

    def step(c, h, X, y):
        w, s = c
        u, s = optax.adam(h["lr"]).update(jax.grad(loss)(w, X, y), s, w)
        return optax.apply_updates(w, u), s

    def scan(lr):
        def body(c, _):
            return step(c, {"lr": lr}, X, y), None
        return jax.lax.scan(body, init({"lr": lr}, X, y), None, length=23)[0][0]

    lrs = jnp.array([1e-3, 1e-2, 0.1])
    w, state = sweep.run_steps(init, step, {"lr": lrs}, X, y, num_steps=23, checkpoint_every=5)
    np.testing.assert_allclose(w, jax.vmap(scan)(lrs), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(state[0].count, [23, 23, 23])


def test_one_compilation_for_all_segments():
    traces = []

    def step(c, h, A, b):
        traces.append(1)
        return gd_step(c, h, A, b)

    hp = _hp(3)
    sweep.run_steps(gd_init, step, hp, A, B, num_steps=50, checkpoint_every=7)  # lengths 7,...,7,1
    sweep.run_steps(gd_init, step, sweep.grid(lam=[0.5, 2.0, 3.0], step=[_step()]), A, B,
                    num_steps=50, checkpoint_every=7)
    assert len(traces) == 1


def test_bad_arguments(tmp_path):
    hp = _hp(2)
    with pytest.raises(ValueError, match="num_steps"):
        sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=5, checkpoint_every=0)
    with pytest.raises(TypeError, match="`step`"):
        sweep.run_steps(gd_init, None, hp, A, B, num_steps=5)
    with pytest.raises(TypeError, match="`done`"):
        sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=5, done=1)
    with pytest.raises(ValueError, match="traced"):
        jax.jit(lambda l: sweep.run_steps(gd_init, gd_step, {"lam": l, "step": l}, A, B, num_steps=5))(
            jnp.ones(2))
    sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=5, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="holds a different sweep"):  # other num_steps
        sweep.run_steps(gd_init, gd_step, hp, A, B, num_steps=6, checkpoint_dir=tmp_path)


_RESUME = """
import os, signal, sys, json
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxopt_lab import sweep
from tests.test_sweep import A, B
from tests.test_sweep_steps import gd_init, gd_step, gd_done, _hp
ckpt, kill_at = sys.argv[1], json.loads(sys.argv[2])
log = []
def on_segment(i, n, steps, resumed):
    log.append([i, steps, resumed])
    if [i, steps] == kill_at and not resumed:
        os.kill(os.getpid(), signal.SIGKILL)  # dies right after this segment was saved
kw = dict(num_steps=400, done=gd_done, checkpoint_every=40, chunk_size=4)
res = sweep.run_steps(gd_init, gd_step, _hp(), A, B, checkpoint_dir=ckpt, on_segment=on_segment, **kw)
ref = sweep.run_steps(gd_init, gd_step, _hp(), A, B, **kw)  # uninterrupted, same compiled programs
print(json.dumps({"log": log, "same": bool(np.array_equal(res.params, ref.params)),
                  "iters": bool(np.array_equal(res.state.iter_num, ref.state.iter_num)),
                  "status": np.asarray(res.state.status).tolist()}))
"""


def test_kill_mid_run_and_resume(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    # Chunk 0 (4 members) finishes; chunk 1 is killed after its second segment (80 steps).
    p = _run_script(_RESUME, ckpt, "[1, 80]")
    assert p.returncode == -9, p.stderr[-3000:]
    names = sorted(os.listdir(ckpt))
    assert "chunk_000000" in names and "chunk_000001" not in names
    assert [n for n in names if n.startswith("state_")] == ["state_000001_000000080"]  # older ones dropped
    p = _run_script(_RESUME, ckpt, "null")
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    log = out["log"]
    # The finished chunk is loaded, chunk 1 resumes at step 80 and continues from 120.
    assert log[0] == [0, 400, True] and log[1] == [1, 80, True] and log[2] == [1, 120, False]
    assert out["same"] and out["iters"]  # bitwise; == solver.run is checked in the test above
    assert out["status"] == [int(jo.Status.CONVERGED)] * 7
    names = sorted(os.listdir(ckpt))
    assert not [n for n in names if n.startswith("state_")]
    assert [n for n in names if n.startswith("chunk_")] == ["chunk_000000", "chunk_000001"]
