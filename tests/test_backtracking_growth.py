"""Backtracking that grows its step in GradientDescent / ProximalGradient (``stepsize <= 0``):
iteration counts near jaxopt 0.8.5's on logistic regression with the same answers, tight
tolerances still reached (a grow-every-iteration rule ends MAX_ITER there), the strict test
of a grown trial, the growth rule and FISTA's momentum estimate under growing steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab.problems.logreg import logistic_data
from jaxopt_lab.solvers.linesearch import functions as lsf

L1 = 1e-2


def _f(w, X, y):
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5e-3 * jnp.sum(w ** 2)


@pytest.fixture(scope="module")
def data():
    # Features scaled by 1/sqrt(d): L ~ 1e-2, so the initial step 1 is ~100 times too small.
    return logistic_data(300, 30, seed=1, dtype=jnp.float64)


def _solve(lib, X, y, l1, accel, tol, dtype=jnp.float64):
    X, y = X.astype(dtype), y.astype(dtype)
    w0 = jnp.zeros(X.shape[1], dtype)
    if l1 is None:
        return lib.GradientDescent(_f, tol=tol, maxiter=3000, acceleration=accel).run(w0, X, y)
    return lib.ProximalGradient(_f, lib.prox.prox_lasso, tol=tol, maxiter=3000,
                                acceleration=accel).run(w0, l1, X, y)


def _opt_error(w, X, y, l1):
    g = jax.grad(_f)(w, X, y)
    if l1 is None:
        return float(jnp.linalg.norm(g))
    return float(jnp.linalg.norm(w - jl.prox.prox_lasso(w - g, l1, 1.0)))


@pytest.mark.slow  # ~15 s: eight solves compiled, ours and jaxopt's
@pytest.mark.parametrize("l1", [None, L1])
def test_logreg_iterations_within_jaxopt_and_same_solution(data, l1):
    X, y = data
    for accel in (True, False):
        ours, ref = _solve(jl, X, y, l1, accel, 1e-10), _solve(jaxopt, X, y, l1, accel, 1e-10)
        assert int(ours.state.status) == jl.Status.CONVERGED
        assert _opt_error(ours.params, X, y, l1) <= 1e-10
        np.testing.assert_allclose(ours.params, ref.params, atol=1e-6)
        # Never-growing backtracking took 10-100x jaxopt's iterations here (steps stuck at 1).
        assert int(ours.state.iter_num) <= 1.5 * int(ref.state.iter_num), (
            accel, int(ours.state.iter_num), int(ref.state.iter_num))
        assert float(ours.state.stepsize) > 8.0  # the step grew from 1 towards 1 / L


@pytest.mark.parametrize("accel", [False, True])
def test_tight_tolerance_still_converges_float64(data, accel):
    # Regression: starting every search at t / decrease_factor (trials accepted on rounding
    # slack near the minimizer, the step doubling on) ends MAX_ITER at 2000 iterations here,
    # the gradient norm stuck near 1e-9; never growing needs > 2000 iterations too.
    X, y = data
    out = jl.GradientDescent(_f, tol=1e-10, maxiter=2000, acceleration=accel).run(
        jnp.zeros(X.shape[1]), X, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    assert _opt_error(out.params, X, y, None) <= 1e-10
    assert int(out.state.iter_num) < 200


@pytest.mark.parametrize("l1", [None, L1])
def test_default_tolerance_float32(data, l1):
    X, y = data
    ref = _solve(jl, X, y, l1, True, 1e-10)
    for accel in (True, False):
        out = _solve(jl, X, y, l1, accel, 1e-3, jnp.float32)
        assert out.params.dtype == jnp.float32
        assert int(out.state.status) == jl.Status.CONVERGED
        assert _opt_error(out.params.astype(jnp.float64), X, y, l1) <= 2e-3
        assert int(out.state.iter_num) <= 40
        # A gradient-mapping error of 1e-3 with strong convexity 1e-3 leaves ~1 in x.
        def objective(w):
            w = w.astype(jnp.float64)
            return float(_f(w, X, y) + (0.0 if l1 is None else l1 * jnp.sum(jnp.abs(w))))
        assert objective(out.params) - objective(ref.params) <= 1e-3


def test_grown_trial_rejected_on_rounding_slack_alone():
    # f(x) = 1 + 0.5 x^2 near x = 1e-9: every trial's change of f is below its rounding.
    # The lenient test accepts the (over-long, t = 4 > 2 / f'') first trial; the strict one
    # falls back to the next trial.
    fun = lambda x: ((1.0 + 0.5 * jnp.sum(x ** 2), None), None)
    x = jnp.asarray([1e-9])
    f0, g = 1.0 + 0.5e-18, x
    step_fn = lambda t: x - t * g
    args = (fun, x, jnp.asarray(f0), g, None, 4.0)
    lenient = lsf.backtracking(*args, step_fn=step_fn)
    strict = lsf.backtracking(*args, step_fn=step_fn, strict_first=True)
    assert float(lenient.stepsize) == 4.0 and int(lenient.num_evals) == 1
    assert float(strict.stepsize) == 2.0 and int(strict.num_evals) == 2
    # Above rounding the strict test decides on f: t = 0.8 passes (t f'' <= 1), t = 1.5
    # fails (the curvature term 0.5 (t x)^2 exceeds q = t x^2 / 2) and the search goes on.
    x = jnp.asarray([1e-3])
    f0 = jnp.asarray(1.0 + 0.5e-6)
    step_fn = lambda t: x - t * x
    ok = lsf.backtracking(fun, x, f0, x, None, 0.8, step_fn=step_fn, strict_first=True)
    assert float(ok.stepsize) == 0.8 and int(ok.num_evals) == 1
    bad = lsf.backtracking(fun, x, f0, x, None, 1.5, step_fn=step_fn, strict_first=True)
    assert float(bad.stepsize) == 0.75 and int(bad.num_evals) == 2


def test_growth_rule_and_momentum_estimate(data):
    # Along a run: the next trial is t / decrease_factor exactly when the test was decided
    # above rounding and the curvature along the step predicts the grown step passes, else
    # t; the momentum keeps s_{k+1} (t_{k+1}^2 - t_{k+1}) <= s_k t_k^2 (equality up to the
    # backtracking below the first trial).
    X, y = data
    solver = jl.GradientDescent(_f, maxiter=100, tol=0.0, acceleration=True)
    w, st = jnp.zeros(X.shape[1]), solver.init_state(jnp.zeros(X.shape[1]), X, y)
    upd = jax.jit(lambda w, st: solver.update(w, st, X, y))
    grew, prev = 0, None
    for _ in range(40):
        y_k, t_k = st.velocity, float(st.t)
        w_new, st_new = upd(w, st)
        s_k = float(st_new.stepsize)
        g = jax.grad(_f)(y_k, X, y)
        d = w_new - y_k
        np.testing.assert_allclose(d, -s_k * g, rtol=1e-12, atol=1e-15)
        f_y, f_x = float(_f(y_k, X, y)), float(_f(w_new, X, y))
        q = float(jnp.vdot(d, d)) / (2 * s_k)
        curv = f_x - f_y - float(jnp.vdot(g, d))
        floor = 100 * np.finfo(np.float64).eps * abs(f_y)
        # With momentum a rejected grown trial stops growth (no restarts in GradientDescent).
        failed = int(st.iter_num) > 0 and float(st.next_stepsize) > float(st.stepsize) > 0 and \
            s_k < float(st.next_stepsize)
        assert bool(st_new.can_grow) == (bool(st.can_grow) and not failed)
        expect_grow = bool(st_new.can_grow) and q > floor and curv <= 0.5 * q
        if abs(curv - 0.5 * q) > 1e-6 * q and abs(q - floor) > 1e-6 * floor:  # not a rounding tie
            assert float(st_new.next_stepsize) == (2 * s_k if expect_grow else s_k)
        assert float(st_new.next_stepsize) in (s_k, 2 * s_k)
        grew += expect_grow
        # t_{k+1}^2 - t_{k+1} = (s_k / s0_{k+1}) t_k^2 with s0_{k+1} the next first trial ...
        t_next, s0 = float(st_new.t), float(st_new.next_stepsize)
        np.testing.assert_allclose(t_next ** 2 - t_next, s_k / s0 * t_k ** 2, rtol=1e-10)
        # ... so the accepted s_k <= s0_k keeps s_k (t_k^2 - t_k) <= s_{k-1} t_{k-1}^2.
        if prev is not None:
            assert s_k * (t_k ** 2 - t_k) <= prev[0] * prev[1] ** 2 * (1 + 1e-12)
        prev = (s_k, t_k)
        w, st = w_new, st_new
    assert grew >= 5
