"""FrankWolfe and StochasticFrankWolfe: simplex-constrained least squares against projected
gradient, linear convergence of the away and pairwise variants, the O(1/k) bound of the
vanilla method, per-lane status, float32 and bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab import lmo as L


def _lsq(dtype=jnp.float64, m=30, n=20, seed=0):
    rng = np.random.default_rng(seed)
    A = jnp.asarray(rng.standard_normal((m, n)), dtype)
    b = jnp.asarray(rng.standard_normal(m), dtype)
    return A, b, jnp.full(n, 1.0 / n, dtype)


def _fun(x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


@functools.cache
def _reference():
    A, b, x0 = _lsq()
    ref = jl.ProjectedGradient(_fun, jl.projection.projection_simplex, tol=1e-12, maxiter=100000)
    out = ref.run(x0, 1.0, A, b)
    assert int(out.state.status) == jl.Status.CONVERGED
    return float(_fun(out.params, A, b)), np.asarray(out.params)


def _gaps(solver, x0, hp, *args, steps):
    def body(carry, _):
        x, st = carry
        x, st = solver.update(x, st, hp, *args)
        return (x, st), (st.error, st.value)

    (x, _), (gaps, values) = jax.jit(lambda: jax.lax.scan(body, (x0, solver.init_state(x0, hp, *args)), None,
                                                          length=steps))()
    return x, np.asarray(gaps), np.asarray(values)


@pytest.mark.parametrize("variant,stepsize", [
    ("pairwise", "backtracking"),
    pytest.param("away", "backtracking", marks=pytest.mark.slow),
    pytest.param("pairwise", "short", marks=pytest.mark.slow),
    pytest.param("away", "short", marks=pytest.mark.slow),
])
def test_away_and_pairwise_reach_the_projected_gradient_objective(variant, stepsize):
    A, b, x0 = _lsq()
    f_ref, x_ref = _reference()
    lip = float(jnp.linalg.norm(A, 2) ** 2)
    out = jl.FrankWolfe(_fun, L.lmo_simplex, variant=variant, stepsize=stepsize, lipschitz=lip, tol=1e-10,
                        maxiter=3000, unroll=False).run(x0, 1.0, A, b)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert abs(float(out.state.value) - f_ref) <= 1e-8
    np.testing.assert_allclose(out.params, x_ref, atol=1e-5)
    x = np.asarray(out.params)
    assert x.min() >= -1e-12 and abs(x.sum() - 1) < 1e-12  # feasible throughout
    w = np.asarray(out.state.weights)
    np.testing.assert_allclose(w, x, atol=1e-12)  # the simplex's weights are the point itself


@pytest.mark.parametrize("variant,last", [("away", 600), ("pairwise", 400)])
def test_away_and_pairwise_gaps_decrease_geometrically(variant, last):
    A, b, x0 = _lsq()
    solver = jl.FrankWolfe(_fun, L.lmo_simplex, variant=variant, tol=0.0)
    _, gaps, _ = _gaps(solver, x0, 1.0, A, b, steps=last + 1)
    best = np.minimum.accumulate(gaps)
    # Measured factors per 100 steps: ~0.06 (away), ~0.005 (pairwise); vanilla FW is sublinear.
    for k in range(100, last, 100):
        assert best[k + 100] <= 0.1 * best[k], (k, best[k], best[k + 100])


def test_vanilla_open_loop_meets_the_o_one_over_k_bound():
    A, b, x0 = _lsq()
    f_ref, _ = _reference()
    lip = float(jnp.linalg.norm(A, 2) ** 2)
    solver = jl.FrankWolfe(_fun, L.lmo_simplex, stepsize="open_loop", tol=0.0)
    _, gaps, values = _gaps(solver, x0, 1.0, A, b, steps=2000)
    k = np.arange(1, 2001)
    # Jaggi (2013), Theorem 1: f(x_k) - f* <= 2 L diam^2 / (k + 2), diam^2 = 2 on the simplex.
    assert np.all(values - f_ref <= 2 * lip * 2 / (k + 2) + 1e-12)
    assert np.all(gaps >= values - f_ref - 1e-10)  # the gap bounds the suboptimality
    # ... and it is sublinear: far from the pairwise method's 1e-10 after 2000 steps.
    assert values[-1] - f_ref > 1e-8


def test_vmap_status_per_lane_and_equal_to_single_runs():
    A, b, x0 = _lsq()
    solver = lambda tol: jl.FrankWolfe(_fun, L.lmo_simplex, variant="pairwise", tol=tol, maxiter=2000,
                                       unroll=False)
    bs = jnp.stack([b, 2 * b, b.at[0].set(jnp.nan)])
    tols = jnp.asarray([1e-8, 1e-6, 1e-8])
    out = jax.vmap(lambda bb, t: solver(t).run(x0, 1.0, A, bb))(bs, tols)
    S = jl.Status
    assert [int(s) for s in out.state.status] == [S.CONVERGED, S.CONVERGED, S.NONFINITE]
    assert bool(jnp.all(jnp.isfinite(out.params[2])))
    for i in range(2):
        single = solver(float(tols[i])).run(x0, 1.0, A, bs[i])
        np.testing.assert_allclose(out.params[i], single.params, rtol=1e-10, atol=1e-12)
        assert int(out.state.iter_num[i]) == int(single.state.iter_num)


def test_float32_defaults():
    A, b, x0 = _lsq(jnp.float32)
    out = jl.FrankWolfe(_fun, L.lmo_simplex, variant="pairwise", tol=1e-4).run(x0, 1.0, A, b)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert out.params.dtype == jnp.float32
    for leaf in jax.tree_util.tree_leaves(out.state):
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            assert jnp.asarray(leaf).dtype == jnp.float32
    f_ref, _ = _reference()
    assert abs(float(out.state.value) - f_ref) < 1e-3


def test_nuclear_ball_matches_its_projection():
    # min 0.5 ||X - M||^2 over ||X||_* <= r: the projection of M, singular values soft-thresholded.
    M = jnp.asarray(np.random.default_rng(3).standard_normal((6, 5)))
    r = 2.0
    u, s, vt = np.linalg.svd(np.asarray(M), full_matrices=False)
    theta = jl.projection.projection_l1_ball(jnp.asarray(s), r)
    X_ref = (u * np.asarray(theta)) @ vt
    f = lambda X, M: 0.5 * jnp.sum((X - M) ** 2)
    solver = jl.FrankWolfe(f, L.lmo_nuclear_ball, tol=1e-6, maxiter=5000, unroll=False)
    out = solver.run(jnp.zeros_like(M), r, M)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert float(f(out.params, M)) - float(f(X_ref, M)) <= 1e-6


def test_unrolled_run_stops_at_tol():
    # The default (unrolled, for reverse mode) run used to compute all maxiter steps after
    # reaching tol; now its work stops there (chunks of steps skipped by lax.cond).
    A, b, x0 = _lsq(m=12, n=6, seed=1)
    calls = []

    def fun(x, A, b):
        jax.debug.callback(lambda: calls.append(1))
        return _fun(x, A, b)

    lip = float(jnp.linalg.norm(A, 2) ** 2)
    solver = lambda tol, **kw: jl.FrankWolfe(fun, L.lmo_simplex, variant="pairwise", stepsize="short",
                                             lipschitz=lip, tol=tol, maxiter=3000, **kw)
    out = jax.jit(lambda bb: solver(1e-6).run(x0, 1.0, A, bb))(b)
    ref = solver(1e-6, unroll=False).run(x0, 1.0, A, b)
    iters = int(out.state.iter_num)
    assert int(out.state.status) == jl.Status.CONVERGED and iters == int(ref.state.iter_num) < 200
    np.testing.assert_allclose(out.params, ref.params, rtol=1e-12, atol=1e-14)
    calls.clear()
    jax.block_until_ready(jax.jit(lambda bb: solver(1e-6).run(x0, 1.0, A, bb))(b))
    assert 0 < len(calls) <= iters + 2 + 16  # one evaluation per step, plus init; was 3001


@pytest.mark.slow
def test_unrolled_run_under_vmap_and_reverse_mode():
    A, b, x0 = _lsq(m=12, n=6, seed=1)
    lip = float(jnp.linalg.norm(A, 2) ** 2)
    solver = lambda tol, **kw: jl.FrankWolfe(_fun, L.lmo_simplex, variant="pairwise", stepsize="short",
                                             lipschitz=lip, tol=tol, maxiter=3000, **kw)
    ref = solver(1e-6, unroll=False).run(x0, 1.0, A, b)
    iters = int(ref.state.iter_num)
    # Under vmap every lane keeps its own iterations and status (tol=0 runs to maxiter).
    out = jax.vmap(lambda bb, t: solver(t).run(x0, 1.0, A, bb))(jnp.stack([b, 2 * b]),
                                                                  jnp.asarray([1e-6, 0.0]))
    assert [int(s) for s in out.state.status] == [jl.Status.CONVERGED, jl.Status.MAX_ITER]
    assert [int(i) for i in out.state.iter_num] == [iters, 3000]
    np.testing.assert_allclose(out.params[0], ref.params, rtol=1e-12, atol=1e-14)
    # Reverse mode through the chunked scan agrees with forward mode.
    sol = lambda bb: solver(1e-6).run(x0, 1.0, A, bb).params
    v = jnp.asarray(np.random.default_rng(2).standard_normal(b.shape))
    w = jnp.asarray(np.random.default_rng(3).standard_normal(x0.shape))
    _, jvp = jax.jvp(sol, (b,), (v,))
    g = jax.grad(lambda bb: jnp.vdot(w, sol(bb)))(b)
    np.testing.assert_allclose(jnp.vdot(g, v), jnp.vdot(w, jvp), rtol=1e-8)


@pytest.mark.slow
def test_unrolled_derivative_matches_finite_differences():
    A, b, x0 = _lsq(m=12, n=6, seed=1)
    solver = jl.FrankWolfe(_fun, L.lmo_simplex, variant="pairwise", stepsize="short",
                           lipschitz=float(jnp.linalg.norm(A, 2) ** 2), tol=0.0, maxiter=400)
    sol = lambda bb: solver.run(x0, 1.0, A, bb).params
    v = jnp.asarray(np.random.default_rng(2).standard_normal(b.shape))
    _, jvp = jax.jvp(sol, (b,), (v,))
    eps = 1e-6
    fd = (sol(b + eps * v) - sol(b - eps * v)) / (2 * eps)
    np.testing.assert_allclose(jvp, fd, atol=1e-6)
    w = jnp.asarray(np.random.default_rng(3).standard_normal(x0.shape))
    g = jax.grad(lambda bb: jnp.vdot(w, sol(bb)))(b)  # reverse mode through the scan
    np.testing.assert_allclose(jnp.vdot(g, v), jnp.vdot(w, jvp), rtol=1e-8)


@pytest.mark.slow
def test_stochastic_frank_wolfe_with_minibatches():
    A, b, x0 = _lsq()
    f_ref, _ = _reference()
    m = A.shape[0]
    fun = lambda x, data: 0.5 * m * jnp.mean((data[0] @ x - data[1]) ** 2)
    rng = np.random.default_rng(0)

    def batches(n):
        for _ in range(n):
            idx = rng.choice(m, 10, replace=False)
            yield A[idx], b[idx]

    solver = jl.StochasticFrankWolfe(fun, L.lmo_simplex, tol=0.0, maxiter=3000)
    out = solver.run_iterator(x0, 1.0, batches(3001))
    assert int(out.state.iter_num) == 3000 and int(out.state.status) == jl.Status.MAX_ITER
    x = np.asarray(out.params)
    assert x.min() >= 0 and abs(x.sum() - 1) < 1e-12
    assert float(_fun(out.params, A, b)) - f_ref < 0.1
    # Full batch: the averaged gradient becomes exact and the estimated gap a certificate.
    full = jl.StochasticFrankWolfe(lambda x: _fun(x, A, b), L.lmo_simplex, tol=1e-2, maxiter=20000,
                                   unroll=False).run(x0, 1.0)
    assert int(full.state.status) == jl.Status.CONVERGED
    assert float(_fun(full.params, A, b)) - f_ref <= 1.5e-2


def test_stochastic_frank_wolfe_run_iterator_stops_on_a_nonfinite_batch():
    # run_iterator is the stochastic solvers' driver: a NaN batch returns the last finite
    # iterate, which equals a run over the clean batches before it, and the state counts
    # the failed update as the run loop does; a non-iterable is a TypeError naming it.
    A, b, x0 = _lsq()
    fun = lambda x, data: _fun(x, *data)
    clean = [(A, b)] * 4
    solver = jl.StochasticFrankWolfe(fun, L.lmo_simplex, tol=0.0, maxiter=50)
    out = solver.run_iterator(x0, 1.0, iter(clean + [(A * np.nan, b)] + clean))
    ref = solver.run_iterator(x0, 1.0, iter(clean))
    assert int(out.state.status) == jl.Status.NONFINITE
    assert int(out.state.iter_num) == int(ref.state.iter_num) + 1 == 4
    np.testing.assert_array_equal(out.params, ref.params)
    np.testing.assert_array_equal(out.state.value, ref.state.value)
    with pytest.raises(TypeError, match="`iterator`"):
        solver.run_iterator(x0, 1.0, 3)


def test_bad_input_names_the_argument():
    A, b, x0 = _lsq()
    with pytest.raises(ValueError, match="`lmo`"):
        jl.FrankWolfe(_fun, lambda g, hp: g[:3]).run(x0, 1.0, A, b)
    with pytest.raises(TypeError, match="lmo"):
        jl.FrankWolfe(_fun, "simplex")
    with pytest.raises(ValueError, match="variant"):
        jl.FrankWolfe(_fun, L.lmo_simplex, variant="fancy")
    with pytest.raises(ValueError, match="stepsize"):
        jl.FrankWolfe(_fun, L.lmo_simplex, stepsize="armijo")
    with pytest.raises(ValueError, match="lmo.polytope"):
        jl.FrankWolfe(_fun, L.lmo_box, variant="away")
    with pytest.raises(ValueError, match="lipschitz"):
        jl.FrankWolfe(_fun, L.lmo_simplex, stepsize="short")
    with pytest.raises(ValueError, match="lipschitz"):
        jl.FrankWolfe(_fun, L.lmo_simplex, lipschitz=-1.0)
    with pytest.raises(ValueError, match="variant"):
        jl.StochasticFrankWolfe(_fun, L.lmo_simplex, variant="away")
