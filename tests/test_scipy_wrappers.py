"""SciPy wrappers: solutions vs direct SciPy, implicit derivatives vs closed forms / FD."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as sopt

import jaxopt_lab as jl
from tests import problems as P

LAM = 1.5


def _ridge():
    A, b = P.ridge_data()
    return A, b, jnp.zeros(A.shape[1])


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Newton-CG"])
def test_minimize_matches_scipy_and_ridge_derivatives(method):
    A, b, x0 = _ridge()
    solver = jl.ScipyMinimize(fun=P.ridge_fun, method=method, tol=1e-12)
    out = solver.run(x0, LAM, A, b)
    # The reference gets what the wrapper hands SciPy: jitted (value, gradient) and, for
    # Newton-CG, exact Hessian-vector products (without hessp SciPy differences gradients,
    # and at tol=1e-12 its final verdict then depends on the last bits of those products).
    vg = jax.jit(jax.value_and_grad(P.ridge_fun))
    hvp = jax.jit(lambda x, v: jax.jvp(lambda y: jax.grad(P.ridge_fun)(y, LAM, A, b), (x,), (v,))[1])
    hessp = (lambda x, v: np.asarray(hvp(jnp.asarray(x), jnp.asarray(v)))) if method == "Newton-CG" else None
    ref = sopt.minimize(lambda x: tuple(map(np.asarray, vg(jnp.asarray(x), LAM, A, b))), np.zeros(6),
                        jac=True, hessp=hessp, method=method, tol=1e-12)
    np.testing.assert_allclose(out.params, ref.x, atol=1e-7)
    np.testing.assert_allclose(out.params, P.ridge_solution(LAM, A, b), atol=1e-7)
    # CONVERGED only when our own error (gradient norm at the returned params) is <= tol,
    # whatever SciPy's verdict (which for Newton-CG depends on the SciPy version; L-BFGS-B
    # reports success on its relative-reduction test with a gradient far above 1e-12).
    status = int(out.state.status)
    assert (status == jl.Status.CONVERGED) == (float(out.state.error) <= 1e-12)
    if status != jl.Status.CONVERGED:
        assert status == jl.Status.STALLED, jl.status_name(status)
    assert int(out.state.scipy_status) == ref.status
    np.testing.assert_allclose(out.state.value, ref.fun, rtol=1e-10)
    assert float(out.state.error) < 1e-5
    sol = lambda lam: solver.run(x0, lam, A, b).params
    expected = P.ridge_solution_derivative(LAM, A, b)
    np.testing.assert_allclose(jax.jacrev(sol)(LAM), expected, atol=1e-7)
    np.testing.assert_allclose(jax.jvp(sol, (LAM,), (1.0,))[1], expected, atol=1e-7)


def test_minimize_pytree_params_and_data_gradient():
    A, b, x0 = _ridge()
    tree_fun = P.tree_version(P.ridge_fun)
    solver = jl.ScipyMinimize(fun=tree_fun, method="BFGS", tol=1e-12)
    out = solver.run(P.to_tree(x0), LAM, A, b)
    np.testing.assert_allclose(P.from_tree(out.params), P.ridge_solution(LAM, A, b), atol=1e-7)
    loss = lambda b_: jnp.sum(P.from_tree(solver.run(P.to_tree(x0), LAM, A, b_).params) ** 2)
    closed = lambda b_: jnp.sum(P.ridge_solution(LAM, A, b_) ** 2)
    np.testing.assert_allclose(jax.grad(loss)(b), jax.grad(closed)(b), atol=1e-7)


def test_minimize_has_aux_and_value_and_grad():
    A, b, x0 = _ridge()
    aux_fun = lambda x, lam: (P.ridge_fun(x, lam, A, b), {"norm": jnp.sum(x ** 2)})
    out = jl.ScipyMinimize(fun=aux_fun, has_aux=True, method="BFGS", tol=1e-12).run(x0, LAM)
    np.testing.assert_allclose(out.params, P.ridge_solution(LAM, A, b), atol=1e-7)
    vg = jax.value_and_grad(P.ridge_fun)
    out = jl.ScipyMinimize(fun=vg, value_and_grad=True, method="L-BFGS-B", tol=1e-12).run(x0, LAM, A, b)
    np.testing.assert_allclose(out.params, P.ridge_solution(LAM, A, b), atol=1e-6)


def test_minimize_maxiter_status_and_tracer_error():
    fun, x0, _ = P.rosenbrock(4)
    out = jl.ScipyMinimize(fun=fun, method="BFGS", maxiter=3).run(x0)
    assert int(out.state.status) == jl.Status.MAX_ITER
    assert int(out.state.iter_num) == 3
    with pytest.raises(TypeError, match="jax.jit"):
        jax.jit(lambda x: jl.ScipyMinimize(fun=fun).run(x).params)(x0)
    with pytest.raises(TypeError, match="fun"):
        jl.ScipyMinimize(fun=3.0)


def test_bounded_minimize_active_bounds_and_derivatives():
    A, b, x0 = _ridge()
    ridge = P.ridge_solution(LAM, A, b)
    lower, upper = -0.05 * jnp.ones(6), 0.05 * jnp.ones(6)
    solver = jl.ScipyBoundedMinimize(fun=P.ridge_fun, tol=1e-14, options={"gtol": 1e-12})
    out = solver.run(x0, (lower, upper), LAM, A, b)
    ref = sopt.minimize(lambda x: float(P.ridge_fun(x, LAM, A, b)), np.zeros(6), method="L-BFGS-B",
                        jac=lambda x: np.asarray(jax.grad(P.ridge_fun)(x, LAM, A, b)),
                        bounds=sopt.Bounds(-0.05, 0.05), tol=1e-14, options={"gtol": 1e-12})
    np.testing.assert_allclose(out.params, ref.x, atol=1e-7)
    active = np.abs(np.abs(np.asarray(out.params)) - 0.05) < 1e-9
    assert active.any() and (~active).any(), (ridge, out.params)
    # Derivative in lam: zero on the active set; on the free set, the ridge derivative
    # restricted to the free coordinates (central differences of the bounded solve).
    sol = lambda lam: solver.run(x0, (lower, upper), lam, A, b).params
    eps = 1e-5
    fd = (sol(LAM + eps) - sol(LAM - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.jacrev(sol)(LAM), fd, atol=1e-5)
    np.testing.assert_allclose(jax.jvp(sol, (LAM,), (1.0,))[1], fd, atol=1e-5)
    np.testing.assert_allclose(jax.jacrev(sol)(LAM)[active], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="bounds"):
        solver.run(x0, (upper, lower), LAM, A, b)


def test_least_squares_matches_scipy_and_derivatives():
    A, b, x0 = _ridge()
    residual = lambda x, lam, A, b: jnp.concatenate([A @ x - b, jnp.sqrt(lam) * x])
    solver = jl.ScipyLeastSquares(fun=residual, options={"xtol": 1e-14, "ftol": 1e-14, "gtol": 1e-14})
    out = solver.run(x0, LAM, A, b)
    np.testing.assert_allclose(out.params, P.ridge_solution(LAM, A, b), atol=1e-8)
    assert int(out.state.status) == jl.Status.CONVERGED
    sol = lambda lam: solver.run(x0, lam, A, b).params
    expected = P.ridge_solution_derivative(LAM, A, b)
    np.testing.assert_allclose(jax.jacrev(sol)(LAM), expected, atol=1e-7)
    np.testing.assert_allclose(jax.jvp(sol, (LAM,), (1.0,))[1], expected, atol=1e-7)


def test_least_squares_robust_loss_vs_scipy():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 3, 30)
    y = 2.0 * np.exp(-1.3 * t) + 0.02 * rng.standard_normal(30)
    y[::7] += 1.0  # outliers
    res = lambda p, t, y: p[0] * jnp.exp(-p[1] * t) - y
    opts = {"f_scale": 0.1, "xtol": 1e-14, "ftol": 1e-14, "gtol": 1e-14}
    out = jl.ScipyLeastSquares(fun=res, loss="soft_l1", options=opts).run(jnp.ones(2), t, y)
    ref = sopt.least_squares(lambda p: np.asarray(res(p, t, y)), np.ones(2), loss="soft_l1", f_scale=0.1,
                             xtol=1e-14, ftol=1e-14, gtol=1e-14)
    np.testing.assert_allclose(out.params, ref.x, atol=1e-7)
    np.testing.assert_allclose(out.state.fun_val, ref.cost, rtol=1e-8)
    assert float(out.state.error) < 1e-6  # gradient of the robust cost vanishes
    with pytest.raises(ValueError, match="loss"):
        jl.ScipyLeastSquares(fun=res, loss="l7")


def test_bounded_least_squares_nnls():
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.standard_normal((20, 5)))
    b = jnp.asarray(rng.standard_normal(20))
    solver = jl.ScipyBoundedLeastSquares(fun=lambda x, A, b: A @ x - b,
                                         options={"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15})
    out = solver.run(jnp.ones(5), (0.0, jnp.inf), A, b)
    ref, _ = sopt.nnls(np.asarray(A), np.asarray(b))
    np.testing.assert_allclose(out.params, ref, atol=1e-7)
    eps = 1e-6
    sol = lambda b_: solver.run(jnp.ones(5), (0.0, jnp.inf), A, b_).params
    v = jnp.asarray(rng.standard_normal(20))
    fd = (sol(b + eps * v) - sol(b - eps * v)) / (2 * eps)
    np.testing.assert_allclose(jax.jvp(sol, (b,), (v,))[1], fd, atol=1e-5)


def test_root_finding_vs_scipy_and_derivatives():
    A, b, x0 = _ridge()
    F = lambda x, lam: jax.grad(P.ridge_fun)(x, lam, A, b)  # root = ridge solution
    solver = jl.ScipyRootFinding(optimality_fun=F, tol=1e-12)
    out = solver.run(x0, LAM)
    np.testing.assert_allclose(out.params, P.ridge_solution(LAM, A, b), atol=1e-8)
    assert int(out.state.status) == jl.Status.CONVERGED
    sol = lambda lam: solver.run(x0, lam).params
    expected = P.ridge_solution_derivative(LAM, A, b)
    np.testing.assert_allclose(jax.jacrev(sol)(LAM), expected, atol=1e-7)
    np.testing.assert_allclose(jax.jvp(sol, (LAM,), (1.0,))[1], expected, atol=1e-7)
    # A nonlinear system: x^3 + x = theta, dx/dtheta = 1 / (3 x^2 + 1).
    G = lambda x, th: x ** 3 + x - th
    s2 = jl.ScipyRootFinding(optimality_fun=G, method="hybr", tol=1e-12)
    th = jnp.asarray([0.5, 2.0, -3.0])
    x = s2.run(jnp.zeros(3), th).params
    np.testing.assert_allclose(G(x, th), 0.0, atol=1e-10)
    jac = jax.jacrev(lambda t: s2.run(jnp.zeros(3), t).params)(th)
    np.testing.assert_allclose(jac, jnp.diag(1.0 / (3 * x ** 2 + 1)), atol=1e-8)
    with pytest.raises(TypeError, match="optimality_fun"):
        jl.ScipyRootFinding(optimality_fun=None)
