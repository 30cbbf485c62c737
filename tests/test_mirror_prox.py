"""MirrorProx and OptimisticMirrorDescent: matrix games against the value from
scipy.optimize.linprog, the O(1/T) gap bound, a closed-form unconstrained saddle point,
per-lane status, float32 and bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

import jaxopt_lab as jl
from tests.registry import SADDLE_POINT_SOLVERS

ids = [e.name for e in SADDLE_POINT_SOLVERS]


def _game(dtype=jnp.float64, m=20, n=30, seed=0):
    A = np.random.default_rng(seed).standard_normal((m, n))
    return jnp.asarray(A, dtype), jnp.full(m, 1.0 / m, dtype), jnp.full(n, 1.0 / n, dtype)


def _bilinear(x, y, A):
    return x @ A @ y


@functools.cache
def _game_value(m=20, n=30, seed=0):
    """``min_x max_y x^T A y`` over simplices: min t s.t. A^T x <= t, sum x = 1, x >= 0."""
    A = np.random.default_rng(seed).standard_normal((m, n))
    res = linprog(np.r_[np.zeros(m), 1.0], A_ub=np.c_[A.T, -np.ones(n)], b_ub=np.zeros(n),
                  A_eq=np.r_[np.ones(m), 0.0][None], b_eq=[1.0], bounds=[(0, None)] * m + [(None, None)])
    assert res.status == 0
    return float(res.fun)


def _duality_gap(A, x, y):
    return float(jnp.max(A.T @ x) - jnp.min(A @ y))


@pytest.mark.parametrize("entry", SADDLE_POINT_SOLVERS, ids=ids)
def test_matrix_game_gap_and_value_against_linprog(entry):
    A, x0, y0 = _game()
    out = jax.jit(lambda A: entry.make(_bilinear, **entry.options).run((x0, y0), A))(A)
    x, y = out.params
    gap = _duality_gap(A, x, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert gap <= entry.gap
    np.testing.assert_allclose(float(out.state.error), gap, rtol=1e-10)  # state.error is the exact gap
    # The value lies in [min_i (A y)_i, max_j (A^T x)_j], an interval of length gap.
    assert float(jnp.min(A @ y)) - 1e-12 <= _game_value() <= float(jnp.max(A.T @ x)) + 1e-12
    assert abs(float(x @ A @ y) - _game_value()) <= gap
    for z in (x, y):
        assert float(jnp.min(z)) >= 0 and abs(float(jnp.sum(z)) - 1) < 1e-12


def _errors(solver, z0, *args, steps):
    def body(carry, _):
        p, s = carry
        p, s = solver.update(p, s, *args)
        return (p, s), (s.error, s.weight_sum)

    _, (errors, weights) = jax.jit(lambda: jax.lax.scan(body, (z0, solver.init_state(z0, *args)), None,
                                                        length=steps))()
    return np.asarray(errors), np.asarray(weights)


def test_mirror_prox_gap_is_o_one_over_t():
    A, x0, y0 = _game()
    errors, weights = _errors(jl.MirrorProx(_bilinear, mirror="entropy", tol=0.0), (x0, y0), A, steps=4000)
    # Nemirovski (2004): gap(average) <= max_u KL(u, z0) / sum_t eta_t, KL to uniform <= log(n).
    bound = (np.log(20) + np.log(30)) / weights
    assert np.all(errors[10:] <= bound[10:] * (1 + 1e-9))
    assert np.all(weights[1000:] >= 0.4 * np.arange(1001, 4001))  # steps stay bounded below
    assert errors[3999] <= 0.35 * errors[999]  # ~1/T from T = 1000 to 4000 (measured 0.26)


def test_optimistic_mirror_descent_meets_the_target_with_its_certified_bound():
    # Issue 19 target: gap <= 1e-3 on the 20 x 30 game in 5000 iterations (the old default,
    # eta = min over secant estimates of 1/(2 L_t), ended at 1.75e-3).
    A, x0, y0 = _game()
    solver = jl.OptimisticMirrorDescent(_bilinear, mirror="entropy", tol=0.0)

    def body(carry, _):
        p, s = solver.update(*carry, A)
        return (p, s), (s.error, s.weight_sum, s.credit, s.stepsize)

    _, (errors, weights, credit, eta) = jax.jit(lambda: jax.lax.scan(
        body, ((x0, y0), solver.init_state((x0, y0), A)), None, length=5000))()
    errors, weights = np.asarray(errors), np.asarray(weights)
    assert errors[-1] <= 1e-3
    # The bound the step-size test certifies: gap <= max_u KL(u, z0) / sum_t eta_t.
    bound = (np.log(20) + np.log(30)) / weights
    assert np.all(errors[10:] <= bound[10:] * (1 + 1e-9))
    assert float(jnp.max(credit)) <= 1e-12
    # Never halved below 1/(6L), L = max |A_ij| (l1 -> l-infinity).
    assert float(jnp.min(eta)) >= 1 / (6 * float(jnp.max(jnp.abs(A))))


@pytest.mark.slow
def test_optimistic_mirror_descent_gap_decreases_like_one_over_t():
    A, x0, y0 = _game()
    errors, _ = _errors(jl.OptimisticMirrorDescent(_bilinear, mirror="entropy", tol=0.0), (x0, y0), A,
                        steps=4000)
    assert errors[3999] <= 0.35 * errors[999]
    assert errors[3999] <= 3e-3


@pytest.mark.parametrize("cls", [jl.MirrorProx, jl.OptimisticMirrorDescent])
def test_euclidean_unconstrained_saddle_matches_the_closed_form(cls):
    # f = 0.5 |x|^2 + x'Ay - 0.5 |y|^2 + b'x - c'y: saddle point solves x + A y + b = 0, A'x - y - c = 0.
    rng = np.random.default_rng(1)
    A = jnp.asarray(rng.standard_normal((4, 3)))
    b, c = jnp.asarray(rng.standard_normal(4)), jnp.asarray(rng.standard_normal(3))
    f = lambda x, y, A, b, c: 0.5 * x @ x + x @ A @ y - 0.5 * y @ y + b @ x - c @ y
    K = np.block([[np.eye(4), np.asarray(A)], [np.asarray(A).T, -np.eye(3)]])
    sol = np.linalg.solve(K, np.r_[-np.asarray(b), np.asarray(c)])
    # The average of the iterates (what is returned) approaches the saddle point like 1/T.
    out = cls(f, tol=1e-3, maxiter=20000, unroll=False).run((jnp.zeros(4), jnp.zeros(3)), A, b, c)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(jnp.concatenate(out.params), sol, atol=1e-3)
    np.testing.assert_allclose(jnp.concatenate(out.state.iterate), sol, atol=1e-8)  # the last iterate


def test_euclidean_game_with_simplex_projections():
    A, x0, y0 = _game(m=5, n=7, seed=2)
    proj = jl.projection.projection_simplex
    # state.error: the projected-gradient residuals of both players at the average.
    out = jl.MirrorProx(_bilinear, projection_x=proj, projection_y=proj, tol=3e-4, maxiter=20000,
                        unroll=False).run((x0, y0), A)
    assert int(out.state.status) == jl.Status.CONVERGED
    x, y = out.params
    assert _duality_gap(A, x, y) <= 3e-4
    assert abs(float(x @ A @ y) - _game_value(5, 7, 2)) <= 3e-4


@pytest.mark.parametrize("entry", SADDLE_POINT_SOLVERS, ids=ids)
def test_vmap_status_per_lane_and_equal_to_single_runs(entry):
    A, x0, y0 = _game(m=5, n=7, seed=3)
    make = lambda tol: entry.make(_bilinear, **{**entry.options, "tol": tol, "maxiter": 3000})
    As = jnp.stack([A, 2 * A, A.at[0, 0].set(jnp.nan)])
    tols = jnp.asarray([3e-3, 1e-2, 3e-3])
    out = jax.vmap(lambda a, t: make(t).run((x0, y0), a))(As, tols)
    S = jl.Status
    assert [int(s) for s in out.state.status] == [S.CONVERGED, S.CONVERGED, S.NONFINITE]
    assert all(bool(jnp.all(jnp.isfinite(p[2]))) for p in out.params)
    for i in range(2):
        single = make(float(tols[i])).run((x0, y0), As[i])
        for p, q in zip(out.params, single.params, strict=True):
            np.testing.assert_allclose(p[i], q, rtol=1e-9, atol=1e-12)
        assert int(out.state.iter_num[i]) == int(single.state.iter_num)


@pytest.mark.parametrize("entry", SADDLE_POINT_SOLVERS, ids=ids)
def test_float32_and_jit_equals_python_loop(entry):
    A, x0, y0 = _game(jnp.float32)
    out = entry.make(_bilinear, **{**entry.options, "tol": 1e-2}).run((x0, y0), A)
    assert int(out.state.status) == jl.Status.CONVERGED
    for leaf in jax.tree_util.tree_leaves(out):
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            assert jnp.asarray(leaf).dtype == jnp.float32
    assert _duality_gap(A, *out.params) <= 1e-2 + 1e-5
    opts = {**entry.options, "maxiter": 5}
    a = entry.make(_bilinear, **opts).run((x0, y0), A)
    b = entry.make(_bilinear, **opts, jit=False).run((x0, y0), A)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5)


def test_bad_input_names_the_argument():
    A, x0, y0 = _game()
    with pytest.raises(ValueError, match="mirror"):
        jl.MirrorProx(_bilinear, mirror="bregman")
    with pytest.raises(ValueError, match="projection_x"):
        jl.MirrorProx(_bilinear, mirror="entropy", projection_x=jl.projection.projection_simplex)
    with pytest.raises(TypeError, match="projection_y"):
        jl.OptimisticMirrorDescent(_bilinear, projection_y="simplex")
    with pytest.raises(ValueError, match="stepsize"):
        jl.MirrorProx(_bilinear, stepsize=-1.0)
    with pytest.raises(ValueError, match="init_params"):
        jl.MirrorProx(_bilinear).run(x0, A)
    with pytest.raises(ValueError, match="init_params"):
        jl.MirrorProx(_bilinear, mirror="entropy").run((x0.at[0].set(0.0), y0), A)
