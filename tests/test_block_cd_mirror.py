"""BlockCoordinateDescent vs scikit-learn / SciPy, MirrorDescent vs jaxopt and projected gradient."""

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
import scipy.optimize
from sklearn.linear_model import Lasso

import jaxopt_lab as jl
from jaxopt_lab.solvers.first_order.block_cd import BlockCoordinateDescent
from jaxopt_lab.solvers.first_order.mirror_descent import MirrorDescent, projection_grad_simplex_kl


def _data(n=30, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ (rng.normal(size=d) * (np.arange(d) % 2)) + 0.1 * rng.normal(size=n)
    return jnp.asarray(X), jnp.asarray(y)


def _lsq(w, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2)


@pytest.mark.parametrize("selection", ["cyclic", "greedy"])
def test_lasso_matches_sklearn(selection):
    X, y = _data()
    lam = 0.1
    ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y).coef_
    solver = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection=selection, tol=1e-10, maxiter=2000)
    sol = solver.run(jnp.zeros(X.shape[1]), lam, X, y)
    assert int(sol.state.status) == int(jl.Status.CONVERGED)
    np.testing.assert_allclose(sol.params, ref, atol=1e-6)
    assert np.sum(np.asarray(sol.params) == 0) > 0  # lambda large enough for exact zeros


def test_nnls_matches_scipy_and_greedy_agrees():
    X, y = _data(seed=1)
    y = y - 2.0 * X[:, 0] - 1.5 * X[:, 3]  # push some coefficients to the bound
    ref, _ = scipy.optimize.nnls(np.asarray(X), np.asarray(y))
    fun = lambda w, X, y: 0.5 * jnp.sum((X @ w - y) ** 2)
    sols = [BlockCoordinateDescent(fun, jl.prox.prox_non_negative_lasso, selection=s, tol=1e-10,
                                   maxiter=3000).run(jnp.ones(X.shape[1]), 0.0, X, y).params
            for s in ("cyclic", "greedy")]
    assert np.any(ref == 0)
    np.testing.assert_allclose(sols[0], ref, atol=1e-6)
    np.testing.assert_allclose(sols[1], sols[0], atol=1e-7)


def test_rows_as_blocks_group_lasso_matches_proximal_gradient():
    rng = np.random.default_rng(2)
    X, Y = jnp.asarray(rng.normal(size=(25, 6))), jnp.asarray(rng.normal(size=(25, 3)))
    fun = lambda W, X, Y: 0.5 * jnp.mean((X @ W - Y) ** 2)
    W0 = jnp.zeros((6, 3))
    cd = BlockCoordinateDescent(fun, jl.prox.prox_group_lasso, tol=1e-10, maxiter=3000).run(W0, 0.3, X, Y)
    # Dense reference: FISTA with the row-wise group-lasso prox.
    row_prox = lambda W, lam, s: jax.vmap(jl.prox.prox_group_lasso, (0, None, None))(W, lam, s)
    pg = jl.ProximalGradient(fun, prox=row_prox, tol=1e-12, maxiter=20000).run(W0, 0.3, X, Y)
    assert np.any(np.all(np.asarray(cd.params) == 0, axis=1))
    np.testing.assert_allclose(cd.params, pg.params, atol=1e-6)


def test_lasso_implicit_derivative_matches_finite_differences():
    X, y = _data()
    solver = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, tol=1e-12, maxiter=3000)
    w0 = jnp.zeros(X.shape[1])
    loss = lambda lam: jnp.sum(solver.run(w0, lam, X, y).params ** 2 * jnp.arange(1.0, 9.0))
    g = jax.grad(loss)(0.05)
    eps = 1e-5
    fd = (loss(0.05 + eps) - loss(0.05 - eps)) / (2 * eps)
    assert abs(float(g)) > 1e-3
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_user_stepsize_and_bad_input():
    X, y = _data()
    lips = float(jnp.max(jnp.sum(X ** 2, axis=0)) / X.shape[0])
    a = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, stepsize=1.0 / lips, tol=1e-10, maxiter=5000)
    b = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, tol=1e-10, maxiter=5000)
    w0 = jnp.zeros(X.shape[1])
    np.testing.assert_allclose(a.run(w0, 0.1, X, y).params, b.run(w0, 0.1, X, y).params, atol=1e-8)
    with pytest.raises(ValueError, match="selection"):
        BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, selection="random")
    # jaxopt's sentinel: any stepsize <= 0 selects the automatic step (here 1 / L_j).
    neg = BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, stepsize=-1.0, tol=1e-10, maxiter=5000)
    np.testing.assert_array_equal(neg.run(w0, 0.1, X, y).params, b.run(w0, 0.1, X, y).params)
    with pytest.raises(ValueError, match="stepsize"):
        BlockCoordinateDescent(_lsq, jl.prox.prox_lasso, stepsize=float("nan"))
    with pytest.raises(TypeError, match="block_prox"):
        BlockCoordinateDescent(_lsq, 3.0)
    with pytest.raises(ValueError, match="init_params"):
        b.run({"w": w0}, 0.1, X, y)
    with pytest.raises(TypeError, match="hyperparams_prox"):
        b.run(w0)


def _simplex_quad():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(6, 6))
    Q = jnp.asarray(A @ A.T / 6 + 0.5 * np.eye(6))
    c = jnp.asarray(rng.normal(size=6))
    return lambda x, Q, c: 0.5 * x @ Q @ x + c @ x, Q, c


def test_mirror_descent_matches_jaxopt_iterates():
    fun, Q, c = _simplex_quad()
    x0 = jnp.ones(6) / 6
    pg_ref = jaxopt.MirrorDescent.make_projection_grad(
        lambda y, hp: jax.nn.softmax(y), lambda x: jnp.log(x))
    step = lambda k: 0.5 / jnp.sqrt(k + 1.0)
    ref = jaxopt.MirrorDescent(fun, pg_ref, stepsize=step, maxiter=40, tol=0.0).run(x0, None, Q, c)
    ours = MirrorDescent(fun, projection_grad_simplex_kl, step, maxiter=40, tol=0.0).run(x0, None, Q, c)
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.state.error, ref.state.error, rtol=1e-9)


def test_mirror_descent_matches_projected_gradient():
    fun, Q, c = _simplex_quad()
    x0 = jnp.ones(6) / 6
    ref = jl.ProjectedGradient(fun, jl.projection.projection_simplex, tol=1e-12, maxiter=5000).run(
        x0, 1.0, Q, c).params
    sol = MirrorDescent(fun, projection_grad_simplex_kl, 0.5, maxiter=3000, tol=1e-9).run(x0, 1.0, Q, c)
    assert int(sol.state.status) == int(jl.Status.CONVERGED)
    np.testing.assert_allclose(jnp.sum(sol.params), 1.0, atol=1e-12)
    np.testing.assert_allclose(sol.params, ref, atol=1e-6)


def test_mirror_descent_implicit_derivative_and_bad_input():
    fun, Q, c = _simplex_quad()
    x0 = jnp.ones(6) / 6
    md = MirrorDescent(fun, projection_grad_simplex_kl, 0.5, maxiter=3000, tol=1e-11)
    w = jnp.arange(6.0)
    loss = lambda c: w @ md.run(x0, None, Q, c).params
    g = jax.grad(loss)(c)
    eps, e0 = 1e-5, jnp.eye(6)[0]
    fd = (loss(c + eps * e0) - loss(c - eps * e0)) / (2 * eps)
    np.testing.assert_allclose(g[0], fd, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="stepsize"):
        MirrorDescent(fun, projection_grad_simplex_kl, -1.0)
    with pytest.raises(TypeError, match="projection_grad"):
        MirrorDescent(fun, None, 0.1)
