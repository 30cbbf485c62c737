"""Maths of the second-order transforms and solvers against dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jl
from jaxopt_lab import curvature as cv

# ------------------------------------------------------------------------------ M-FAC


def _dense_ihvp(G, v, lam):
    m, d = G.shape
    return np.linalg.solve(lam * np.eye(d) + G.T @ G / m, v)


def test_mfac_ihvp_matches_dense_solve():
    rng = np.random.default_rng(0)
    G, v = rng.standard_normal((6, 20)), rng.standard_normal(20)
    for lam in (1e-3, 0.5):
        np.testing.assert_allclose(jl.mfac_ihvp(jnp.asarray(G), jnp.asarray(v), lam),
                                   _dense_ihvp(G, v, lam), rtol=1e-8)


def test_scale_by_mfac_tracks_window_through_updates_and_refreshes():
    m, d, lam = 4, 9, 0.3
    rng = np.random.default_rng(1)
    tx = jl.scale_by_mfac(num_grads=m, damping=lam)
    tree = {"a": jnp.zeros(4), "b": jnp.zeros((5,))}
    state = tx.init(tree)
    window = np.zeros((m, d))
    step = jax.jit(tx.update)
    for t in range(11):  # crosses Woodbury-only steps and the exact refreshes at t = 3, 7
        g = rng.standard_normal(d)
        window[t % m] = g
        u, state = step({"a": jnp.asarray(g[:4]), "b": jnp.asarray(g[4:])}, state)
        np.testing.assert_allclose(ravel_pytree(u)[0], _dense_ihvp(window, g, lam), rtol=1e-8)
    # A damping change (inject_hyperparams) refreshes the inverse.
    tx2 = jl.scale_by_mfac(num_grads=m, damping=2 * lam)
    g = rng.standard_normal(d)
    window[11 % m] = g
    u, _ = tx2.update({"a": jnp.asarray(g[:4]), "b": jnp.asarray(g[4:])}, state)
    np.testing.assert_allclose(ravel_pytree(u)[0], _dense_ihvp(window, g, 2 * lam), rtol=1e-8)


def test_mfac_bad_input():
    with pytest.raises(ValueError, match="damping"):
        jl.mfac_ihvp(jnp.ones((2, 5)), jnp.ones(5), 0.0)
    with pytest.raises(ValueError, match="grads"):
        jl.mfac_ihvp(jnp.ones((6, 5)), jnp.ones(5), 1.0)
    with pytest.raises(ValueError, match="num_grads"):
        jl.scale_by_mfac(num_grads=8).init(jnp.zeros(5))
    with pytest.raises(ValueError, match="damping"):
        jl.mfac(0.1, damping=-1.0)


# ----------------------------------------------------------------------------- Sophia


@pytest.mark.parametrize("bias_correction", [False, True])
def test_sophia_interval_and_clipping_under_jit(bias_correction):
    h = jnp.asarray([1.0, 4.0, 0.01])
    c = jnp.asarray([1.0, -2.0, 3.0])
    f = lambda x: 0.5 * jnp.sum(h * x**2) - c @ x  # diagonal: one probe is exact
    b1, b2, gamma, k = 0.9, 0.8, 0.5, 3
    tx = jl.scale_by_sophia(b1=b1, b2=b2, gamma=gamma, update_interval=k, bias_correction=bias_correction)

    def run(x):
        def body(carry, key):
            x, s = carry
            g = jax.grad(f)(x)
            u, s = tx.update(g, s, x, value_fn=f, key=key)
            return (x - 0.1 * u, s), (u, s.hess, g)
        return jax.lax.scan(body, (x, tx.init(x)), jax.random.split(jax.random.PRNGKey(0), 7))[1]

    us, hs, gs = jax.jit(run)(jnp.zeros(3))
    hess, mu, n_est = np.zeros(3), np.zeros(3), 0
    for t in range(7):
        if t % k == 0:  # refreshed only at t = 0, 3, 6
            hess = b2 * hess + (1 - b2) * np.asarray(h)
            n_est += 1
        np.testing.assert_allclose(hs[t], hess, rtol=1e-12)
        mu = b1 * mu + (1 - b1) * np.asarray(gs[t])
        # With bias correction the EMA of a constant estimate equals that estimate.
        h_used = hess / (1 - b2**n_est) if bias_correction else hess
        if bias_correction:
            np.testing.assert_allclose(h_used, h, rtol=1e-12)
        np.testing.assert_allclose(us[t], np.clip(mu / np.maximum(gamma * h_used, 1e-12), -1, 1),
                                   rtol=1e-10)
    assert np.any(np.abs(us) == 1.0) and np.any((np.abs(us) < 1) & (np.abs(us) > 0))


def test_sophia_gnb_uses_gauss_newton_bartlett_and_weight_decay():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((10, 3)))
    w = jnp.asarray(rng.standard_normal((3, 4)))
    logits_fn = lambda w: X @ w
    key = jax.random.PRNGKey(7)
    tx = jl.scale_by_sophia(b2=0.9, estimator="gnb", n_samples=3)
    _, s = tx.update(jnp.ones_like(w), tx.init(w), w, logits_fn=logits_fn, key=key)
    np.testing.assert_allclose(s.hess, 0.1 * cv.gnb_diag(logits_fn, w, key, n_samples=3), rtol=1e-12)
    # Decoupled weight decay adds lr * wd * params.
    opt = jl.sophia(0.1, weight_decay=0.5, estimator="gnb")
    opt0 = jl.sophia(0.1, estimator="gnb")
    g = jnp.ones_like(w)
    u = opt.update(g, opt.init(w), w, logits_fn=logits_fn, key=key)[0]
    u0 = opt0.update(g, opt0.init(w), w, logits_fn=logits_fn, key=key)[0]
    np.testing.assert_allclose(u - u0, -0.1 * 0.5 * w, rtol=1e-12)


def test_sophia_and_adahessian_missing_extra_args():
    x = jnp.ones(3)
    f = lambda x: jnp.sum(x**2)
    tx = jl.sophia(0.1)
    with pytest.raises(ValueError, match="value_fn"):
        tx.update(x, tx.init(x), x, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="key"):
        tx.update(x, tx.init(x), x, value_fn=f)
    txg = jl.sophia(0.1, estimator="gnb")
    with pytest.raises(ValueError, match="logits_fn"):
        txg.update(x, txg.init(x), x, key=jax.random.PRNGKey(0))
    ah = jl.adahessian(0.1)
    with pytest.raises(ValueError, match="value_fn"):
        ah.update(x, ah.init(x), x, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_samples"):
        jl.sophia(0.1, n_samples=0)
    with pytest.raises(ValueError, match="n_samples"):
        jl.adahessian(0.1, n_samples=0)


# ------------------------------------------------------------------------- AdaHessian


def test_adahessian_matches_dense_hessian_reference():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((8, 4)))
    y = jnp.asarray(rng.standard_normal(8))
    params = {"w": jnp.asarray(rng.standard_normal((4, 6)) * 0.5), "v": jnp.asarray(rng.standard_normal(6))}
    loss = lambda p: jnp.mean((jnp.tanh(X @ p["w"]) @ p["v"] - y) ** 2)
    flat, unravel = ravel_pytree(params)
    b1, b2, eps, k, block = 0.9, 0.99, 1e-4, 0.5, 3
    tx = jl.scale_by_adahessian(b1=b1, b2=b2, eps=eps, hessian_power=k, block_size=block)
    state = tx.init(params)
    m, v, p = np.zeros_like(flat), np.zeros_like(flat), params
    for t in range(1, 4):
        key = jax.random.PRNGKey(t)
        g = jax.grad(loss)(p)
        u, state = jax.jit(lambda g, s, p, key: tx.update(g, s, p, value_fn=loss, key=key))(g, state, p, key)
        # Dense reference: D = z * (H z) with the same probes, averaged over blocks of 3.
        H = jax.hessian(lambda x: loss(unravel(x)))(ravel_pytree(p)[0])
        z = ravel_pytree(cv.rademacher_like(key, p, 1))[0]
        D = unravel(np.asarray(z * (H @ z)))
        D = {n: np.repeat(np.asarray(D[n]).reshape(*D[n].shape[:-1], -1, block).mean(-1), block, -1)
             for n in D}
        D = ravel_pytree(D)[0]
        m = b1 * m + (1 - b1) * ravel_pytree(g)[0]
        v = b2 * v + (1 - b2) * D**2
        ref = (m / (1 - b1**t)) / ((v / (1 - b2**t)) ** (k / 2) + eps)
        np.testing.assert_allclose(ravel_pytree(u)[0], ref, rtol=1e-9)
        p = optax.apply_updates(p, jax.tree_util.tree_map(lambda x: -0.05 * x, u))


# ---------------------------------------------------------------------------- solvers


def _logistic():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((60, 5)))
    y = jnp.asarray((rng.standard_normal(60) + X @ jnp.ones(5) > 0).astype(float))
    f = lambda w: jnp.mean(jax.nn.softplus(X @ w) - y * (X @ w)) + 0.05 * jnp.sum(w**2)
    return f, X, y


def _grad_norms(solver, x0, n):
    state = solver.init_state(x0)
    x, out = x0, [float(state.error)]
    for _ in range(n):
        x, state = solver.update(x, state)
        out.append(float(state.error))
    return np.asarray(out), x


def test_newton_cg_converges_quadratically():
    f, _, _ = _logistic()
    errs, x = _grad_norms(jl.NewtonCG(f, cg_maxiter=20, tol=0.0), jnp.full(5, 2.0), 6)
    idx = [k for k in range(len(errs) - 1) if 1e-12 < errs[k + 1] and errs[k] < 0.1]
    assert len(idx) >= 2
    for k in idx:
        assert errs[k + 1] <= 5.0 * errs[k] ** 2, errs
    assert errs[-1] < 1e-12
    res = jl.NewtonCG(f, tol=1e-10).run(jnp.zeros(5))
    assert int(res.state.status) == jl.Status.CONVERGED
    np.testing.assert_allclose(res.params, x, atol=1e-9)


def test_regularized_newton_superlinear_and_approximate_hessians():
    f, X, y = _logistic()
    errs, _ = _grad_norms(jl.RegularizedNewton(f, hessian_lipschitz=0.1, tol=0.0), jnp.full(5, 2.0), 10)
    idx = [k for k in range(len(errs) - 1) if 1e-12 < errs[k + 1] and errs[k] < 0.05]
    assert len(idx) >= 2
    for k in idx:  # order 3/2: the regularization sqrt(L ||g||) vanishes at the solution
        assert errs[k + 1] <= 5.0 * errs[k] ** 1.5, errs
    # Gauss-Newton on ridge regression (linear residuals: GN is exact) reaches the closed form.
    rng = np.random.default_rng(1)
    A, b = jnp.asarray(rng.standard_normal((30, 4))), jnp.asarray(rng.standard_normal(30))
    res_fun = lambda x, lam: jnp.concatenate([A @ x - b, jnp.sqrt(lam) * x])
    fun = lambda x, lam: 0.5 * jnp.sum(res_fun(x, lam) ** 2)
    out = jl.RegularizedNewton(fun, hessian="gauss_newton", residual_fun=res_fun, tol=1e-10).run(
        jnp.zeros(4), 0.7)
    np.testing.assert_allclose(out.params, np.linalg.solve(A.T @ A + 0.7 * np.eye(4), A.T @ b), atol=1e-9)
    # Fisher: one step equals the dense (F + sqrt(L ||g||) I)^{-1} g.
    per_ex = lambda w: jax.nn.softplus(X @ w) - y * (X @ w)
    mean = lambda w: jnp.mean(per_ex(w))
    w0 = jnp.full(5, 0.3)
    solver = jl.RegularizedNewton(mean, hessian="fisher", per_example_fun=per_ex, hessian_lipschitz=2.0)
    J = jax.jacobian(per_ex)(w0)
    g = jax.grad(mean)(w0)
    dense = w0 - np.linalg.solve(J.T @ J / 60 + np.sqrt(2.0 * np.linalg.norm(g)) * np.eye(5), g)
    np.testing.assert_allclose(solver.update(w0, solver.init_state(w0)).params, dense, rtol=1e-9)


def test_solver_bad_input():
    with pytest.raises(ValueError, match="hessian_lipschitz"):
        jl.RegularizedNewton(lambda x: jnp.sum(x**2), hessian_lipschitz=0.0)
    with pytest.raises(TypeError, match="residual_fun"):
        jl.RegularizedNewton(lambda x: jnp.sum(x**2), hessian="gauss_newton")
    with pytest.raises(ValueError, match="cg_maxiter"):
        jl.NewtonCG(lambda x: jnp.sum(x**2), cg_maxiter=0)
