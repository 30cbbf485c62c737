"""jaxopt drop-in: LevenbergMarquardt(geodesic=True) and GaussNewton / LevenbergMarquardt
answers on jaxopt's typical problems, side by side with jaxopt 0.8.5."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

import jaxopt_lab as jl


def rosenbrock(x):
    """Rosenbrock as residuals: a narrow curved valley, where geodesic acceleration helps."""
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosenbrock_jac(x):
    return jnp.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def exp_fit(p, t, y):
    return p[0] * jnp.exp(-p[1] * t) + p[2] - y


def double_exponential(x, x_data, y_data):
    """jaxopt's least-squares test model."""
    return x[0] * jnp.exp(-x[2] * x_data) + x[1] * jnp.exp(-x[3] * x_data) - y_data


def _exp_data(dtype=jnp.float64):
    t = jnp.linspace(0.0, 4.0, 40, dtype=dtype)
    return t, (3.0 * jnp.exp(-0.7 * t) + 0.5).astype(dtype)


def _double_exp_data(dtype=jnp.float64):
    x = jnp.linspace(0.0, 3.0, 50, dtype=dtype)
    y = (2.0 * jnp.exp(-1.5 * x) + 0.6 * jnp.exp(-0.3 * x)
         + 0.01 * jnp.sin(7.0 * x)).astype(dtype)
    return x, y


def _jaxopt_lm(res, solver, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return jaxopt.LevenbergMarquardt(res, solver=solver, materialize_jac=isinstance(solver, str), **kw)


def test_geodesic_iterates_equal_jaxopt_dense():
    x0 = jnp.array([-1.2, 1.0])
    ours = jl.LevenbergMarquardt(rosenbrock, geodesic=True, solver="cholesky")
    ref = _jaxopt_lm(rosenbrock, "cholesky", geodesic=True)
    p, s, q, r = x0, ours.init_state(x0), x0, ref.init_state(x0)
    for _ in range(8):  # accepted and rejected steps (large ||a|| / ||v|| early on)
        p, s = ours.update(p, s)
        q, r = ref.update(q, r)
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(s.damping_factor, r.damping_factor, rtol=1e-10)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_geodesic_exponential_fit_equals_jaxopt(solver):
    t, y = _exp_data()
    x0 = jnp.array([1.0, 0.1, 0.0])
    lin = "cholesky" if solver == "cholesky" else None
    ours = jl.LevenbergMarquardt(exp_fit, geodesic=True, tol=1e-8, maxiter=100,
                                 solver=lin or jl.linear_solve.solve_cg).run(x0, t, y)
    ref = _jaxopt_lm(exp_fit, lin or jaxopt.linear_solve.solve_cg, geodesic=True, tol=1e-8,
                     maxiter=100).run(x0, t, y)
    assert int(ours.state.status) == jl.Status.CONVERGED
    assert int(ours.state.iter_num) == int(ref.state.iter_num)
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-8)
    np.testing.assert_allclose(ours.params, [3.0, 0.7, 0.5], rtol=1e-7)


@pytest.mark.parametrize("solver", ["cg", "cholesky", "jac_fun"])
def test_geodesic_reduces_iterations_in_a_curved_valley(solver):
    x0 = jnp.array([-1.2, 1.0])
    kw = {"cg": {}, "cholesky": {"solver": "cholesky"}, "jac_fun": {"jac_fun": rosenbrock_jac}}[solver]
    plain = jl.LevenbergMarquardt(rosenbrock, tol=1e-10, maxiter=200, **kw).run(x0)
    geo = jl.LevenbergMarquardt(rosenbrock, geodesic=True, tol=1e-10, maxiter=200, **kw).run(x0)
    ref = _jaxopt_lm(rosenbrock, "cholesky", geodesic=True, tol=1e-10, maxiter=200).run(x0)
    for out in (plain, geo):
        assert int(out.state.status) == jl.Status.CONVERGED
        np.testing.assert_allclose(out.params, [1.0, 1.0], atol=1e-8)
    np.testing.assert_allclose(geo.params, ref.params, atol=1e-8)
    assert int(geo.state.iter_num) < int(plain.state.iter_num)


def test_geodesic_float32_and_pytree_and_options():
    t, y = _exp_data(jnp.float32)
    x0 = {"a": jnp.array([1.0, 0.1], jnp.float32), "c": jnp.asarray(0.0, jnp.float32)}
    res = lambda p, t, y: exp_fit(jnp.concatenate([p["a"], p["c"][None]]), t, y)
    out = jl.LevenbergMarquardt(res, geodesic=True, tol=1e-4, maxiter=100).run(x0, t, y)
    assert out.params["a"].dtype == jnp.float32
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params["a"], [3.0, 0.7], rtol=1e-3)
    # jaxopt's option name; a traced threshold does not recompile.
    solver = jl.LevenbergMarquardt(exp_fit, geodesic=True, contribution_ratio_threshold=0.5)
    assert jax.tree_util.tree_leaves(solver)
    with pytest.raises(ValueError, match="contribution_ratio_threshold"):
        jl.LevenbergMarquardt(exp_fit, geodesic=True, contribution_ratio_threshold=-1.0)


def test_geodesic_implicit_derivative_matches_finite_differences():
    t, y = _exp_data()
    x0 = jnp.array([1.0, 0.1, 0.0])
    lm = jl.LevenbergMarquardt(exp_fit, geodesic=True, tol=1e-10, maxiter=100)
    solve = lambda y: lm.run(x0, t, y).params
    v = jnp.sin(jnp.arange(40.0))
    jvp = jax.jvp(solve, (y,), (v,))[1]
    eps = 1e-5
    fd = (solve(y + eps * v) - solve(y - eps * v)) / (2 * eps)
    np.testing.assert_allclose(jvp, fd, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ same numbers (item 9)


@pytest.mark.parametrize("name", ["GaussNewton", "LevenbergMarquardt"])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_double_exponential_fit_equals_jaxopt(name, dtype):
    # jaxopt's LM fails on float32 data with x64 enabled (a float64 CG vector meets a float32
    # JVP): float32 runs with x64 off, as a float32 jaxopt user has it.
    with jax.enable_x64(dtype == jnp.float64):
        x, y = _double_exp_data(dtype)
        x0 = jnp.array([1.0, 1.0, 1.0, 0.1], dtype)
        tol = 1e-8 if dtype == jnp.float64 else 1e-3
        ours = getattr(jl, name)(double_exponential, tol=tol, maxiter=100).run(x0, x, y)
        ref = getattr(jaxopt, name)(double_exponential, tol=tol, maxiter=100).run(x0, x, y)
        grad = jax.grad(lambda p: 0.5 * jnp.sum(double_exponential(p, x, y) ** 2))
        ref_err, ours_err = jnp.linalg.norm(grad(ref.params)), jnp.linalg.norm(grad(ours.params))
    assert ours.params.dtype == dtype
    if dtype == jnp.float64:
        np.testing.assert_allclose(ours.params, ref.params, rtol=1e-6)
        assert ours_err <= max(ref_err, 1e-8)
    else:
        np.testing.assert_allclose(ours.params, ref.params, rtol=5e-3)
        assert ours_err <= max(2 * ref_err, 1e-3)


@pytest.mark.parametrize("solver", ["cholesky", "inv"])
def test_levenberg_marquardt_dense_solvers_equal_jaxopt(solver):
    x, y = _double_exp_data()
    x0 = jnp.array([1.0, 1.0, 1.0, 0.1])
    ours = jl.LevenbergMarquardt(double_exponential, solver=solver, tol=1e-9, maxiter=100).run(x0, x, y)
    ref = _jaxopt_lm(double_exponential, solver, tol=1e-9, maxiter=100).run(x0, x, y)
    assert int(ours.state.iter_num) == int(ref.state.iter_num)
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-8)
