"""Linear minimization oracles against brute force over vertices and closed forms."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jl
from jaxopt_lab import lmo as L


def _grad(n=6, seed=0, dtype=jnp.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n), dtype)


def _brute_min(g, vertices):
    return min(float(np.dot(g, v)) for v in vertices)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_simplex_is_the_best_vertex(scale):
    g = np.asarray(_grad())
    s = L.lmo_simplex(jnp.asarray(g), scale)
    vertices = scale * np.eye(6)
    assert any(np.allclose(s, v) for v in vertices)
    np.testing.assert_allclose(np.dot(g, s), _brute_min(g, vertices))


@pytest.mark.parametrize("radius", [1.0, 0.3])
def test_l1_ball_is_the_best_vertex(radius):
    g = np.asarray(_grad(seed=1))
    s = L.lmo_l1_ball(jnp.asarray(g), radius)
    vertices = radius * np.concatenate([np.eye(6), -np.eye(6)])
    assert any(np.allclose(s, v) for v in vertices)
    np.testing.assert_allclose(np.dot(g, s), _brute_min(g, vertices))


def test_box_and_linf_ball_are_the_best_corners():
    g = np.asarray(_grad(5, seed=2))
    lo, hi = -np.arange(1.0, 6.0), np.arange(2.0, 7.0)
    corners = [np.where(np.asarray(bits) == 1, hi, lo) for bits in itertools.product([0, 1], repeat=5)]
    s = L.lmo_box(jnp.asarray(g), (jnp.asarray(lo), jnp.asarray(hi)))
    np.testing.assert_allclose(np.dot(g, s), _brute_min(g, corners))
    cube = [0.7 * np.asarray(bits) for bits in itertools.product([-1, 1], repeat=5)]
    s = L.lmo_linf_ball(jnp.asarray(g), 0.7)
    np.testing.assert_allclose(np.dot(g, s), _brute_min(g, cube))
    # Scalar bounds broadcast over a pytree, leaf by leaf.
    tree = {"a": jnp.asarray(g[:2]), "b": jnp.asarray(g[2:])}
    out = L.lmo_box(tree, (-1.0, 2.0))
    np.testing.assert_allclose(out["b"], np.where(g[2:] > 0, -1.0, 2.0))


def test_l2_ball_closed_form_and_zero_gradient():
    g = _grad(seed=3)
    s = L.lmo_l2_ball(g, 2.0)
    np.testing.assert_allclose(jnp.vdot(g, s), -2.0 * jnp.linalg.norm(g))
    np.testing.assert_allclose(jnp.linalg.norm(s), 2.0)
    # No point of the ball does better (random points on the sphere).
    pts = np.random.default_rng(0).standard_normal((500, 6))
    pts = 2.0 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    assert float(jnp.vdot(g, s)) <= np.min(pts @ np.asarray(g)) + 1e-12
    np.testing.assert_array_equal(L.lmo_l2_ball(jnp.zeros(3)), jnp.zeros(3))
    tree = {"a": g[:2], "b": g[2:]}
    out = L.lmo_l2_ball(tree, 2.0)
    np.testing.assert_allclose(jnp.concatenate([out["a"], out["b"]]), s)


@pytest.mark.parametrize("num_iters", [None, 200])
def test_nuclear_ball_attains_minus_radius_times_spectral_norm(num_iters):
    G = jnp.asarray(np.random.default_rng(4).standard_normal((7, 5)))
    S = L.lmo_nuclear_ball(G, 1.5, num_iters=num_iters)
    sigma = np.linalg.svd(np.asarray(G), compute_uv=False)
    np.testing.assert_allclose(jnp.vdot(G, S), -1.5 * sigma[0], rtol=1e-8)
    np.testing.assert_allclose(np.linalg.svd(np.asarray(S), compute_uv=False).sum(), 1.5, rtol=1e-8)
    with pytest.raises(ValueError, match="grad"):
        L.lmo_nuclear_ball(jnp.ones(3))


def test_simplex_and_l1_over_a_pytree_use_all_leaves():
    g = _grad(seed=5)
    tree = {"a": g[:2], "b": {"c": g[2:]}}
    out = L.lmo_simplex(tree, 3.0)
    flat = jnp.concatenate([out["a"], out["b"]["c"]])
    np.testing.assert_allclose(flat, L.lmo_simplex(g, 3.0))
    out = L.lmo_l1_ball(tree)
    np.testing.assert_allclose(jnp.concatenate([out["a"], out["b"]["c"]]), L.lmo_l1_ball(g))


@pytest.mark.parametrize("oracle,point", [
    (L.lmo_simplex, np.array([0.1, 0.2, 0.0, 0.3, 0.4])),
    (L.lmo_l1_ball, np.array([0.1, -0.2, 0.0, 0.3, 0.0])),
])
def test_polytope_scores_vertices_and_weights_agree(oracle, point):
    poly = L.polytope_of(oracle)
    g = _grad(5, seed=6)
    scores = poly.scores(g, 1.0)
    verts = np.stack([np.asarray(poly.vertex(i, g, 1.0)) for i in range(scores.shape[0])])
    np.testing.assert_allclose(scores, verts @ np.asarray(g))
    np.testing.assert_allclose(oracle(g, 1.0), verts[int(jnp.argmin(scores))])
    w = np.asarray(poly.weights(jnp.asarray(point), 1.0))
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12
    np.testing.assert_allclose(w @ verts, point, atol=1e-15)
    assert L.polytope_of(L.lmo_box) is None


def test_float32_kept_and_jittable():
    g = _grad(dtype=jnp.float32)
    for oracle, hp in ((L.lmo_simplex, 1.0), (L.lmo_l1_ball, 1.0), (L.lmo_linf_ball, 1.0),
                       (L.lmo_l2_ball, 1.0), (L.lmo_box, (-1.0, 1.0))):
        out = jax.jit(oracle)(g, hp)
        assert out.dtype == jnp.float32, oracle.__name__
    assert L.lmo_nuclear_ball(jnp.ones((3, 2), jnp.float32), num_iters=5).dtype == jnp.float32


def test_module_is_exported_as_jaxopt_lab_lmo():
    assert jl.lmo is L and jl.ops.lmo is L
