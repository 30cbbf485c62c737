"""AdAdaGrad's batch-size tests (arXiv:2402.11215) against NumPy transcriptions of their formulas:
norm test, coordinate-wise norm test, inner-product and augmented (inner-product +
orthogonality, Bollapragada et al. arXiv:1710.11258) tests, and the meta-transform's batch growth."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl

B = 5


def _grads(flat):
    """The (b, 4) matrix as a two-leaf pytree: columns 0-1 in one leaf, 2-3 in a (b, 1, 2) leaf."""
    flat = np.asarray(flat, np.float32)
    return {"w": jnp.asarray(flat[:, :2]), "v": jnp.asarray(flat[:, 2:].reshape(-1, 1, 2))}


def _sample():
    rng = np.random.default_rng(0)
    return rng.normal(size=(B, 4)) + np.array([1.0, -2.0, 0.5, 3.0])


def _np_norm(G, eta):
    g = G.mean(0)
    var = np.var(G, axis=0, ddof=1).sum()
    return var / G.shape[0] <= eta**2 * g @ g, int(np.ceil(var / (eta**2 * g @ g)))


def _np_coordinate(G, eta):
    g = G.mean(0)
    var = np.var(G, axis=0, ddof=1)
    return bool(np.all(var / G.shape[0] <= eta**2 * g**2)), int(np.max(np.ceil(var / (eta**2 * g**2))))


def _np_inner(G, theta):
    g = G.mean(0)
    var = np.var(G @ g, ddof=1)
    return var / G.shape[0] <= theta**2 * (g @ g) ** 2, int(np.ceil(var / (theta**2 * (g @ g) ** 2)))


def _np_orthogonality(G, nu):
    g = G.mean(0)
    ortho = G - np.outer(G @ g / (g @ g), g)
    var = np.var(ortho, axis=0, ddof=1).sum()
    return var / G.shape[0] <= nu**2 * (g @ g), int(np.ceil(var / (nu**2 * (g @ g))))


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.7])
def test_norm_and_inner_product_tests_match_numpy(eta):
    G = np.asarray(_sample(), np.float32).astype(np.float64)
    tree = _grads(G)
    for ours, ref in ((jl.norm_test(tree, eta), _np_norm(G, eta)),
                      (jl.coordinate_norm_test(tree, eta), _np_coordinate(G, eta)),
                      (jl.inner_product_test(tree, eta), _np_inner(G, eta))):
        assert (bool(ours[0]), int(ours[1])) == ref
    passed, size = jl.inner_product_test(tree, eta, nu=2 * eta)
    ip, orth = _np_inner(G, eta), _np_orthogonality(G, 2 * eta)
    assert (bool(passed), int(size)) == (ip[0] and orth[0], max(ip[1], orth[1]))


def test_pass_fail_boundary_uses_the_sample_variance():
    # eta* makes the norm test an equality; 2% either side must fail / pass. A population
    # variance (ddof = 0, 20% smaller at b = 5) would pass at 0.98 eta*.
    G = np.asarray(_sample(), np.float32).astype(np.float64)
    g = G.mean(0)
    eta_star = np.sqrt(np.var(G, axis=0, ddof=1).sum() / (B * g @ g))
    assert not bool(jl.norm_test(_grads(G), 0.98 * eta_star)[0])
    assert bool(jl.norm_test(_grads(G), 1.02 * eta_star)[0])
    theta_star = np.sqrt(np.var(G @ g, ddof=1) / (B * (g @ g) ** 2))
    assert not bool(jl.inner_product_test(_grads(G), 0.98 * theta_star)[0])
    assert bool(jl.inner_product_test(_grads(G), 1.02 * theta_star)[0])


def test_coordinate_test_catches_a_noisy_small_coordinate():
    # Coordinate 3 has mean 0.06 and unit-scale noise: the aggregate norm test passes, the
    # coordinate-wise test fails and asks for that coordinate's size.
    G = np.tile([10.0, -10.0, 10.0, 0.06], (B, 1))
    G[:, 3] += np.array([1.0, -1.0, 0.5, -0.5, 0.0])
    tree = _grads(G)
    assert bool(jl.norm_test(tree, 0.5)[0])
    passed, size = jl.coordinate_norm_test(tree, 0.5)
    var3 = np.var(G[:, 3], ddof=1)
    assert not bool(passed)
    assert int(size) == int(np.ceil(var3 / (0.25 * 0.06**2))) == 695  # 0.625 / 9e-4
    assert (bool(passed), int(size)) == _np_coordinate(G, 0.5)


def test_augmented_test_adds_the_orthogonality_test():
    # Noise orthogonal to the mean: every <g_i, g> equals ||g||^2, so the inner-product test
    # passes at any theta; the orthogonality test does not.
    g = np.array([1.0, 1.0, 0.0, 0.0])
    noise = np.array([[1.0, -1.0, 0.0, 0.0], [-1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0],
                      [0.0, 0.0, -2.0, 1.0], [0.0, 0.0, 0.0, -1.0]])
    G = g + noise
    tree = _grads(G)
    passed, size = jl.inner_product_test(tree, 0.1)
    assert bool(passed) and int(size) == 0
    passed, size = jl.inner_product_test(tree, 0.1, nu=0.45)
    ref = _np_orthogonality(G, 0.45)
    assert not bool(passed) and not ref[0]
    # sum of the noise's variances (2 + 2 + 4 + 5 + 1) / 4 = 3.5, ||g||^2 = 2: ceil(3.5 / 0.405) = 9
    assert int(size) == ref[1] == 9
    # noise with a component along g: the projection matters (a large theta leaves the size to
    # the orthogonality test)
    G = np.asarray(_sample(), np.float32).astype(np.float64)
    passed, size = jl.inner_product_test(_grads(G), 10.0, nu=0.1)
    assert _np_inner(G, 10.0)[1] < _np_orthogonality(G, 0.1)[1]
    assert (bool(passed), int(size)) == _np_orthogonality(G, 0.1)


@pytest.mark.parametrize("test,expected", [("norm", lambda G: _np_norm(G, 0.03)[1]),
                                           ("coordinate_norm", lambda G: _np_coordinate(G, 0.03)[1]),
                                           ("inner_product", lambda G: _np_inner(G, 0.03)[1]),
                                           ("augmented_inner_product", lambda G: max(
                                               _np_inner(G, 0.03)[1], _np_orthogonality(G, 0.1)[1]))])
def test_meta_transform_grows_the_batch_to_the_suggested_size(test, expected):
    G = np.asarray(_sample(), np.float32).astype(np.float64)
    tx = jl.adaptive_batch_size(2, tolerance=0.03, test=test, orthogonality_tolerance=0.1)
    assert expected(G) > B  # the test fails on this batch of 5
    params = {"w": jnp.zeros(2), "v": jnp.zeros((1, 2))}
    state = tx.init(params)
    updates = {"w": jnp.ones(2), "v": jnp.ones((1, 2))}
    out, state = tx.update(updates, state, params, per_example_grads=_grads(G))
    assert out is updates
    assert int(state.batch_size) == max(2, expected(G)) and not bool(state.passed)
    # inside optax.chain, capped by max_batch_size
    opt = optax.chain(jl.adaptive_batch_size(2, tolerance=0.03, test=test, max_batch_size=3), optax.sgd(0.1))
    _, s = opt.update(updates, opt.init(params), params, per_example_grads=_grads(G))
    assert int(s[0].batch_size) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="test must be one of"):
        jl.adaptive_batch_size(4, test="variance")
    with pytest.raises(ValueError, match="orthogonality_tolerance"):
        jl.adaptive_batch_size(4, test="augmented_inner_product", orthogonality_tolerance=0.0)
    with pytest.raises(ValueError, match="batch axis"):
        jl.coordinate_norm_test({"w": jnp.ones((1, 3))}, 0.5)
