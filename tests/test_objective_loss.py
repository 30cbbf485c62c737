"""``jaxopt_lab.ops.loss`` and ``jaxopt_lab.ops.objective`` against jaxopt's values and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt.loss as jloss
import jaxopt.objective as jobj
import numpy as np
import pytest

from jaxopt_lab.ops import loss as L
from jaxopt_lab.ops import objective as O

X_GRID = jnp.linspace(-3.0, 3.0, 25)
SCORES = jnp.array([0.3, -1.2, 2.0, 0.1])


@pytest.mark.parametrize("name", ["sparse_plus", "sparse_sigmoid"])
def test_elementwise_match_jaxopt(name):
    np.testing.assert_allclose(getattr(L, name)(X_GRID), getattr(jloss, name)(X_GRID), atol=1e-14)


def test_sparse_sigmoid_is_derivative_of_sparse_plus():
    x = X_GRID + 1e-3
    np.testing.assert_allclose(jax.vmap(jax.grad(L.sparse_plus))(x), L.sparse_sigmoid(x))


@pytest.mark.parametrize("name", ["binary_logistic_loss", "binary_sparsemax_loss", "binary_hinge_loss",
                                  "binary_perceptron_loss"])
def test_binary_losses_match_jaxopt(name):
    for label in (0, 1):
        ours = jax.vmap(getattr(L, name), in_axes=(None, 0))(label, X_GRID)
        ref = jax.vmap(getattr(jloss, name), in_axes=(None, 0))(label, X_GRID)
        np.testing.assert_allclose(ours, ref, atol=1e-14)


def test_huber_matches_jaxopt_and_closed_form():
    np.testing.assert_allclose(L.huber_loss(0.2, X_GRID, 0.7), jloss.huber_loss(0.2, X_GRID, 0.7), atol=1e-14)
    assert float(L.huber_loss(0.0, 3.0, 1.0)) == 2.5
    assert float(L.huber_loss(0.0, 0.5, 1.0)) == 0.125


@pytest.mark.parametrize("name", ["multiclass_logistic_loss", "multiclass_sparsemax_loss",
                                  "multiclass_hinge_loss", "multiclass_perceptron_loss"])
def test_multiclass_losses_match_jaxopt(name):
    for label in range(4):
        for scale in (0.1, 1.0, 3.0):
            np.testing.assert_allclose(getattr(L, name)(label, scale * SCORES),
                                       getattr(jloss, name)(label, scale * SCORES), atol=1e-13)


def test_sparsemax_loss_is_zero_at_a_confident_correct_score():
    assert float(L.multiclass_sparsemax_loss(2, jnp.array([0.0, 0.0, 5.0, 0.0]))) == pytest.approx(0.0)


def test_fenchel_young_loss_gradient_is_softmax_minus_label():
    y = jax.nn.one_hot(2, 4)
    fy = L.make_fenchel_young_loss(jax.nn.logsumexp)
    np.testing.assert_allclose(fy(y, SCORES), jloss.make_fenchel_young_loss(jax.nn.logsumexp)(y, SCORES))
    np.testing.assert_allclose(jax.grad(fy, argnums=1)(y, SCORES), jax.nn.softmax(SCORES) - y, atol=1e-14)


def _data():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((10, 3)))
    yr = jnp.asarray(rng.standard_normal(10))
    yc = jnp.asarray(rng.integers(0, 4, 10))
    w, W, b = (jnp.asarray(rng.standard_normal(s)) for s in ((3,), (3, 4), (4,)))
    beta = jax.nn.softmax(jnp.asarray(rng.standard_normal((10, 4))))
    return X, yr, yc, w, W, b, beta


def test_objectives_match_jaxopt():
    X, yr, yc, w, W, b, beta = _data()
    yb = (yr > 0).astype(X.dtype)
    pairs = [
        (O.least_squares(w, (X, yr)), jobj.least_squares(w, (X, yr))),
        (O.ridge_regression(w, 0.3, (X, yr)), jobj.ridge_regression(w, 0.3, (X, yr))),
        (O.binary_logreg(w, (X, yb)), jobj.binary_logreg(w, (X, yb))),
        (O.multiclass_logreg(W, (X, yc)), jobj.multiclass_logreg(W, (X, yc))),
        (O.multiclass_logreg_with_intercept((W, b), (X, yc)),
         jobj.multiclass_logreg_with_intercept((W, b), (X, yc))),
        (O.l2_multiclass_logreg(W, 0.3, (X, yc)), jobj.l2_multiclass_logreg(W, 0.3, (X, yc))),
        (O.l2_multiclass_logreg_with_intercept((W, b), 0.3, (X, yc)),
         jobj.l2_multiclass_logreg_with_intercept((W, b), 0.3, (X, yc))),
        (O.multiclass_linear_svm_dual(beta, 0.3, (X, jax.nn.one_hot(yc, 4))),
         jobj.multiclass_linear_svm_dual(beta, 0.3, (X, jax.nn.one_hot(yc, 4)))),
    ]
    for ours, ref in pairs:
        np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_ridge_regression_minimizer_closed_form():
    X, yr, *_ = _data()
    n, lam = X.shape[0], 0.3
    w_star = jnp.linalg.solve(X.T @ X / n + lam * jnp.eye(3), X.T @ yr / n)
    np.testing.assert_allclose(jax.grad(O.ridge_regression)(w_star, lam, (X, yr)), 0.0, atol=1e-12)
