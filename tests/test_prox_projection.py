"""prox and projection modules against jaxopt, closed forms and finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxopt
import numpy as np
import pytest

from jaxopt_lab.ops import projection as P
from jaxopt_lab.ops import prox as X

rng = np.random.default_rng(0)
x7 = jnp.asarray(rng.standard_normal(7))
A = jnp.asarray(rng.standard_normal((3, 7)))
b = jnp.asarray(rng.standard_normal(3))
G = jnp.asarray(rng.standard_normal((4, 7)))
h = jnp.asarray(rng.uniform(0, 1, 4)) - 1.0
W = jnp.asarray(rng.uniform(0.5, 2.0, 7))


@pytest.mark.parametrize("name,hp", [
    ("prox_none", None), ("prox_lasso", 0.3), ("prox_non_negative_lasso", 0.3),
    ("prox_elastic_net", (0.3, 0.7)), ("prox_group_lasso", 0.5), ("prox_ridge", 0.5),
    ("prox_non_negative_ridge", 0.5),
])
def test_prox_matches_jaxopt(name, hp):
    ours = getattr(X, name)(x7, hp, 0.7)
    ref = getattr(jaxopt.prox, name)(x7, hp, 0.7)
    np.testing.assert_allclose(ours, ref, atol=1e-14)


@pytest.mark.parametrize("name,hp", [("prox_lasso", 0.3), ("prox_elastic_net", (0.3, 0.7)),
                                     ("prox_group_lasso", 0.5), ("prox_ridge", 0.5)])
def test_prox_is_the_argmin(name, hp):
    # prox(x) minimizes 0.5||y - x||^2 + s g(y): check against a dense grid search per coordinate
    # through the optimality inequality F(prox) <= F(prox + small perturbations).
    s = 0.7
    g = {"prox_lasso": lambda y: hp * jnp.sum(jnp.abs(y)),
         "prox_elastic_net": lambda y: hp[0] * (jnp.sum(jnp.abs(y)) + 0.5 * hp[1] * jnp.sum(y**2)),
         "prox_group_lasso": lambda y: hp * jnp.linalg.norm(y),
         "prox_ridge": lambda y: 0.5 * hp * jnp.sum(y**2)}[name]
    F = lambda y: 0.5 * jnp.sum((y - x7) ** 2) + s * g(y)
    p = getattr(X, name)(x7, hp, s)
    perturb = jnp.asarray(np.random.default_rng(1).standard_normal((200, 7))) * 1e-3
    assert bool(jnp.all(jax.vmap(F)(p + perturb) >= F(p) - 1e-14))


def test_prox_pytree_and_box_and_nuclear_norm():
    tree = {"a": x7[:3], "b": x7[3:]}
    out = X.prox_lasso(tree, {"a": 0.1, "b": 0.5})
    np.testing.assert_allclose(out["b"], jaxopt.prox.prox_lasso(x7[3:], 0.5))
    np.testing.assert_allclose(X.prox_box(x7, (-0.2, 0.4)), jnp.clip(x7, -0.2, 0.4))
    M = jnp.asarray(rng.standard_normal((5, 4)))
    Y = X.prox_nuclear_norm(M, 0.5, 2.0)
    s_in, s_out = jnp.linalg.svd(M, compute_uv=False), jnp.linalg.svd(Y, compute_uv=False)
    np.testing.assert_allclose(s_out, jnp.maximum(s_in - 1.0, 0), atol=1e-12)
    prox_ball = X.make_prox_from_projection(P.projection_l2_ball)
    np.testing.assert_allclose(prox_ball(x7, 0.5, 3.0), x7 * 0.5 / jnp.linalg.norm(x7))


def test_prox_rejects_negative_scaling_and_reg():
    with pytest.raises(ValueError, match="scaling"):
        X.prox_lasso(x7, 0.1, -1.0)
    with pytest.raises(ValueError, match="l1reg"):
        X.prox_lasso(x7, -0.1)
    with pytest.raises(ValueError, match="scaling"):
        X.prox_ridge(x7, 1.0, scaling=-0.5)
    with pytest.raises(ValueError, match="matrix"):
        X.prox_nuclear_norm(x7)


@pytest.mark.parametrize("name,args", [
    ("projection_simplex", (2.0,)), ("projection_l1_ball", (1.0,)), ("projection_l1_sphere", (1.0,)),
    ("projection_l2_ball", (1.0,)), ("projection_l2_sphere", (2.0,)), ("projection_linf_ball", (0.5,)),
    ("projection_sparse_simplex", (3,)), ("projection_non_negative", ()), ("projection_hypercube", (0.5,)),
    ("projection_box", ((-0.3, 0.2),)), ("projection_hyperplane", ((W, 0.3),)),
    ("projection_halfspace", ((W, -0.3),)), ("projection_affine_set", ((A, b),)),
])
def test_closed_form_projections_match_jaxopt(name, args):
    np.testing.assert_allclose(getattr(P, name)(x7, *args), getattr(jaxopt.projection, name)(x7, *args),
                               atol=1e-12)


def test_simplex_batched_rows_and_kkt():
    X2 = jnp.asarray(rng.standard_normal((5, 6)))
    out = P.projection_simplex(X2, 1.5)
    for i in range(5):
        np.testing.assert_allclose(out[i], jaxopt.projection.projection_simplex(X2[i], 1.5), atol=1e-14)
    np.testing.assert_allclose(out.sum(1), 1.5)


def _kkt_box_section(z, x, hp):
    alpha, beta, w, c = hp
    # z = clip(x - tau w, alpha, beta) for a single tau on the free coordinates.
    free = (z > alpha + 1e-9) & (z < beta - 1e-9)
    taus = ((x - z) / w)[free]
    return abs(float(w @ z - c)), float(np.ptp(np.asarray(taus)))


def test_box_section_exact_and_matches_jaxopt():
    hp = (jnp.zeros(7), jnp.ones(7), W, 1.5)
    z = P.projection_box_section(x7, hp)
    feas, spread = _kkt_box_section(z, x7, hp)
    assert feas < 1e-12 and spread < 1e-10
    np.testing.assert_allclose(z, jaxopt.projection.projection_box_section(x7, hp), atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        P.projection_box_section(x7, (jnp.zeros(7), jnp.ones(7), W, 100.0), check_feasible=True)


def test_box_section_derivative_matches_fd():
    f = lambda c: jnp.sum(P.projection_box_section(x7, (jnp.zeros(7), jnp.ones(7), W, c)) ** 3)
    eps = 1e-6
    fd = (f(1.5 + eps) - f(1.5 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(f)(1.5), fd, rtol=1e-6)


def test_polyhedron_kkt_and_jaxopt():
    proj = jax.jit(lambda hh: P.projection_polyhedron(x7, (A, b, G, hh), check_feasible=False))
    z = proj(h)
    assert float(jnp.max(jnp.abs(A @ z - b))) < 1e-9 and float(jnp.max(G @ z - h)) < 1e-9
    np.testing.assert_allclose(z, jaxopt.projection.projection_polyhedron(x7, (A, b, G, h)), atol=5e-3)
    # Against the equality-only closed form when the inequalities are slack.
    np.testing.assert_allclose(proj(h + 100.0), P.projection_affine_set(x7, (A, b)), atol=1e-9)
    g = jax.jit(jax.grad(lambda hh: jnp.sum(proj(hh) * W)))(h)
    eps = 1e-6
    e0 = jnp.zeros(4).at[0].set(eps)
    fd = (jnp.sum(proj(h + e0) * W) - jnp.sum(proj(h - e0) * W)) / (2 * eps)
    np.testing.assert_allclose(g[0], fd, rtol=1e-4, atol=1e-7)


def test_polyhedron_infeasible_raises():
    G2 = jnp.stack([jnp.eye(7)[0], -jnp.eye(7)[0]])
    with pytest.raises(ValueError, match="empty"):
        P.projection_polyhedron(x7, (A, b, G2, jnp.asarray([-1.0, -1.0])), maxiter=500)


_LBFGS = lambda f: jaxopt.LBFGS(fun=f, tol=1e-10, maxiter=5000)
S45 = jnp.asarray(rng.standard_normal((4, 5)))
M45 = (jnp.asarray([0.1, 0.2, 0.3, 0.4]), jnp.full(5, 0.2))


def _euclid_certificate(P_, S, a, b):
    """KKT of the Euclidean transport projection: P = relu(S + f 1^T + 1 g^T) with the marginals."""
    np.testing.assert_allclose(P_.sum(1), a, atol=1e-10)
    np.testing.assert_allclose(P_.sum(0), b, atol=1e-10)
    # On the support, P - S is additive (f_i + g_j); off it, S + f_i + g_j <= 0.
    mask = np.asarray(P_ > 1e-12)
    n, m = S.shape
    rows, cols = np.nonzero(mask)
    Amat = np.zeros((len(rows), n + m))
    Amat[np.arange(len(rows)), rows] = 1
    Amat[np.arange(len(rows)), n + cols] = 1
    fg, *_ = np.linalg.lstsq(Amat, np.asarray(P_ - S)[mask], rcond=None)
    np.testing.assert_allclose(Amat @ fg, np.asarray(P_ - S)[mask], atol=1e-9)
    M = np.asarray(S) + fg[:n, None] + fg[None, n:]
    assert np.all(M[~mask] <= 1e-9)


def _kl_certificate(P_, S, a, b):
    """P = diag(u) exp(S) diag(v): log P - S is additive, with the marginals."""
    np.testing.assert_allclose(P_.sum(1), a, atol=1e-10)
    np.testing.assert_allclose(P_.sum(0), b, atol=1e-10)
    R = np.asarray(jnp.log(P_) - S)
    np.testing.assert_allclose(R - R[:, :1] - R[:1, :] + R[0, 0], 0, atol=1e-9)


@pytest.mark.parametrize("semi", [True, False])
def test_transport_certificates(semi):
    ours = jax.jit(lambda S: P.projection_transport(S, M45, use_semi_dual=semi))(S45)
    _euclid_certificate(ours, S45, *M45)
    ours = jax.jit(lambda S: P.kl_projection_transport(S, M45, use_semi_dual=semi))(S45)
    _kl_certificate(ours, S45, *M45)


def test_transport_matches_jaxopt():
    for name in ["projection_transport", "kl_projection_transport"]:
        ref = getattr(jaxopt.projection, name)(S45, M45, make_solver=_LBFGS)
        np.testing.assert_allclose(getattr(P, name)(S45, M45), ref, atol=1e-7)


@pytest.mark.parametrize("name", ["projection_birkhoff", "kl_projection_birkhoff"])
def test_birkhoff_certificate_and_derivatives(name):
    S = jnp.asarray(np.random.default_rng(2).standard_normal((4, 4)))
    ours = jax.jit(getattr(P, name))(S)
    one = jnp.ones(4)
    (_kl_certificate if name.startswith("kl") else _euclid_certificate)(ours, S, one, one)
    V = jnp.asarray(np.random.default_rng(3).standard_normal((4, 4)))
    loss = jax.jit(lambda s: jnp.sum(getattr(P, name)(s) * V))
    eps = 1e-6
    fd = (loss(S + eps * V) - loss(S - eps * V)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(jax.jit(jax.grad(loss))(S), V), fd, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(jax.jit(lambda s: jax.jvp(loss, (s,), (V,))[1])(S), fd, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["projection_birkhoff", "kl_projection_birkhoff"])
def test_birkhoff_matches_jaxopt(name):
    S = jnp.asarray(np.random.default_rng(2).standard_normal((4, 4)))
    ref = getattr(jaxopt.projection, name)(S, make_solver=_LBFGS)
    np.testing.assert_allclose(getattr(P, name)(S), ref, atol=1e-7)


def test_projection_bad_input():
    with pytest.raises(ValueError, match="lower"):
        P.projection_box(x7, (1.0, 0.0))
    with pytest.raises(ValueError, match="equal sums"):
        P.projection_transport(jnp.ones((2, 3)), (jnp.ones(2), jnp.ones(3)))
    with pytest.raises(ValueError, match="square"):
        P.projection_birkhoff(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="shapes"):
        P.projection_affine_set(x7, (A, jnp.ones(5)))
