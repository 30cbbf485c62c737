"""Least squares, roots and fixed points: maths, jaxopt/SciPy parity, implicit derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
import scipy.optimize

import jaxopt_lab as jl


def _exp_fit():
    t = jnp.linspace(0.0, 1.0, 30)
    y = 2.0 * jnp.exp(-1.3 * t) + 0.1 * jnp.sin(5.0 * t)
    res = lambda p, t, y: p[0] * jnp.exp(p[1] * t) - y
    return res, t, y


@pytest.mark.parametrize("name", ["GaussNewton", "LevenbergMarquardt"])
def test_nonlinear_least_squares_matches_scipy_and_jaxopt(name):
    res, t, y = _exp_fit()
    x0 = jnp.array([1.0, 0.0])
    out = getattr(jl, name)(res, tol=1e-10, maxiter=100).run(x0, t, y)
    ref = getattr(jaxopt, name)(res, tol=1e-10, maxiter=100).run(x0, t, y)
    sp = scipy.optimize.least_squares(lambda p: np.asarray(res(jnp.asarray(p), t, y)), np.asarray(x0),
                                      xtol=1e-14, ftol=1e-14, gtol=1e-14)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, sp.x, rtol=1e-8)
    np.testing.assert_allclose(out.params, ref.params, rtol=1e-8)


@pytest.mark.slow
def test_levenberg_marquardt_rosenbrock_residuals_and_dense_solvers():
    res = lambda x: jnp.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])
    x0 = jnp.array([-1.2, 1.0, -1.2, 1.0])
    for solver in (jl.linear_solve.solve_cg, "cholesky", "inv"):
        out = jl.LevenbergMarquardt(res, tol=1e-10, maxiter=500, solver=solver).run(x0)
        assert int(out.state.status) == jl.Status.CONVERGED
        np.testing.assert_allclose(out.params, jnp.ones(4), atol=1e-8)
    jac = lambda x: jax.jacfwd(res)(x)
    out = jl.LevenbergMarquardt(res, tol=1e-10, maxiter=500, jac_fun=jac).run(x0)
    np.testing.assert_allclose(out.params, jnp.ones(4), atol=1e-8)


def test_linear_least_squares_one_gauss_newton_step():
    rng = np.random.default_rng(0)
    A, b = jnp.asarray(rng.standard_normal((20, 5))), jnp.asarray(rng.standard_normal(20))
    out = jl.GaussNewton(lambda x: A @ x - b, tol=1e-9).run(jnp.zeros(5))
    np.testing.assert_allclose(out.params, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-10)
    assert int(out.state.iter_num) == 1


@pytest.mark.parametrize("name", ["GaussNewton", "LevenbergMarquardt"])
def test_least_squares_implicit_derivative_vs_finite_differences(name):
    res, t, y = _exp_fit()
    solver = getattr(jl, name)(res, tol=1e-12, maxiter=200)
    f = lambda y: jnp.sum(solver.run(jnp.array([1.0, 0.0]), t, y).params ** 2)
    v = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape))
    # eps large enough that the solver's own tolerance does not pollute the difference.
    eps = 1e-4
    fd = (f(y + eps * v) - f(y - eps * v)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(jax.grad(f)(y), v), fd, rtol=1e-6)
    np.testing.assert_allclose(jax.jvp(f, (y,), (v,))[1], fd, rtol=1e-6)


def _contraction():
    return lambda x, c: 0.5 * jnp.cos(x) + c


@pytest.mark.parametrize("name", ["FixedPointIteration", "AndersonAcceleration"])
def test_fixed_point_matches_jaxopt_and_implicit_derivative(name):
    T = _contraction()
    c = jnp.arange(3.0)
    out = getattr(jl, name)(T, tol=1e-12, maxiter=300).run(jnp.zeros(3), c)
    ref = getattr(jaxopt, name)(T, tol=1e-12, maxiter=300).run(jnp.zeros(3), c)
    np.testing.assert_allclose(out.params, ref.params, atol=1e-10)
    np.testing.assert_allclose(T(out.params, c), out.params, atol=1e-11)
    # x = 0.5 cos x + c  =>  dx/dc = 1 / (1 + 0.5 sin x), elementwise.
    expected = 1.0 / (1.0 + 0.5 * jnp.sin(out.params))
    sol = lambda c: getattr(jl, name)(T, tol=1e-12, maxiter=300).run(jnp.zeros(3), c).params
    np.testing.assert_allclose(jnp.diag(jax.jacrev(sol)(c)), expected, rtol=1e-8)
    np.testing.assert_allclose(jax.jvp(sol, (c,), (jnp.ones(3),))[1], expected, rtol=1e-8)


def test_anderson_is_faster_than_plain_iteration_on_a_linear_map():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    M = jnp.asarray((q * np.linspace(0.0, 0.98, 20)) @ q.T)  # spectral radius 0.98
    b = jnp.asarray(rng.standard_normal(20))
    T = lambda x: M @ x + b
    fp = jl.FixedPointIteration(T, tol=1e-8, maxiter=2000).run(jnp.zeros(20))
    aa = jl.AndersonAcceleration(T, tol=1e-8, maxiter=2000, history_size=10).run(jnp.zeros(20))
    x_star = jnp.linalg.solve(jnp.eye(20) - M, b)
    np.testing.assert_allclose(aa.params, x_star, atol=1e-7)
    assert int(aa.state.iter_num) < int(fp.state.iter_num) / 3


def test_anderson_wrapper_accelerates_gradient_descent():
    rng = np.random.default_rng(0)
    A, b = jnp.asarray(rng.standard_normal((20, 5))), jnp.asarray(rng.standard_normal(20))
    fun = lambda x, A, b: 0.5 * jnp.sum((A @ x - b) ** 2)
    gd = jl.GradientDescent(fun, stepsize=0.01, acceleration=False, maxiter=2000, tol=1e-8)
    plain = gd.run(jnp.zeros(5), A, b)
    wrapped = jl.AndersonWrapper(gd).run(jnp.zeros(5), A, b)
    np.testing.assert_allclose(wrapped.params, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-8)
    assert int(wrapped.state.iter_num) < int(plain.state.iter_num) / 3


def test_broyden_matches_scipy_root_and_implicit_derivative():
    F = lambda x, c: x ** 3 + x - c + 0.1 * jnp.roll(x, 1)
    c = jnp.array([0.5, 1.0, 2.0])
    out = jl.Broyden(F, tol=1e-12, maxiter=200).run(jnp.zeros(3), c)
    sp = scipy.optimize.root(lambda x: np.asarray(F(jnp.asarray(x), c)), np.zeros(3), tol=1e-14)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, sp.x, atol=1e-10)
    sol = lambda c: jl.Broyden(F, tol=1e-12, maxiter=200).run(jnp.zeros(3), c).params
    J = jax.jacfwd(F)(out.params, c)
    expected = jnp.linalg.inv(J)  # dF/dc = -I  =>  dx/dc = J^{-1}
    np.testing.assert_allclose(jax.jacrev(sol)(c), expected, atol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(sol)(c), expected, atol=1e-7)


def test_bisection_root_jit_vmap_and_derivative():
    F = lambda x, c: x ** 3 + x - c
    solver = jl.Bisection(F, -3.0, 3.0, tol=1e-12, maxiter=80)
    out = solver.run(None, 2.0)
    np.testing.assert_allclose(out.params, 1.0, atol=1e-10)
    ref = jaxopt.Bisection(F, -3.0, 3.0, tol=1e-12, maxiter=80).run(None, 2.0)
    np.testing.assert_allclose(out.params, ref.params, atol=1e-10)
    cs = jnp.array([0.0, 2.0, 10.0])
    roots = jax.vmap(lambda c: solver.run(None, c).params)(cs)
    np.testing.assert_allclose(F(roots, cs), 0.0, atol=1e-9)
    # dx/dc = 1 / (3 x^2 + 1)
    np.testing.assert_allclose(jax.grad(lambda c: solver.run(None, c).params)(2.0), 0.25, rtol=1e-8)
    np.testing.assert_allclose(jax.jvp(lambda c: solver.run(None, c).params, (2.0,), (1.0,))[1], 0.25,
                               rtol=1e-8)
    dec = jl.Bisection(lambda x: 1.0 - x, 0.0, 3.0, tol=1e-12, maxiter=80).run()
    np.testing.assert_allclose(dec.params, 1.0, atol=1e-10)


def test_bisection_bad_bracket():
    F = lambda x: x ** 2 + 1.0
    with pytest.raises(ValueError, match="bracket"):
        jl.Bisection(F, -1.0, 1.0).run()
    with pytest.raises(ValueError, match="lower"):
        jl.Bisection(F, 1.0, -1.0)
    out = jax.jit(lambda lo: jl.Bisection(F, lo, 1.0).run())(-1.0)
    assert int(out.state.status) == jl.Status.INFEASIBLE


def test_bad_input_errors():
    with pytest.raises(TypeError, match="residual_fun"):
        jl.GaussNewton(3.0)
    with pytest.raises(ValueError, match="damping_parameter"):
        jl.LevenbergMarquardt(lambda x: x, damping_parameter=-1.0)
    with pytest.raises(ValueError, match="stop_criterion"):
        jl.LevenbergMarquardt(lambda x: x, stop_criterion="madsen-nielsen")
    with pytest.raises(ValueError, match="history_size"):
        jl.AndersonAcceleration(lambda x: x, history_size=0)
    with pytest.raises(TypeError, match="solver"):
        jl.AndersonWrapper(lambda x: x)


def test_iterative_refinement_solves_ill_conditioned_system():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = jnp.asarray((q * np.logspace(0, 6, 8)) @ q.T)
    b = jnp.asarray(rng.standard_normal(8))
    x = jl.linear_solve.solve_iterative_refinement(lambda v: A @ v, b, ridge=1e-3,
                                                   solve=jl.linear_solve.solve_cg, maxiter=50)
    np.testing.assert_allclose(A @ x, b, atol=1e-8)
