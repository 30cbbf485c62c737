"""Curvature oracles against exact (dense) Hessians of small networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_lab import curvature as cv


def _mlp():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((12, 3)))
    y = jnp.asarray(rng.integers(0, 4, 12))
    params = {"w1": jnp.asarray(rng.standard_normal((3, 5)) * 0.7),
              "b1": jnp.asarray(rng.standard_normal(5) * 0.1),
              "w2": jnp.asarray(rng.standard_normal((5, 4)) * 0.7)}

    def logits_fn(p, X):
        return jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"]

    def loss(p, X, y):
        lp = jax.nn.log_softmax(logits_fn(p, X))
        return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))

    return params, X, y, logits_fn, loss


def _dense_hessian(loss, params, *args):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss(unravel(x), *args))(flat), unravel


def test_rademacher_probes_are_signs_balanced_and_tree_consistent():
    tree = {"a": jnp.zeros((7, 3)), "b": jnp.zeros(50, jnp.float32)}
    z = cv.rademacher_like(jax.random.PRNGKey(0), tree, n_samples=400)
    assert z["a"].shape == (400, 7, 3) and z["b"].dtype == jnp.float32
    flat = np.concatenate([np.asarray(z["a"]).reshape(400, -1), np.asarray(z["b"])], axis=1)
    assert set(np.unique(flat)) == {-1.0, 1.0}
    # Mean of 400 signs has std 0.05 per entry; pairwise correlations likewise.
    assert np.abs(flat.mean(0)).max() < 5 * 0.05
    corr = flat.T @ flat / 400 - np.eye(flat.shape[1])
    assert np.abs(corr).max() < 6 * 0.05
    # A pytree and its flat concatenation get the same signs.
    flat_z = cv.rademacher_like(jax.random.PRNGKey(0), jnp.zeros(71), n_samples=400)
    np.testing.assert_array_equal(flat_z, flat)


def test_hvp_and_gnvp_match_dense():
    params, X, y, logits_fn, loss = _mlp()
    H, unravel = _dense_hessian(loss, params, X, y)
    v = jnp.asarray(np.random.default_rng(1).standard_normal(H.shape[0]))
    got = ravel_pytree(cv.hvp(loss, params, unravel(v), X, y))[0]
    np.testing.assert_allclose(got, H @ v, rtol=1e-10, atol=1e-12)
    # Gauss-Newton: J^T H_L J with J the Jacobian of the logits.
    flat, _ = ravel_pytree(params)
    J = jax.jacobian(lambda x: logits_fn(unravel(x), X).ravel())(flat)
    ce = lambda z: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z.reshape(12, 4)), y[:, None], 1))
    HL = jax.hessian(ce)(logits_fn(params, X).ravel())
    gn = cv.gnvp(logits_fn, lambda z: ce(z.ravel()), params, unravel(v), X)
    np.testing.assert_allclose(ravel_pytree(gn)[0], J.T @ HL @ J @ v, rtol=1e-10, atol=1e-12)


def test_hutchinson_diag_and_trace_within_statistical_bounds():
    params, X, y, _, loss = _mlp()
    H, unravel = _dense_hessian(loss, params, X, y)
    n = 4000
    est = ravel_pytree(cv.hutchinson_diag(loss, params, jax.random.PRNGKey(1), X, y, n_samples=n))[0]
    diag = jnp.diag(H)
    std = jnp.sqrt((jnp.sum(H**2, 1) - diag**2) / n)  # exact per-entry std of the mean
    assert bool(jnp.all(jnp.abs(est - diag) <= 5 * std + 1e-12))
    assert float(jnp.max(jnp.abs(est - diag))) > 0  # really stochastic
    tr = cv.hutchinson_trace(loss, params, jax.random.PRNGKey(2), X, y, n_samples=n)
    std_tr = jnp.sqrt(2 * (jnp.sum(H**2) - jnp.sum(diag**2)) / n)
    assert abs(float(tr - jnp.trace(H))) <= 5 * float(std_tr)
    # A diagonal Hessian is recovered exactly by a single probe.
    quad = lambda p: jnp.sum(jnp.arange(1.0, 6.0) * p**2)
    np.testing.assert_allclose(cv.hutchinson_diag(quad, jnp.ones(5), jax.random.PRNGKey(0)),
                               2 * jnp.arange(1.0, 6.0))


def test_gnb_diag_is_unbiased_for_gauss_newton_diagonal():
    params, X, y, logits_fn, loss = _mlp()
    flat, unravel = ravel_pytree(params)
    J = jax.jacobian(lambda x: logits_fn(unravel(x), X))(flat)  # (12, 4, d)
    p = jax.nn.softmax(logits_fn(params, X))
    cov = jax.vmap(lambda q: jnp.diag(q) - jnp.outer(q, q))(p)
    G = jnp.einsum("bcd,bce,bef->df", J, cov, J) / 12
    n = 5000
    est = ravel_pytree(cv.gnb_diag(logits_fn, params, jax.random.PRNGKey(3), X, n_samples=n))[0]
    # Per-sample std of B * g^2 estimated from the samples themselves.
    samples = jax.vmap(lambda k: ravel_pytree(cv.gnb_diag(logits_fn, params, k, X))[0])(
        jax.random.split(jax.random.PRNGKey(4), 500))
    std = jnp.std(samples, axis=0) / jnp.sqrt(n)
    assert bool(jnp.all(jnp.abs(est - jnp.diag(G)) <= 6 * std + 1e-10))
    # For a linear softmax model the Gauss-Newton matrix is the Hessian.
    lin = lambda w, X: X @ w
    w = jnp.asarray(np.random.default_rng(2).standard_normal((3, 4)))
    Hl = jax.hessian(lambda w: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(X @ w), y[:, None], 1)))(w)
    est_l = cv.gnb_diag(lin, w, jax.random.PRNGKey(5), X, n_samples=n)
    np.testing.assert_allclose(est_l, jnp.diagonal(Hl.reshape(12, 12)).reshape(3, 4), rtol=0.15, atol=4e-3)


def test_fisher_diag_matches_per_example_loop():
    params, X, y, logits_fn, _ = _mlp()
    per_ex = lambda p, X, y: -jnp.take_along_axis(jax.nn.log_softmax(logits_fn(p, X)), y[:, None], 1)[:, 0]
    got = cv.fisher_diag(per_ex, params, X, y)
    one = jax.grad(lambda p, x, t: per_ex(p, x, t)[0])
    gs = [one(params, X[i:i + 1], y[i:i + 1]) for i in range(12)]
    ref = jax.tree_util.tree_map(lambda *g: np.mean(np.stack(g) ** 2, 0), *gs)
    for k in params:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-10)


def test_lanczos_extreme_eigenvalues_and_full_spectrum():
    params, X, y, _, loss = _mlp()
    H, unravel = _dense_hessian(loss, params, X, y)
    eig = jnp.linalg.eigvalsh(H)
    mv = lambda v: cv.hvp(loss, params, v, X, y)
    res = cv.lanczos(mv, params, jax.random.PRNGKey(0), 30)
    np.testing.assert_allclose(res.eigenvalues[-1], eig[-1], rtol=1e-6)
    np.testing.assert_allclose(res.eigenvalues[0], eig[0], rtol=1e-4, atol=1e-6)
    top = ravel_pytree(jax.tree_util.tree_map(lambda x: x[-1], res.eigenvectors))[0]
    np.testing.assert_allclose(H @ top, eig[-1] * top, atol=1e-6)
    # Full Krylov dimension on a matrix with repeated eigenvalues (forces breakdown).
    A = jnp.diag(jnp.asarray([1.0, 1.0, 2.0, 3.0, 3.0, 5.0]))
    full = cv.lanczos(lambda v: A @ v, jnp.zeros(6), jax.random.PRNGKey(1), 6)
    np.testing.assert_allclose(full.eigenvalues, jnp.diag(A), atol=1e-8)
    with pytest.raises(ValueError, match="num_iters"):
        cv.lanczos(lambda v: A @ v, jnp.zeros(6), jax.random.PRNGKey(1), 7)


def test_slq_moments_and_trace():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    lam = np.linspace(-1.0, 4.0, 40)
    A = jnp.asarray((q * lam) @ q.T)
    res = cv.slq_density(lambda v: A @ v, jnp.zeros(40), jax.random.PRNGKey(0), 8, n_samples=64)
    # Gauss quadrature with m nodes is exact for moments < 2m: v^T A^k v / ||v||^2.
    v = ravel_pytree(cv.rademacher_like(jax.random.split(jax.random.PRNGKey(0), 64)[0], jnp.zeros(40)))[0]
    for k in range(1, 6):
        quad = jnp.sum(res.weights[0] * res.nodes[0] ** k)
        np.testing.assert_allclose(quad, v @ jnp.linalg.matrix_power(A, k) @ v / 40, rtol=1e-8)
    np.testing.assert_allclose(res.weights.sum(1), 1.0, rtol=1e-10)
    dx = res.grid[1] - res.grid[0]
    np.testing.assert_allclose(jnp.sum(res.density) * dx, 1.0, atol=1e-2)
    tr = 40 * jnp.mean(jnp.sum(res.weights * res.nodes, 1))
    std = np.sqrt(2 * (np.sum(np.asarray(A) ** 2) - np.sum(np.diag(A) ** 2)) / 64)
    assert abs(float(tr) - lam.sum()) < 5 * std


def test_bad_input():
    with pytest.raises(ValueError, match="n_samples"):
        cv.hutchinson_diag(lambda p: jnp.sum(p**2), jnp.ones(3), jax.random.PRNGKey(0), n_samples=0)
    with pytest.raises(TypeError, match="fun"):
        cv.hvp(3.0, jnp.ones(3), jnp.ones(3))
