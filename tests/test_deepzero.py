"""DeepZero feature reuse: layer-wise CGE equals plain CGE and does less work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import zeroth_order as zo

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((16, 6)))
Y = jnp.asarray(RNG.integers(0, 3, 16))
SIZES = [(6, 5), None, (5, 4), None, (4, 3)]
PARAMS = [({"W": jnp.asarray(RNG.standard_normal(s)) / 2, "b": jnp.asarray(RNG.standard_normal(s[1]))}
           if s else ()) for s in SIZES]
NUM_COORDS = [35, 0, 24, 0, 15]


def dense(p, h):
    return h @ p["W"] + p["b"]


def act(p, h):
    return jnp.tanh(h)


def ce(z):
    return jnp.mean(jax.nn.logsumexp(z, 1) - jnp.take_along_axis(z, Y[:, None], 1)[:, 0])


MODEL = zo.LayerwiseLoss([dense, act, dense, act, dense], ce, X)


def _flat(tree):
    return np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(tree)])


def _random_mask(seed, density=0.4):
    rng = np.random.default_rng(seed)
    return [jax.tree_util.tree_map(lambda a: rng.random(a.shape) < density, p) for p in PARAMS]


@pytest.mark.parametrize("difference", ["forward", "central"])
def test_layerwise_cge_equals_plain_cge_and_finite_differences(difference):
    mu = 1e-4
    # Equal up to the rounding of the loss (usually bit for bit): ~ 10 eps |f| / mu.
    tol = 10 * np.finfo(np.float64).eps * (abs(float(MODEL(PARAMS))) + 1) / mu
    mask = _random_mask(1)
    counts = [int(_flat(mk).sum()) if jax.tree_util.tree_leaves(mk) else 0 for mk in mask]

    @jax.jit  # one compilation: eager dispatch of per-coordinate work is slow
    def all_estimates(params, traced_mask):
        return (zo.cge_layerwise(MODEL, params, smoothing=mu, difference=difference),
                zo.cge(MODEL, params, smoothing=mu, difference=difference),
                jax.grad(MODEL)(params),
                zo.cge_layerwise(MODEL, params, smoothing=mu, difference=difference, mask=mask)[1],
                zo.cge_layerwise(MODEL, params, smoothing=mu, difference=difference,
                                 mask=traced_mask, num_coords=counts, chunk_size=3)[1])

    (v1, g1), (v2, g2), exact, gm, traced = all_estimates(PARAMS, mask)
    np.testing.assert_allclose(v1, v2, rtol=1e-14)
    np.testing.assert_allclose(_flat(g1), _flat(g2), rtol=0, atol=tol)
    assert jax.tree_util.tree_structure(g1) == jax.tree_util.tree_structure(PARAMS)
    # ... and the plain finite-difference gradient is the true one to O(mu) / O(mu^2).
    np.testing.assert_allclose(_flat(g1), _flat(exact), atol=1e-3 if difference == "forward" else 1e-7)
    # Concrete mask, traced mask with per-layer counts, chunks: the same numbers on the mask.
    m = _flat(mask)
    np.testing.assert_allclose(_flat(gm), np.where(m, _flat(g2), 0.0), rtol=0, atol=tol)
    np.testing.assert_allclose(_flat(traced), _flat(gm), rtol=0, atol=tol)


def test_layerwise_cge_costs_fewer_flops():
    # Layer evaluations: plain CGE k L = 74 * 5 = 370; feature reuse 35*5 + 24*3 + 15 = 262.
    def flops(fn):
        return jax.jit(fn).lower(PARAMS).compile().cost_analysis()["flops"]

    reuse = flops(lambda p: zo.cge_layerwise(MODEL, p))
    plain = flops(lambda p: zo.cge(MODEL, p))
    assert reuse < 0.8 * plain, (reuse, plain)


def test_sparse_cge_transform_reuses_features_with_the_same_estimate():
    density = [{"W": 0.3, "b": 0.5}, (), {"W": 0.5, "b": 0.5}, (), {"W": 1.0, "b": 1.0}]
    opt = zo.scale_by_sparse_cge(density, smoothing=1e-5, difference="central")
    key = jax.random.PRNGKey(3)
    step = jax.jit(lambda p, s, k: opt.update(p, s, p, value_fn=MODEL, key=k))
    u1, s1 = step(PARAMS, opt.init(PARAMS), key)
    # The mask is the one drawn by random_sparse_mask from the same key (as with a plain value_fn).
    np.testing.assert_array_equal(_flat(s1.mask), _flat(zo.random_sparse_mask(key, PARAMS, density)[0]))
    m = _flat(s1.mask)
    assert int(m.sum()) == 9 + 2 + 10 + 2 + 12 + 3  # round(0.5 * 5) == 2
    exact = _flat(jax.jit(jax.grad(MODEL))(PARAMS))
    np.testing.assert_allclose(_flat(u1), np.where(m, exact, 0.0), atol=1e-8)


def test_layerwise_bad_input():
    with pytest.raises(TypeError, match="layers"):
        zo.LayerwiseLoss(dense, ce, X)
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        zo.LayerwiseLoss([dense, 3], ce, X)
    with pytest.raises(TypeError, match="loss"):
        zo.LayerwiseLoss([dense], None, X)
    with pytest.raises(TypeError, match="model"):
        zo.cge_layerwise(MODEL.__call__, PARAMS)
    with pytest.raises(ValueError, match="params"):
        zo.cge_layerwise(MODEL, PARAMS[:2])
    with pytest.raises(ValueError, match="mask"):
        zo.cge_layerwise(MODEL, PARAMS, mask=_random_mask(0)[:3])
    with pytest.raises(ValueError, match="num_coords"):
        jax.jit(lambda mk: zo.cge_layerwise(MODEL, PARAMS, mask=mk))(_random_mask(0))
    with pytest.raises(ValueError, match="smoothing"):
        zo.cge_layerwise(MODEL, PARAMS, smoothing=0.0)
    with pytest.raises(ValueError, match="difference"):
        zo.cge_layerwise(MODEL, PARAMS, difference="backward")
    with pytest.raises(ValueError, match="loss"):
        zo.cge_layerwise(zo.LayerwiseLoss(MODEL.layers, lambda z: z, X), PARAMS)


def test_zo_grasp_scores_match_theta_times_hessian_gradient():
    exact_g = jax.grad(MODEL)(PARAMS)
    hg = jax.jvp(jax.grad(MODEL), (PARAMS,), (exact_g,))[1]
    exact = _flat(jax.tree_util.tree_map(lambda p, h: p * h, PARAMS, hg))

    @jax.jit
    def scores(params, key):
        return (zo.zo_grasp_scores(MODEL, params, None, method="cge", smoothing=1e-6,
                                   hvp_step=1e-4, difference="central"),
                zo.zo_grasp_scores(QUAD, Q0, key, num_directions=4000, smoothing=1e-3))

    det, rand = scores(PARAMS, jax.random.PRNGKey(0))
    # Deterministic CGE: finite differences of finite differences, O(delta) + rounding off.
    np.testing.assert_allclose(_flat(det), exact, rtol=0, atol=1e-3 * np.max(np.abs(exact)))
    # RGE with common random numbers on a quadratic: 1/q sum u u^T (H g), unbiased.
    hg_q = QA @ (QA @ Q0)
    se = np.sqrt((np.sum(hg_q**2) + hg_q**2) / 4000)
    assert np.all(np.abs(np.asarray(rand) - np.asarray(Q0) * hg_q) <= 5 * np.abs(np.asarray(Q0)) * se)
    with pytest.raises(ValueError, match="hvp_step"):
        zo.zo_grasp_scores(QUAD, Q0, None, method="cge", hvp_step=0.0)
    with pytest.raises(ValueError, match="key"):
        zo.zo_grasp_scores(QUAD, Q0, None)
    with pytest.raises(ValueError, match="method"):
        zo.zo_grasp_scores(QUAD, Q0, None, method="spsa")


_QM = RNG.standard_normal((5, 5))
QA = _QM @ _QM.T / 5 + np.eye(5)
Q0 = jnp.asarray(RNG.standard_normal(5))


def QUAD(x):
    return 0.5 * x @ (jnp.asarray(QA) @ x)


def _adam_reference(gs, b1, b2, eps):
    """Textbook Adam on a sequence of gradients of one coordinate: the last step."""
    m = v = 0.0
    for g in gs:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    t = len(gs)
    return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


def test_lazy_adam_is_adam_on_each_coordinate_observations():
    b1, b2, eps = 0.8, 0.95, 1e-6
    opt = zo.scale_by_lazy_adam(b1, b2, eps)
    rng = np.random.default_rng(5)
    grads = rng.standard_normal((6, 7)) * (rng.random((6, 7)) < 0.5)  # zero: not observed
    params = {"a": jnp.zeros(4), "b": jnp.zeros(3)}
    state = opt.init(params)
    step = jax.jit(opt.update)
    for s in range(6):
        u, state = step({"a": jnp.asarray(grads[s, :4]), "b": jnp.asarray(grads[s, 4:])}, state)
        u = np.concatenate([u["a"], u["b"]])
        for i in range(7):
            seen = grads[:s + 1, i][grads[:s + 1, i] != 0]
            want = _adam_reference(seen, b1, b2, eps) if grads[s, i] != 0 else 0.0
            np.testing.assert_allclose(u[i], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(np.concatenate([state.counts["a"], state.counts["b"]]),
                                  (grads != 0).sum(0))


def test_lazy_adam_equals_optax_adam_on_dense_gradients_and_bad_input():
    opt, ref = zo.scale_by_lazy_adam(), optax.scale_by_adam()
    x = jnp.asarray(RNG.standard_normal(5))
    s, r = opt.init(x), ref.init(x)
    for _ in range(4):
        g = jnp.asarray(RNG.standard_normal(5))
        (u, s), (w, r) = opt.update(g, s), ref.update(g, r)
        np.testing.assert_allclose(u, w, rtol=1e-10)
    bf = jnp.ones(3, jnp.bfloat16)
    assert opt.update(bf, opt.init(bf))[0].dtype == jnp.bfloat16
    for bad in (dict(b1=1.0), dict(b2=-0.1), dict(eps=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            zo.scale_by_lazy_adam(**bad)


def test_deepzero_adam_follows_exact_partials_on_the_mask():
    # Density 1: every coordinate is observed, the estimate is the central-difference
    # gradient (exact for a quadratic), so deepzero_adam is optax.adam on jax.grad.
    opt = zo.deepzero_adam(0.1, 1.0, smoothing=1e-7)
    ref = optax.adam(0.1)
    x, y = Q0, Q0
    s, r = opt.init(x), ref.init(y)
    for i in range(5):
        u, s = opt.update(x, s, x, value_fn=QUAD, key=jax.random.PRNGKey(i))
        x = x + u
        w, r = ref.update(jax.grad(QUAD)(y), r)
        y = y + w
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # Under inject_hyperparams with the mask options static: the same first step.
    inj = optax.inject_hyperparams(zo.deepzero_adam, static_args=("density", "refresh_every"))(
        learning_rate=0.1, density=1.0, smoothing=1e-7)
    u, _ = inj.update(Q0, inj.init(Q0), Q0, value_fn=QUAD, key=jax.random.PRNGKey(0))
    w, _ = optax.adam(0.1).update(jax.grad(QUAD)(Q0), optax.adam(0.1).init(Q0))
    np.testing.assert_allclose(u, w, rtol=1e-5)
    # Density 0.4 (2 of 5): only the masked coordinates move.
    opt = zo.deepzero_adam(0.1, 0.4)
    u, s = opt.update(Q0, opt.init(Q0), Q0, value_fn=QUAD, key=jax.random.PRNGKey(0))
    assert np.count_nonzero(np.asarray(u)) == 2
    np.testing.assert_array_equal(np.asarray(u) != 0, np.asarray(s[0].mask))
