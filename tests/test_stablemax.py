"""StableMax (arXiv:2501.04697): closed forms of the probabilities, loss and gradient, and no
softmax collapse in float32 where softmax cross-entropy has an exactly zero gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab.transforms.perp_grad import stablemax, stablemax_cross_entropy


def _closed_form(x, y):
    """s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0); p = s / sum s; loss = -log p_y;
    d loss / d x_i = s'(x_i) / sum s - [i = y] s'(x_y) / s(x_y), s' = 1 or 1 / (1 - x)^2."""
    x = np.asarray(x, np.float64)
    s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0)))
    ds = np.where(x >= 0, 1.0, 1 / (1 - np.minimum(x, 0)) ** 2)
    grad = ds / s.sum()
    grad[y] -= ds[y] / s[y]
    return s / s.sum(), -np.log(s[y] / s.sum()), grad


@pytest.mark.parametrize("x,y", [([-3.0, 2.0, 0.0], 0), ([0.5, -0.5, 4.0, -10.0], 2), ([0.0, 0.0], 1)])
def test_stablemax_closed_form(x, y):
    p, loss, grad = _closed_form(x, y)
    x32 = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(stablemax(x32), p, rtol=1e-6)
    np.testing.assert_allclose(stablemax_cross_entropy(y, x32), loss, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda z: stablemax_cross_entropy(y, z))(x32), grad, rtol=1e-5,
                               atol=1e-7)
    # the same names from the loss module, and a batch with integer labels
    batch = jnp.stack([x32, -x32])
    out = jl.loss.stablemax_cross_entropy(jnp.array([y, y]), batch)
    np.testing.assert_allclose(out, [loss, _closed_form(-np.asarray(x), y)[1]], rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(jl.loss.log_stablemax(batch)).sum(-1), 1.0, rtol=1e-6)


def test_first_example_by_hand():
    # x = [-3, 2, 0]: s = [1/4, 3, 1], sum 17/4, p = [1/17, 12/17, 4/17]
    np.testing.assert_allclose(stablemax(jnp.array([-3.0, 2.0, 0.0])), [1 / 17, 12 / 17, 4 / 17], rtol=1e-6)


def test_no_softmax_collapse_in_float32():
    # A confidently right prediction: exp(-120) underflows in float32, softmax rounds to the
    # one-hot and its cross-entropy and gradient are exactly 0 (learning stops).
    x = jnp.array([[120.0, 0.0, -5.0], [110.0, -1.0, 3.0]], jnp.float32)
    y = jnp.array([0, 0])
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, y).sum()
    assert float(ce(x)) == 0.0
    assert not np.any(np.asarray(jax.grad(ce)(x)))
    sm = lambda z: stablemax_cross_entropy(y, z).sum()
    g = jax.grad(sm)(x)
    assert float(sm(x)) > 0 and np.all(np.isfinite(g))
    expected = np.stack([_closed_form(x[i], 0)[2] for i in range(2)])
    np.testing.assert_allclose(g, expected, rtol=1e-4)
    assert np.all(np.abs(g) > 1e-5)
