"""Smooth, bound-constrained and composite solvers against jaxopt, SciPy and scikit-learn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest
import scipy.optimize as so

import jaxopt_lab as jl
from tests import problems as P


def _logreg(n=120, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + rng.standard_normal(n) > 0).astype(float)
    f = lambda w, X, y: jnp.mean(jax.nn.softplus(X @ w) - y * (X @ w)) + 0.5e-3 * jnp.sum(w**2)
    return f, jnp.asarray(X), jnp.asarray(y)


# ------------------------------------------------------------------------ BFGS, CG


def test_bfgs_matches_jaxopt_and_scipy_on_logreg():
    f, X, y = _logreg()
    w0 = jnp.zeros(X.shape[1])
    ours = jl.BFGS(f, tol=1e-10, maxiter=300).run(w0, X, y)
    ref = jaxopt.BFGS(f, tol=1e-10, maxiter=300).run(w0, X, y)
    sp = so.minimize(lambda w: float(f(w, X, y)), np.zeros(X.shape[1]), jac=lambda w: np.asarray(
        jax.grad(f)(w, X, y)), method="BFGS", options=dict(gtol=1e-11))
    assert int(ours.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(ours.params, ref.params, atol=1e-7)
    np.testing.assert_allclose(ours.params, sp.x, atol=1e-6)


def test_bfgs_inverse_hessian_converges_to_true_inverse_on_quadratic():
    fun, x0, x_star = P.quadratic(6, cond=10.0)
    out = jl.BFGS(fun, tol=1e-12, maxiter=200).run(x0)
    np.testing.assert_allclose(out.params, x_star, atol=1e-9)
    # BFGS with exact line searches on a quadratic recovers H = Q^{-1} after n steps.
    Hinv = jnp.linalg.inv(jax.hessian(fun)(x0))
    np.testing.assert_allclose(out.state.H, Hinv, atol=1e-2)


@pytest.mark.parametrize("method", ["polak-ribiere", "fletcher-reeves", "hestenes-stiefel", "dai-yuan"])
def test_nonlinear_cg_methods_reach_logreg_solution(method):
    f, X, y = _logreg()
    w0 = jnp.zeros(X.shape[1])
    ref = jaxopt.LBFGS(f, tol=1e-10, maxiter=500).run(w0, X, y).params
    out = jl.NonlinearCG(f, tol=1e-8, maxiter=3000, method=method).run(w0, X, y)
    np.testing.assert_allclose(out.params, ref, atol=1e-6)
    if method in ("polak-ribiere", "hestenes-stiefel"):
        # jaxopt's NonlinearCG stops ~1e-4 away here (its own gradient test); ours matches L-BFGS
        # to 1e-6 above, so the comparison with jaxopt is at its accuracy.
        jref = jaxopt.NonlinearCG(f, tol=1e-8, maxiter=3000, method=method).run(w0, X, y).params
        np.testing.assert_allclose(out.params, jref, atol=3e-4)


def test_nonlinear_cg_bad_method():
    with pytest.raises(ValueError, match="method"):
        jl.NonlinearCG(lambda x: jnp.sum(x**2), method="nope")


# ------------------------------------------------------------------- line searches


@pytest.mark.parametrize("cls", [jl.BacktrackingLineSearch, jl.ZoomLineSearch, jl.HagerZhangLineSearch])
def test_line_search_classes_satisfy_their_conditions(cls):
    fun, _, _ = P.rosenbrock(4)
    x = jnp.asarray([-1.2, 1.0, -1.2, 1.0])
    g = jax.grad(fun)(x)
    ls = cls(fun, maxiter=40, max_stepsize=1.0)
    t, state = ls.run(1.0, x, fun(x), g)
    d = -g
    assert not bool(state.failed) and 0 < float(t) <= 1.0
    c1 = ls.c1
    armijo = float(fun(x + t * d)) <= float(fun(x) + c1 * t * jnp.dot(g, d)) + 1e-12
    if cls is jl.HagerZhangLineSearch:
        # Either Armijo or Hager-Zhang's approximate Wolfe: no increase, (2 c1 - 1) phi'(0) >= phi'(t).
        slope0, slope_t = float(jnp.dot(g, d)), float(jnp.dot(jax.grad(fun)(x + t * d), d))
        approx = float(fun(x + t * d)) <= float(fun(x)) and (2 * c1 - 1) * slope0 >= slope_t >= 0.9 * slope0
        assert armijo or approx
    else:
        assert armijo
    np.testing.assert_allclose(state.params, x + t * d)
    np.testing.assert_allclose(state.value, fun(x + t * d))
    if cls is not jl.HagerZhangLineSearch:
        assert abs(float(jnp.dot(jax.grad(fun)(x + t * d), d))) <= 0.9 * abs(float(jnp.dot(g, d))) + 1e-12
    armijo = jl.BacktrackingLineSearch(fun, condition="armijo", decrease_factor=0.5, maxiter=60)
    t2, _ = armijo.run(1.0, x, descent_direction=d)
    # The first halving that satisfies Armijo, as a direct scan finds it.
    ts = 0.5 ** np.arange(60)
    ok = [float(fun(x + s * d)) <= float(fun(x) + 1e-4 * s * jnp.dot(g, d)) + 1e-12 for s in ts]
    np.testing.assert_allclose(t2, ts[int(np.argmax(ok))])


# ------------------------------------------------------------------------- LBFGSB


def _scipy_lbfgsb(f, x0, lo, up, *args):
    vg = jax.jit(jax.value_and_grad(f))
    r = so.minimize(lambda w: tuple(np.asarray(v) for v in vg(w, *args)), np.asarray(x0), jac=True,
                    method="L-BFGS-B", bounds=list(zip(np.asarray(lo), np.asarray(up), strict=True)),
                    options=dict(gtol=1e-12, ftol=1e-15, maxiter=2000))
    return r.x


def test_lbfgsb_matches_scipy_with_active_bounds_logreg():
    f, X, y = _logreg(200, 30)
    lo, up = -0.1 * jnp.ones(30), 0.2 * jnp.ones(30)
    out = jl.LBFGSB(f, tol=1e-10, maxiter=500).run(jnp.zeros(30), (lo, up), X, y)
    ref = _scipy_lbfgsb(f, jnp.zeros(30), lo, up, X, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, ref, atol=1e-7)
    at_bound = (out.params == lo) | (out.params == up)
    assert int(at_bound.sum()) > 5
    np.testing.assert_array_equal(at_bound, (ref == np.asarray(lo)) | (ref == np.asarray(up)))


def test_lbfgsb_matches_scipy_and_jaxopt_on_bounded_rosenbrock():
    fun, x0, _ = P.rosenbrock(10)
    lo, up = jnp.full(10, -2.0), jnp.full(10, 0.8)
    out = jl.LBFGSB(fun, tol=1e-10, maxiter=1000).run(x0, (lo, up))
    np.testing.assert_allclose(out.params, _scipy_lbfgsb(fun, x0, lo, up), atol=1e-7)
    jref = jaxopt.LBFGSB(fun, tol=1e-10, maxiter=1000).run(x0, (lo, up)).params
    np.testing.assert_allclose(out.params, jref, atol=1e-5)
    assert float(out.params[0]) == 0.8


def test_lbfgsb_unbounded_equals_unconstrained_and_pytree_bounds():
    fun, x0, x_star = P.quadratic(8, cond=20.0)
    out = jl.LBFGSB(fun, tol=1e-10, maxiter=200).run(x0, (None, None))
    np.testing.assert_allclose(out.params, x_star, atol=1e-8)
    tree_fun = P.tree_version(fun)
    lo = P.to_tree(jnp.full(8, -0.2))
    up = P.to_tree(jnp.full(8, 0.2))
    t = jl.LBFGSB(tree_fun, tol=1e-10, maxiter=200).run(P.to_tree(x0), (lo, up))
    flat = jl.LBFGSB(fun, tol=1e-10, maxiter=200).run(x0, (jnp.full(8, -0.2), jnp.full(8, 0.2)))
    np.testing.assert_allclose(P.from_tree(t.params), flat.params, atol=1e-9)


def test_lbfgsb_implicit_derivative_with_active_bounds():
    A, b = P.ridge_data(40, 6)
    A = A / np.sqrt(40.0)
    lo, up = -0.05 * jnp.ones(6), 0.05 * jnp.ones(6)
    solver = jl.LBFGSB(P.ridge_fun, tol=1e-11, maxiter=500)
    sol = lambda lam: solver.run(jnp.zeros(6), (lo, up), lam, A, b).params
    eps = 1e-5
    fd = (sol(1.0 + eps) - sol(1.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.jacrev(sol)(1.0), fd, atol=1e-6)
    np.testing.assert_allclose(jax.jvp(sol, (1.0,), (1.0,))[1], fd, atol=1e-6)


def test_lbfgsb_bad_bounds():
    fun, x0, _ = P.quadratic(4)
    with pytest.raises(ValueError, match="lower > upper"):
        jl.LBFGSB(fun).run(x0, (jnp.ones(4), jnp.zeros(4)))
    with pytest.raises(ValueError, match="bounds"):
        jl.LBFGSB(fun).run(x0, (jnp.zeros(3), jnp.ones(3)))
    with pytest.raises(TypeError, match="bounds"):
        jl.LBFGSB(fun).run(x0)


def _bfgs_dense(S, Y, theta):
    """Dense BFGS matrix from ``theta I`` and the pairs, oldest first (the recursion)."""
    B = theta * np.eye(S.shape[1])
    for s, y in zip(S, Y, strict=True):
        Bs = B @ s
        B = B - np.outer(Bs, Bs) / (s @ Bs) + np.outer(y, y) / (s @ y)
    return B


def _gcp_reference(x, g, lo, up, B):
    """First local minimizer of g.z + z.B z / 2 along z(t) = P(x - t g) - x, segment by segment."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = np.where(g < 0, (x - up) / g, np.where(g > 0, (x - lo) / g, np.inf))
    ts = np.unique(np.concatenate([[0.0], tb[np.isfinite(tb)], [np.inf]]))
    for ta, tnext in zip(ts[:-1], ts[1:], strict=True):
        z = np.clip(x - ta * g, lo, up) - x
        d = np.where(tb > ta, -g, 0.0)
        f1, f2 = g @ d + d @ B @ z, d @ B @ d
        if f1 >= 0:
            return x + z
        if -f1 / f2 < tnext - ta:
            return np.clip(x - (ta - f1 / f2) * g, lo, up)
    raise AssertionError("unreachable: the last segment is infinite")


@pytest.mark.parametrize("seed", range(4))
def test_lbfgsb_compact_model_and_cauchy_point_match_dense_reference(seed):
    from jaxopt_lab.solvers.quasi_newton import lbfgsb as L

    rng = np.random.default_rng(seed)
    n, m, ptr = 12, 4, 2  # slot ptr is the oldest; slot 1 is empty (a skipped pair)
    A = rng.standard_normal((n, n))
    A = A @ A.T / n + 0.5 * np.eye(n)
    S = rng.standard_normal((m, n))
    Y = S @ A
    S[1] = Y[1] = 0.0
    chron = [(ptr + i) % m for i in range(m) if (ptr + i) % m != 1]
    theta = float(Y[chron[-1]] @ Y[chron[-1]] / (S[chron[-1]] @ Y[chron[-1]]))
    M = L._middle_matrix(jnp.asarray(S @ Y.T), jnp.asarray(S @ S.T), theta, ptr)
    W = np.concatenate([Y.T, theta * S.T], axis=1)
    B = theta * np.eye(n) - W @ np.asarray(M) @ W.T
    np.testing.assert_allclose(B, _bfgs_dense(S[chron], Y[chron], theta), rtol=1e-9, atol=1e-9)
    lo = np.where(rng.random(n) < 0.2, -np.inf, -rng.uniform(0.05, 1.0, n))
    up = np.where(rng.random(n) < 0.2, np.inf, rng.uniform(0.05, 1.0, n))
    x = rng.uniform(lo.clip(-1), up.clip(None, 1))
    x[:3] = np.where(np.isfinite(lo[:3]), lo[:3], x[:3])  # some variables start at a bound
    g = rng.standard_normal(n)
    g[2] = 0.0
    xcp = L._cauchy_point(*map(jnp.asarray, (x, g, lo, up, W)), M, theta)
    np.testing.assert_allclose(xcp, _gcp_reference(x, g, lo, up, B), rtol=1e-10, atol=1e-12)


def test_lbfgsb_same_iterations_as_scipy_with_scipy_stopping_rule():
    f, X, y = _logreg(300, 40, seed=3)
    lo, up = -0.3 * jnp.ones(40), 0.3 * jnp.ones(40)
    out = jl.LBFGSB(f, tol=1e-6, maxiter=500, error_norm="inf", ftol=0.0).run(jnp.zeros(40), (lo, up), X, y)
    vg = jax.jit(jax.value_and_grad(f))
    ref = so.minimize(lambda w: tuple(np.asarray(v) for v in vg(w, X, y)), np.zeros(40), jac=True,
                      method="L-BFGS-B", bounds=[(-0.3, 0.3)] * 40,
                      options=dict(gtol=1e-6, ftol=0.0, maxcor=10, maxiter=500))
    assert int(out.state.status) == jl.Status.CONVERGED
    # Same model, Cauchy point, subspace step and unit-first Wolfe search: the same path.
    assert abs(int(out.state.iter_num) - ref.nit) <= 1, (int(out.state.iter_num), ref.nit)
    assert abs(int(out.state.num_fun_eval) - ref.nfev) <= 2, (int(out.state.num_fun_eval), ref.nfev)
    np.testing.assert_allclose(out.params, ref.x, atol=1e-5)
    pg = out.params - jnp.clip(out.params - vg(out.params, X, y)[1], lo, up)
    assert float(jnp.max(jnp.abs(pg))) <= 1e-6 and float(out.state.error) <= 1e-6


def test_lbfgsb_ftol_stops_stalled_never_converged_and_bounds_keyword():
    center = jnp.linspace(0.2, 1.2, 5)
    fun = lambda x: jnp.sum((x - center) ** 4)  # flat minimum: f stalls long before the gradient
    x0, bounds = jnp.zeros(5), (jnp.full(5, -1.0), jnp.full(5, 2.0))
    stalled = jl.LBFGSB(fun, tol=1e-14, maxiter=500, ftol=1e-3).run(x0, bounds=bounds)
    assert int(stalled.state.status) == jl.Status.STALLED
    assert float(stalled.state.error) > 1e-14
    plain = jl.LBFGSB(fun, tol=1e-14, maxiter=40).run(x0, bounds)
    assert int(plain.state.status) != jl.Status.STALLED
    assert int(plain.state.iter_num) > int(stalled.state.iter_num)
    # Converging first wins over the stall test.
    quad = lambda x: jnp.sum((x - 0.5) ** 2)
    out = jl.LBFGSB(quad, tol=1e-8, ftol=1.0, maxiter=50).run(x0, bounds=bounds)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, 0.5, atol=1e-8)
    with pytest.raises(ValueError, match="error_norm"):
        jl.LBFGSB(fun, error_norm="l1")
    with pytest.raises(ValueError, match="ftol"):
        jl.LBFGSB(fun, ftol=-1.0)


# ------------------------------------------------------- proximal / projected gradient


def _diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return jnp.asarray(X), jnp.asarray(y)


def test_proximal_gradient_lasso_matches_sklearn_on_diabetes():
    from sklearn.linear_model import Lasso

    X, y = _diabetes()
    n, alpha = X.shape[0], 0.01
    sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000).fit(X, y).coef_
    f = lambda w, X, y: 0.5 / n * jnp.sum((X @ w - y) ** 2)
    out = jl.ProximalGradient(f, jl.prox.prox_lasso, tol=1e-10, maxiter=5000).run(jnp.zeros(10), alpha, X, y)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, sk, atol=1e-6)
    ref = jaxopt.ProximalGradient(f, jaxopt.prox.prox_lasso, tol=1e-10, maxiter=5000).run(
        jnp.zeros(10), alpha, X, y)
    np.testing.assert_allclose(out.params, ref.params, atol=1e-6)
    # Fixed step 1/L without acceleration (ISTA) reaches the same point.
    L = float(jnp.linalg.eigvalsh(X.T @ X / n)[-1])
    ista = jl.ProximalGradient(f, jl.prox.prox_lasso, stepsize=1.0 / L, acceleration=False, tol=1e-9,
                               maxiter=20000).run(jnp.zeros(10), alpha, X, y)
    np.testing.assert_allclose(ista.params, sk, atol=1e-6)


def test_proximal_gradient_derivative_in_l1reg_matches_fd():
    X, y = _diabetes()
    n = X.shape[0]
    f = lambda w, X, y: 0.5 / n * jnp.sum((X @ w - y) ** 2)
    solver = jl.ProximalGradient(f, jl.prox.prox_lasso, tol=1e-12, maxiter=10000)
    loss = lambda a: jnp.sum(solver.run(jnp.zeros(10), a, X, y).params ** 2)
    eps = 1e-6
    fd = (loss(0.01 + eps) - loss(0.01 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(loss)(0.01), fd, rtol=1e-5)
    np.testing.assert_allclose(jax.jvp(loss, (0.01,), (1.0,))[1], fd, rtol=1e-5)


def test_projected_gradient_nnls_matches_scipy_and_simplex_matches_jaxopt():
    X, y = _diabetes()
    n = X.shape[0]
    f = lambda w, X, y: 0.5 / n * jnp.sum((X @ w - y) ** 2)
    out = jl.ProjectedGradient(f, jl.projection.projection_non_negative, tol=1e-10, maxiter=5000).run(
        jnp.zeros(10), None, X, y)
    np.testing.assert_allclose(out.params, so.nnls(np.asarray(X), np.asarray(y))[0], atol=1e-7)
    simplex = jl.ProjectedGradient(f, jl.projection.projection_simplex, tol=1e-10, maxiter=5000).run(
        jnp.ones(10) / 10, 1.0, X, y)
    ref = jaxopt.ProjectedGradient(f, jaxopt.projection.projection_simplex, tol=1e-10, maxiter=5000).run(
        jnp.ones(10) / 10, 1.0, X, y)
    np.testing.assert_allclose(simplex.params, ref.params, atol=1e-6)
    np.testing.assert_allclose(jnp.sum(simplex.params), 1.0)


def test_proximal_gradient_needs_hyperparams():
    with pytest.raises(TypeError, match="hyperparams_prox"):
        jl.ProximalGradient(lambda x: jnp.sum(x**2), jl.prox.prox_lasso).run(jnp.ones(3))
    with pytest.raises(TypeError, match="prox"):
        jl.ProximalGradient(lambda x: jnp.sum(x**2), prox=3)


# ----------------------------------------------------------------- stochastic solvers


@pytest.mark.parametrize("name", ["PolyakSGD", "ArmijoSGD"])
def test_sgd_solvers_match_jaxopt_iterates_and_interpolate(name):
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.standard_normal((40, 8)))
    x_star = jnp.asarray(rng.standard_normal(8))
    b = A @ x_star  # interpolation: every mini-batch loss has minimum 0 at x_star
    f = lambda x, A, b: 0.5 * jnp.mean((A @ x - b) ** 2)
    ours, ref = getattr(jl, name)(f, maxiter=2000, tol=1e-9), getattr(jaxopt, name)(f, maxiter=2000, tol=1e-9)
    p, s = jnp.zeros(8), ours.init_state(jnp.zeros(8), A[:8], b[:8])
    q, r = jnp.zeros(8), ref.init_state(jnp.zeros(8), A[:8], b[:8])
    for k in range(5):
        batch = (A[8 * k:8 * k + 8], b[8 * k:8 * k + 8])
        p, s = ours.update(p, s, *batch)
        q, r = ref.update(q, r, *batch)
    np.testing.assert_allclose(p, q, atol=1e-12)
    out = ours.run(jnp.zeros(8), A, b)
    assert int(out.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(out.params, x_star, atol=1e-7)


def test_sgd_solvers_bad_options():
    f = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="reset_option"):
        jl.ArmijoSGD(f, reset_option="bogus")
    with pytest.raises(ValueError, match="max_stepsize"):
        jl.PolyakSGD(f, max_stepsize=-1.0)


def test_polyak_sgd_fun_min_and_variant():
    # f(x) = ||x - a||^2 + 3 has minimum value 3: with fun_min=3 the Polyak step is exact
    # (half the distance per step for this quadratic), with the default 0 it overshoots.
    a = jnp.asarray([1.0, -2.0, 0.5])
    f = lambda x: jnp.sum((x - a) ** 2) + 3.0
    for variant in ("SPS_max", "SPS+"):
        out = jl.PolyakSGD(f, fun_min=3.0, variant=variant, max_stepsize=10.0, maxiter=200,
                           tol=1e-8).run(jnp.zeros(3))
        np.testing.assert_allclose(out.params, a, atol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        jl.PolyakSGD(f, variant="bogus")
