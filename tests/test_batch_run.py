"""batch_run: each member's result equals ``jax.vmap(solver.run)``'s, lanes are compacted, bad input.

Every comparison runs the same solves through ``jit(vmap(solver.run))`` in the same
process: params and the whole state per member (float64 to 1e-10, float32 to its
rounding), with the same ``iter_num`` and ``status``.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab import Status, sweep
from jaxopt_lab.problems.logreg import logistic_data, logreg_loss
from jaxopt_lab.sweep import batch as batch_mod
from tests import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X, Y = logistic_data(80, 6, seed=3)
LAMS = jnp.logspace(-3, 0, 6)  # iteration counts differ by lane


def assert_same(out, ref, rtol=1e-10, atol=1e-10, history_rtol=1e-6, skip=()):
    """Leaf-by-leaf agreement of two stacked OptSteps (exact for integers and bools).

    Params and every state leaf agree to ``rtol``/``atol``, except quasi-Newton curvature
    histories (``rho = 1 / s'y`` with ``s'y`` at rounding level near the solution, where a
    batched dot product of another batch size changes the last bits) and OSQP's adaptive
    ``rho_bar`` (a ratio of residual norms: vmap over 5 or 8 lanes differs by 1e-9 there
    while the params agree to 1e-15): ``history_rtol``. Leaves named in ``skip`` are not
    compared (their value is rounding noise by construction; the caller says why).
    """
    ref_paths, ref_tree = jax.tree_util.tree_flatten_with_path(ref)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out)
    assert out_tree == ref_tree
    for (path, b), a in zip(ref_paths, out_leaves, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        name = jax.tree_util.keystr(path)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if any(name.endswith(f".{k}") for k in skip):
            continue
        if np.issubdtype(b.dtype, np.inexact):
            hist = any(k in name for k in ("history", "gamma", "rho_bar"))
            np.testing.assert_allclose(a, b, rtol=history_rtol if hist else rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def vmapped(solver, in_axes, *full):
    return jax.jit(jax.vmap(solver.run, in_axes=in_axes))(*full)


def spy_segments(monkeypatch):
    """Record ``(block, [steps, lane-steps])`` of every segment program call."""
    calls = []
    program = batch_mod._segment_program

    def spy(spec, block, *rest):
        out = program(spec, block, *rest)
        calls.append((block, np.asarray(out[-1]).tolist()))
        return out

    monkeypatch.setattr(batch_mod, "_segment_program", spy)
    return calls


def compacted_lane_steps(iters, block):
    """Lane-steps of a bucket stepped in blocks, compacted whenever the running lanes fit
    in fewer blocks: at step k, ceil(#{members with more than k iterations} / block) blocks."""
    iters = np.asarray(iters)
    return sum(block * -(-int(np.sum(iters > k)) // block) for k in range(int(iters.max())))


def test_lbfgs_matches_vmap_and_compacts(monkeypatch):
    solver = jl.LBFGS(logreg_loss, tol=1e-8, maxiter=200)
    x0 = jnp.zeros(6)
    axes = (None, 0, None, None)
    ref = vmapped(solver, axes, x0, LAMS, X, Y)
    iters = np.asarray(ref.state.iter_num)
    assert iters.max() - iters.min() >= 4  # lanes stop at different segments
    calls = spy_segments(monkeypatch)
    out = jl.batch_run(solver, x0, LAMS, X, Y, in_axes=axes, segment_size=3, step_width=2)
    assert_same(out, ref)
    assert np.all(np.asarray(out.state.status) == Status.CONVERGED)
    # Six members in three blocks of two; a block is stepped only while a running lane
    # is in it, after the device moved the running lanes to the first slots.
    assert all(block == 2 for block, _ in calls)
    steps, lane_steps = np.asarray([w for _, w in calls]).T
    assert steps.max() <= 3 and steps.sum() == iters.max()
    assert lane_steps.sum() == compacted_lane_steps(iters, 2) < 6 * iters.max()


def test_one_program_call_compacts_on_the_device(monkeypatch):
    # Regression (issue 18): lanes used to be written out and repacked by the host
    # between segments; now one program call runs the whole batch when segment_size
    # allows, with every member's result equal to its vmap result. 13 members in blocks
    # of 4 take a bucket of 16 slots, the last 3 empty from the start.
    solver = jl.LBFGS(logreg_loss, tol=1e-8, maxiter=200)
    x0 = jnp.zeros(6)
    axes = (None, 0, None, None)
    lams = jnp.logspace(-4, 1, 13)
    reference = jax.jit(jax.vmap(solver.run, in_axes=axes))
    ref = reference(x0, lams, X, Y)
    iters = np.asarray(ref.state.iter_num)
    program = batch_mod._segment_program
    calls = spy_segments(monkeypatch)
    out = jl.batch_run(solver, x0, lams, X, Y, in_axes=axes, segment_size=500, step_width=4)
    assert_same(out, ref)
    assert len(calls) == 1
    block, (steps, lane_steps) = calls[0]
    assert block == 4 and steps == iters.max()
    assert lane_steps == compacted_lane_steps(iters, 4) < 16 * iters.max()
    # Other data of the same shapes: the same program, nothing compiled.
    calls.clear()
    cached = program._cache_size()
    lams2, X2, Y2 = lams * 1.5, X[::-1], 1.0 - Y
    out2 = jl.batch_run(solver, x0, lams2, X2, Y2, in_axes=axes, segment_size=500, step_width=4)
    assert_same(out2, reference(x0, lams2, X2, Y2))
    assert len(calls) == 1 and program._cache_size() == cached


def test_gradient_descent_lookback_nonfinite_and_maxiter():
    # f(x; a) = a/2 |x|^2 with a fixed step 0.5: a = 5 diverges (|1 - 2.5| > 1) until the
    # iterate overflows (NONFINITE: the last finite iterate comes back, with its state);
    # a = 1e-3 contracts slowly and hits maxiter (state refreshed at the returned params);
    # a = 1 converges in a few steps.
    fun = lambda x, a: 0.5 * a * jnp.sum(x ** 2)
    solver = jl.GradientDescent(fun, stepsize=0.5, acceleration=False, tol=1e-6, maxiter=900)
    a = jnp.array([1.0, 5.0, 1e-3, 2.0, 5.5])
    x0 = jnp.ones(3)
    ref = vmapped(solver, (None, 0), x0, a)
    status = np.asarray(ref.state.status)
    assert {Status.NONFINITE, Status.MAX_ITER, Status.CONVERGED} <= set(status.tolist())
    out = jl.batch_run(solver, x0, a, in_axes=(None, 0), segment_size=64, step_width=2)
    assert_same(out, ref)
    assert np.all(np.isfinite(np.asarray(out.params)))


def test_accelerated_gradient_descent_and_float32():
    x32, y32 = logistic_data(60, 5, seed=1, dtype=jnp.float32)
    solver = jl.GradientDescent(logreg_loss, tol=1e-4, maxiter=300)
    x0 = jnp.zeros(5, jnp.float32)
    lams = jnp.asarray([1e-2, 1e-1, 1.0], jnp.float32)
    ref = vmapped(solver, (None, 0, None, None), x0, lams, x32, y32)
    out = jl.batch_run(solver, x0, lams, x32, y32, in_axes=(None, 0, None, None), segment_size=8,
                       buckets=(4,), step_width=1)
    assert out.params.dtype == jnp.float32
    assert_same(out, ref, rtol=1e-5, atol=1e-6)


def _qp_data(m=5, d=4, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    Q = jnp.asarray(M @ M.T + np.eye(d))
    G = jnp.asarray(rng.standard_normal((m, d)))
    h = jnp.asarray(rng.uniform(0.1, 1.0, m))
    cs = jnp.asarray(rng.standard_normal((5, d)) * np.array([[0.1], [1.0], [3.0], [10.0], [0.5]]))
    return Q, cs, G, h


def test_osqp_run_adapter():
    # OSQP.run turns (A, b), (G, h) into a box QP and back: batch_run sees the loop's
    # arguments through it and replays the conversion of the result.
    Q, cs, G, h = _qp_data()
    solver = jl.OSQP(tol=1e-6, maxiter=2000)
    axes = (None, (None, 0), None, None)
    ref = vmapped(solver, axes, None, (Q, cs), None, (G, h))
    out = jl.batch_run(solver, None, (Q, cs), None, (G, h), in_axes=axes, segment_size=25, step_width=2)
    assert_same(out, ref)
    assert len(set(np.asarray(ref.state.iter_num).tolist())) > 1


def _registry_case(name):
    entry = next(e for e in registry.SOLVERS if e.name == name)
    made = entry.make(logreg_loss, **{**entry.options, "maxiter": 300})
    if isinstance(made, registry._FirstArg):  # solver.run(x0, first, *args)
        return made.solver, (made.first,)
    return made, ()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ProximalGradient", "NonlinearCG", "BFGS", "LBFGSB", "LBFGS-backtracking",
                                  "ProjectedGradient", "GradientDescent"])
def test_registry_solvers_match_vmap(name):
    solver, first = _registry_case(name)
    x0 = jnp.zeros(6)
    full = (x0, *first, LAMS, X, Y)
    axes = (None,) * (1 + len(first)) + (0, None, None)
    ref = vmapped(solver, axes, *full)
    out = jl.batch_run(solver, *full, in_axes=axes, segment_size=7, step_width=2)
    # NonlinearCG's line-search decisions amplify rounding (registry: exact_replay=False),
    # and its last trial step is 2.02 (f_{k-1} - f_k) / slope with a decrease at f's rounding
    # level once converged: the step size is not compared, params and values are.
    ncg = name == "NonlinearCG"
    tol = 1e-6 if ncg else 1e-10
    assert_same(out, ref, rtol=tol, atol=tol, skip=("stepsize",) if ncg else ())


def test_wrapper_object_solver():
    # A solver-like wrapper that is not a pytree (the registry's _FirstArg) is run as a
    # static object; its run reaches the wrapped solver's run.
    wrapped = registry._FirstArg(jl.ProximalGradient(logreg_loss, tol=1e-6, maxiter=300), None)
    x0 = jnp.zeros(6)
    axes = (None, 0, None, None)
    ref = jax.vmap(wrapped.run, in_axes=axes)(x0, LAMS[:3], X, Y)
    out = jl.batch_run(wrapped, x0, LAMS[:3], X, Y, in_axes=axes, segment_size=20, buckets=(4,))
    assert_same(out, ref)


def test_multistart_queue():
    # Multi-start on a nonconvex function: starts batched over init_params, more from a
    # queue refilling the slots of finished lanes; results in batch-then-queue order.
    fun = lambda x, c: jnp.sum((x ** 2 - 1.0) ** 2) + c * jnp.sum(x)
    solver = jl.LBFGS(fun, tol=1e-9, maxiter=100)
    starts = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (9, 2)))
    c = jnp.asarray(0.1)
    ref = vmapped(solver, (0, None), starts, c)
    queue = [(starts[i], None) for i in range(4, 9)]
    out = jl.batch_run(solver, starts[:4], c, in_axes=(0, None), queue=iter(queue), segment_size=3,
                       buckets=(4,), step_width=2)
    assert_same(out, ref)
    # Queue only: members with a zero-length member axis give the structure.
    out2 = jl.batch_run(solver, starts[:0], c, in_axes=(0, None), queue=[(s, None) for s in starts],
                        segment_size=3, buckets=(4,), step_width=2)
    assert_same(out2, ref)


def test_bad_input():
    solver = jl.LBFGS(logreg_loss, tol=1e-6, maxiter=50)
    x0 = jnp.zeros(6)
    with pytest.raises(ValueError, match="segment_size"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, None, None), segment_size=0)
    with pytest.raises(ValueError, match="in_axes"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, None))
    with pytest.raises(ValueError, match="in_axes"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, 0, None))  # sizes 6 and 80
    with pytest.raises(ValueError, match="in_axes"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=None)
    with pytest.raises(ValueError, match="in_axes"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 2, None, None))
    with pytest.raises(TypeError, match="solver"):
        jl.batch_run(object(), x0, LAMS, X, Y, in_axes=(None, 0, None, None))
    with pytest.raises(TypeError, match="update"):
        jl.batch_run(jl.ScipyMinimize(fun=logreg_loss), x0, LAMS, X, Y, in_axes=(None, 0, None, None))
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="step_width"):
            jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, None, None), step_width=bad)
    with pytest.raises(ValueError, match="buckets"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, None, None), buckets=(0,))
    with pytest.raises(ValueError, match="queue"):
        jl.batch_run(solver, x0, LAMS, X, Y, in_axes=(None, 0, None, None), queue=[(x0,)])
    with pytest.raises(ValueError, match="init_params"):
        jl.batch_run(solver, jnp.full((6, 6), jnp.nan), LAMS, X, Y, in_axes=(0, 0, None, None))
    with pytest.raises(TypeError, match="cannot be traced or differentiated"):
        jax.grad(lambda lams: jnp.sum(jl.batch_run(solver, x0, lams, X, Y,
                                                   in_axes=(None, 0, None, None)).params))(LAMS)


def test_closed_form_solver_falls_back_to_vmap():
    # EqualityConstrainedQP's run is a direct solve, not an update loop: same as vmap.
    Q = jnp.eye(3) * 2.0
    cs = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    A, b = jnp.ones((1, 3)), jnp.ones(1)
    solver = jl.EqualityConstrainedQP(tol=1e-10)
    axes = (None, (None, 0), None)
    ref = vmapped(solver, axes, None, (Q, cs), (A, b))
    out = jl.batch_run(solver, None, (Q, cs), (A, b), in_axes=axes)
    assert_same(out, ref)


def lbfgs_member(h, X, y):
    return jl.LBFGS(logreg_loss, tol=1e-8, maxiter=200).run(jnp.zeros(6), h["l2"], X, y)


def metrics_member(h, X, y):
    res = jl.LBFGS(logreg_loss, tol=1e-8, maxiter=200).run(jnp.zeros(6), h["l2"], X, y)
    return {"loss": logreg_loss(res.params, 0.0, X, y), "iters": res.state.iter_num}


def test_sweep_run_uses_batch_run(monkeypatch):
    hp = {"l2": LAMS}
    calls = []
    drive = batch_mod._drive
    monkeypatch.setattr(batch_mod, "_drive", lambda *a, **k: calls.append(1) or drive(*a, **k))
    ref = jax.jit(jax.vmap(lambda h: lbfgs_member(h, X, Y)))(hp)
    out = sweep.run(lbfgs_member, hp, X, Y)
    assert calls, "sweep.run did not take the batched path for a solver-run member"
    assert_same(out, ref)
    # Computation after the solve (metrics) is replayed per member.
    ref_m = jax.jit(jax.vmap(lambda h: metrics_member(h, X, Y)))(hp)
    out_m = sweep.run(metrics_member, hp, X, Y, chunk_size=4)
    assert_same(out_m, ref_m)
    # A member that runs no solver takes the plain path.
    calls.clear()
    plain = sweep.run(lambda h, X, y: {"s": h["l2"] * jnp.sum(X)}, hp, X, Y)
    assert not calls
    np.testing.assert_allclose(plain["s"], LAMS * jnp.sum(X))


MESH_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxopt_lab as jl
from jaxopt_lab import sweep
from jaxopt_lab.problems.logreg import logistic_data, logreg_loss
assert len(jax.devices()) == 4
X, Y = logistic_data(80, 6, seed=3)
lams = jnp.logspace(-3, 0, 8)
solver = jl.LBFGS(logreg_loss, tol=1e-8, maxiter=200)
x0 = jnp.zeros(6)
axes = (None, 0, None, None)
ref = jax.jit(jax.vmap(solver.run, in_axes=axes))(x0, lams, X, Y)
mesh = sweep.mesh_for(4)
out = jl.batch_run(solver, x0, lams, X, Y, in_axes=axes, segment_size=3, mesh=mesh)
assert out.params.sharding.spec == jax.sharding.PartitionSpec("members"), out.params.sharding
assert len(out.params.sharding.device_set) == 4
for (path, b), a in zip(jax.tree_util.tree_flatten_with_path(ref)[0], jax.tree_util.tree_leaves(out)):
    # Curvature histories and the scaling gamma (from s'y at rounding level near the
    # solution: 8e-10 apart for a 2-lane bucket), as assert_same: 1e-6; the rest: 1e-10.
    rtol = 1e-6 if any(k in jax.tree_util.keystr(path) for k in ("history", "gamma")) else 1e-10
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-10)
# Uneven split (6 members on 4 devices) and a sweep over the mesh.
out6 = jl.batch_run(solver, x0, lams[:6], X, Y, in_axes=axes, segment_size=3, mesh=mesh)
np.testing.assert_array_equal(out6.state.iter_num, ref.state.iter_num[:6])
# One SPMD segment program for the four devices (not one per device), reused for the
# uneven split (same bucket size).
from jaxopt_lab.sweep import batch
assert batch._mesh_segment_program._cache_size() == 1, batch._mesh_segment_program._cache_size()
assert batch._segment_program._cache_size() == 0
# Members from a queue refill the devices' slots; each device's results block grows.
outq = jl.batch_run(solver, x0, lams[:4], X, Y, in_axes=axes, segment_size=3, mesh=mesh,
                    queue=[(x0, lam, X, Y) for lam in lams[4:]])
np.testing.assert_array_equal(outq.state.iter_num, ref.state.iter_num)
np.testing.assert_allclose(outq.params, ref.params, rtol=1e-9, atol=1e-10)
member = lambda h, X, y: solver.run(x0, h["l2"], X, y)
res = sweep.run(member, {"l2": lams}, X, Y, mesh=mesh, chunk_size=4)
np.testing.assert_allclose(res.params, ref.params, rtol=1e-10, atol=1e-10)
print("OK")
"""


@pytest.mark.slow
def test_mesh_buckets_per_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(MESH_SCRIPT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
