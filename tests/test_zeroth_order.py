"""Zeroth-order estimators, transforms, black boxes and CBO: the maths they promise.

Statistical checks use fixed keys and bounds of 5 standard errors derived from the
number of samples (closed-form variances where they exist).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab import zeroth_order as zo

D = 5
RNG = np.random.default_rng(0)
_M = RNG.standard_normal((D, D))
A = jnp.asarray(_M @ _M.T / D + np.eye(D))
B = jnp.asarray(RNG.standard_normal(D))
X0 = jnp.asarray(RNG.standard_normal(D))
quad = lambda x: 0.5 * x @ (A @ x) + B @ x
GRAD = A @ X0 + B
N = 4000  # independent estimates per statistical test


def _samples(estimator, fun, x, n=N, seed=0, **options):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return jax.vmap(lambda k: estimator(fun, x, k, **options)[1])(keys)


def _coord_variance(kind, g):
    """Closed-form per-coordinate variance of one q=1 estimate for a linear f with gradient g."""
    s, d = jnp.sum(g**2), g.size
    if kind == "gaussian":
        return s + g**2
    if kind == "sphere":
        return d * (s + 2 * g**2) / (d + 2) - g**2
    return s - g**2  # rademacher (SPSA)


CASES = [
    ("rge-gaussian-forward", zo.rge, dict(difference="forward"), "gaussian"),
    ("rge-gaussian-central", zo.rge, dict(difference="central"), "gaussian"),
    ("rge-gaussian-antithetic", zo.rge, dict(difference="antithetic", num_directions=2), "gaussian"),
    ("rge-sphere-forward", zo.rge, dict(distribution="sphere"), "sphere"),
    ("rge-sphere-central", zo.rge, dict(distribution="sphere", difference="central"), "sphere"),
    ("spsa-central", zo.spsa, dict(), "rademacher"),
    ("spsa-forward", zo.spsa, dict(difference="forward"), "rademacher"),
    ("forward_gradient", zo.forward_gradient, dict(), "gaussian"),
]


@pytest.mark.parametrize("name,estimator,options,kind", CASES, ids=[c[0] for c in CASES])
def test_estimators_are_unbiased_on_a_quadratic(name, estimator, options, kind):
    g = _samples(estimator, quad, X0, **options)
    bound = 5 * jnp.sqrt(_coord_variance(kind, GRAD) / N)
    err = jnp.abs(jnp.mean(g, axis=0) - GRAD)
    assert bool(jnp.all(err <= bound)), (err, bound)
    # The value returned is f(x) itself.
    value, _ = estimator(quad, X0, jax.random.PRNGKey(1), **options)
    np.testing.assert_allclose(value, quad(X0), rtol=1e-12)


@pytest.mark.parametrize("kind,estimator,options,factor", [
    ("gaussian", zo.rge, {}, lambda d: d + 1),
    ("sphere", zo.rge, {"distribution": "sphere"}, lambda d: d - 1),
    ("rademacher", zo.spsa, {}, lambda d: d - 1),
])
def test_variance_shrinks_like_one_over_q(kind, estimator, options, factor):
    g = jnp.asarray(RNG.standard_normal(D))
    linear = lambda x: g @ x
    for q in (1, 4, 16):
        est = _samples(estimator, linear, X0, n=2000, num_directions=q, **options)
        sq = jnp.sum((est - g) ** 2, axis=1)
        expected = factor(D) * jnp.sum(g**2) / q
        se = jnp.std(sq) / jnp.sqrt(sq.size)
        assert abs(float(jnp.mean(sq)) - float(expected)) <= 5 * float(se), (q, jnp.mean(sq), expected)


@pytest.mark.parametrize("difference", ["forward", "central"])
def test_rge_expectation_is_smoothed_gradient_on_a_cubic(difference):
    # f = sum a x^3: f_mu(x) = E f(x + mu u) = sum a (x^3 + 3 mu^2 x), so the Gaussian
    # estimate targets 3 a x^2 + 3 a mu^2: an O(mu^2) bias for both differences.
    a = jnp.asarray([1.0, -2.0, 0.5, 1.5, -1.0])
    cubic = lambda x: jnp.sum(a * x**3)
    mu = 0.5
    g = _samples(zo.rge, cubic, X0, n=20000, smoothing=mu, difference=difference)
    smoothed = 3 * a * X0**2 + 3 * a * mu**2
    se = jnp.std(g, axis=0) / jnp.sqrt(g.shape[0])
    mean = jnp.mean(g, axis=0)
    assert bool(jnp.all(jnp.abs(mean - smoothed) <= 5 * se))
    assert bool(jnp.any(jnp.abs(mean - 3 * a * X0**2) > 10 * se)), "the O(mu^2) bias is visible"


def _fd(fun, x, mu, central):
    x = np.asarray(x)
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = mu
        out[i] = ((fun(x + e) - fun(x - e)) / (2 * mu) if central else (fun(x + e) - fun(x)) / mu)
    return out


@pytest.mark.parametrize("difference", ["forward", "central"])
def test_cge_equals_finite_differences_and_respects_mask(difference):
    fun = lambda x: jnp.sum(jnp.sin(x) * x**2) + quad(x)
    mu = 1e-4
    An, Bn = np.asarray(A), np.asarray(B)
    np_fun = lambda z: np.sum(np.sin(z) * z**2) + 0.5 * z @ (An @ z) + Bn @ z
    ref = _fd(np_fun, X0, mu, difference == "central")
    value, g = zo.cge(fun, X0, smoothing=mu, difference=difference)
    # Equal up to the rounding of f (batched vs separate evaluation): ~ 10 eps |f| / mu.
    tol = 10 * np.finfo(np.float64).eps * (abs(float(fun(X0))) + 1) / mu
    np.testing.assert_allclose(g, ref, rtol=0, atol=tol)
    np.testing.assert_allclose(value, fun(X0), rtol=1e-14)
    _, g_chunk = zo.cge(fun, X0, smoothing=mu, difference=difference, chunk_size=2)
    np.testing.assert_allclose(g_chunk, ref, rtol=0, atol=tol)
    mask = np.array([True, False, True, True, False])
    _, g_mask = zo.cge(fun, X0, smoothing=mu, difference=difference, mask=mask)
    np.testing.assert_allclose(g_mask, np.where(mask, ref, 0.0), rtol=0, atol=tol)
    traced = jax.jit(lambda m: zo.cge(fun, X0, smoothing=mu, difference=difference, mask=m,
                                      num_coords=4)[1])(jnp.asarray(mask))
    np.testing.assert_allclose(traced, g_mask, rtol=1e-12, atol=1e-12)
    # Pytree params: same numbers, same structure.
    tree = {"a": X0[:2], "b": {"c": X0[2:]}}
    tree_fun = lambda t: fun(jnp.concatenate([t["a"], t["b"]["c"]]))
    _, g_tree = zo.cge(tree_fun, tree, smoothing=mu, difference=difference)
    np.testing.assert_allclose(jnp.concatenate([g_tree["a"], g_tree["b"]["c"]]), ref, rtol=0, atol=tol)


def test_cge_bias_order_forward_mu_central_mu_squared():
    a = jnp.asarray([1.0, -2.0, 0.5, 1.5, -1.0])
    cubic = lambda x: jnp.sum(a * x**3 + x**4)
    true = 3 * a * X0**2 + 4 * X0**3
    for difference, order in (("forward", 1), ("central", 2)):
        errs = [float(jnp.linalg.norm(zo.cge(cubic, X0, smoothing=mu, difference=difference)[1] - true))
                for mu in (1e-2, 5e-3)]
        np.testing.assert_allclose(errs[0] / errs[1], 2.0**order, rtol=0.05)


def test_value_and_grad_matches_estimators_and_checks_input():
    key = jax.random.PRNGKey(3)
    vg = zo.value_and_grad(quad, method="rge", num_directions=6, difference="central")
    v1, g1 = vg(X0, key=key)
    v2, g2 = zo.rge(quad, X0, key, num_directions=6, difference="central")
    np.testing.assert_allclose(g1, g2)
    np.testing.assert_allclose(v1, v2)
    v, g = zo.value_and_grad(quad, method="cge", difference="central")(X0)
    np.testing.assert_allclose(g, GRAD, rtol=1e-7)
    with pytest.raises(ValueError, match="key"):
        vg(X0)
    with pytest.raises(ValueError, match="num_directions"):
        zo.value_and_grad(quad, num_directions=0)
    with pytest.raises(ValueError, match="smoothing"):
        zo.value_and_grad(quad, smoothing=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        zo.rge(quad, X0, key, smoothing=-1.0)
    with pytest.raises(ValueError, match="mask"):
        zo.cge(quad, X0, mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="fun"):
        zo.rge(lambda x: x, X0, key)
    with pytest.raises(ValueError, match="method"):
        zo.value_and_grad(quad, method="bogus")
    with pytest.raises(ValueError, match="num_directions"):
        zo.rge(quad, X0, key, num_directions=3, difference="antithetic")
    with pytest.raises(TypeError, match="unknown option"):
        zo.value_and_grad(quad, method="cge", num_directions=3)
    with pytest.raises(TypeError, match="num_directions"):
        zo.spsa(quad, X0, key, num_directions=2.0)


def test_blackbox_gradients_match_jax_grad():
    smooth = lambda x: jnp.sum(x**2)
    # A term JAX cannot differentiate: evaluated in NumPy through a callback.
    np_quad = lambda x: np.float64(0.5 * x @ (np.asarray(A) @ x) + np.asarray(B) @ x)
    opaque = lambda x: jax.pure_callback(np_quad, jax.ShapeDtypeStruct((), jnp.float64), x,
                                            vmap_method="sequential")
    expected = jax.grad(lambda x: smooth(x) + quad(x))(X0)
    bb = zo.blackbox(opaque, method="cge", difference="central", smoothing=1e-5)
    got = jax.jit(jax.grad(lambda x: smooth(x) + 2.0 * bb(x)))(X0)
    np.testing.assert_allclose(got, expected + GRAD, rtol=1e-7, atol=1e-7)
    # Randomized: the estimator's tolerance (5 standard errors at q directions).
    q = 4000  # the randomized check uses a jnp black box (4000 NumPy callbacks are slow)
    bb_r = zo.blackbox(quad, method="rge", num_directions=q, difference="central")
    got = jax.jit(jax.grad(lambda x: smooth(x) + bb_r(x, key=jax.random.PRNGKey(0))))(X0)
    tol = 5 * jnp.sqrt(_coord_variance("gaussian", GRAD) / q)
    assert bool(jnp.all(jnp.abs(got - expected) <= tol))
    with pytest.raises(ValueError, match="key"):
        bb_r(X0)


def test_blackbox_forward_mode_equals_reverse_mode_and_jax_grad():
    k = jax.random.PRNGKey(4)
    v = jnp.asarray(RNG.standard_normal(D))
    q = 4000
    bb = zo.blackbox(quad, method="rge", num_directions=q, difference="central")
    f = lambda x: jnp.sum(x**2) + bb(x, key=k)
    expected = 2 * X0 + GRAD
    # Jitted: eager op-by-op dispatch of the estimator is slow on a loaded machine.
    rev, fwd, (value, tangent) = jax.jit(
        lambda x: (jax.grad(f)(x), jax.jacfwd(f)(x), jax.jvp(f, (x,), (v,))))(X0)
    # Same key, same estimate: forward and reverse agree to rounding.
    np.testing.assert_allclose(fwd, rev, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tangent, rev @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(value, jnp.sum(X0**2) + quad(X0), rtol=1e-12)
    # ... and both match jax.grad of the smooth function within 5 standard errors.
    tol = 5 * jnp.sqrt(_coord_variance("gaussian", GRAD) / q)
    assert bool(jnp.all(jnp.abs(fwd - expected) <= tol)), (fwd, expected, tol)
    # Deterministic CGE through a NumPy callback: forward mode equals the exact gradient.
    np_quad = lambda x: np.float64(0.5 * x @ (np.asarray(A) @ x) + np.asarray(B) @ x)
    opaque = lambda x: jax.pure_callback(np_quad, jax.ShapeDtypeStruct((), jnp.float64), x,
                                         vmap_method="sequential")
    bc = zo.blackbox(opaque, method="cge", difference="central", smoothing=1e-5)
    jac, (_, t) = jax.jit(lambda x: (jax.jacfwd(bc)(x), jax.jvp(lambda z: 3.0 * bc(z), (x,), (v,))))(X0)
    np.testing.assert_allclose(jac, GRAD, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(t, 3.0 * GRAD @ v, rtol=1e-7, atol=1e-7)
    # Pytree params, float32: the tangent keeps the value's dtype; a per-leaf dot.
    tree = {"a": X0[:2].astype(jnp.float32), "b": X0[2:].astype(jnp.float32)}
    bt = zo.blackbox(lambda t: quad(jnp.concatenate([t["a"], t["b"]]).astype(jnp.float64)
                                    ).astype(jnp.float32), method="cge", smoothing=1e-2,
                     difference="central")
    vt = {"a": v[:2].astype(jnp.float32), "b": v[2:].astype(jnp.float32)}
    _, t = jax.jit(lambda p: jax.jvp(bt, (p,), (vt,)))(tree)
    assert t.dtype == jnp.float32
    np.testing.assert_allclose(t, GRAD @ v, rtol=1e-3)


def test_zo_sgd_with_cge_matches_sgd_and_transforms_need_extra_args():
    opt = jl.zo_sgd(0.1, method="cge", difference="central", smoothing=1e-5)
    ref = optax.sgd(0.1)
    p, s, pr, sr = X0, opt.init(X0), X0, ref.init(X0)
    for _ in range(20):
        u, s = opt.update(jnp.zeros_like(p), s, p, value_fn=quad)
        p = optax.apply_updates(p, u)
        ur, sr = ref.update(jax.grad(quad)(pr), sr, pr)
        pr = optax.apply_updates(pr, ur)
    np.testing.assert_allclose(p, pr, rtol=1e-7, atol=1e-8)
    with pytest.raises(ValueError, match="value_fn"):
        jl.zo_adam(0.1).update(X0, jl.zo_adam(0.1).init(X0), X0, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="key"):
        jl.zo_signsgd(0.1).update(X0, jl.zo_signsgd(0.1).init(X0), X0, value_fn=quad)
    chained = optax.chain(jl.scale_by_zo_estimate("spsa", num_directions=4), optax.clip(0.01),
                          optax.scale(-1.0))
    u, _ = chained.update(X0, chained.init(X0), X0, value_fn=quad, key=jax.random.PRNGKey(0))
    assert float(jnp.max(jnp.abs(u))) <= 0.01 + 1e-12


def _rastrigin(x, shift=1.5):
    z = x - shift
    return 10.0 * z.size + jnp.sum(z**2 - 10.0 * jnp.cos(2 * jnp.pi * z))


def _cbo_successes(d, seeds, **options):
    solver = jl.ConsensusBasedOptimization(_rastrigin, init_std=3.0, alpha=1e5, tol=1e-4,
                                           maxiter=5000, **options)
    keys = jax.random.split(jax.random.PRNGKey(1), seeds)
    out = jax.jit(jax.vmap(lambda k: solver.replace(key=k).run(jnp.zeros(d))))(keys)
    assert bool(jnp.all(out.state.status == jl.Status.CONVERGED))
    return int(jnp.sum(jnp.max(jnp.abs(out.params - 1.5), axis=1) < 0.25))


def test_cbo_finds_rastrigin_global_minimum_2d():
    # Stated success rate: 10 of 10 seeds (minimum at 1.5, start cloud N(0, 3^2)).
    assert _cbo_successes(2, 10, num_particles=200, noise=1.3, dt=0.05) == 10


@pytest.mark.slow
@pytest.mark.parametrize("d,options,min_success", [
    (5, dict(num_particles=200, noise=3.0, dt=0.01), 8),
    (10, dict(num_particles=500, noise=6.0, dt=0.005), 9),
])
def test_cbo_finds_rastrigin_global_minimum_high_dim(d, options, min_success):
    assert _cbo_successes(d, 10, **options) >= min_success


def test_cbo_bad_input():
    with pytest.raises(ValueError, match="num_particles"):
        jl.ConsensusBasedOptimization(_rastrigin, num_particles=1)
    with pytest.raises(ValueError, match="dt"):
        jl.ConsensusBasedOptimization(_rastrigin, dt=0.0)
    with pytest.raises(TypeError, match="fun"):
        jl.ConsensusBasedOptimization(3.0)


def test_deepzero_masks_densities_and_sparse_cge_step():
    params = {"w": jnp.asarray(RNG.standard_normal((4, 5))), "b": jnp.asarray(RNG.standard_normal(3))}
    flat = lambda t: jnp.concatenate([t["b"], t["w"].ravel()])
    fun = lambda t: quad(flat(t)[:D]) + jnp.sum(flat(t) ** 2)
    mask, k = zo.random_sparse_mask(jax.random.PRNGKey(0), params, {"w": 0.25, "b": 1 / 3})
    assert k == 6 and int(mask["w"].sum()) == 5 and int(mask["b"].sum()) == 1
    # Densities: a global top-k of the scores, counted per leaf.
    scores = {"w": jnp.arange(20.0).reshape(4, 5), "b": jnp.asarray([100.0, 0.0, 0.0])}
    dens = zo.layerwise_density(scores, sparsity=0.5)
    assert dens["b"] == pytest.approx(1 / 3) and dens["w"] == pytest.approx(11 / 20)
    with pytest.raises(ValueError, match="sparsity"):
        zo.layerwise_density(scores, 1.0)
    # One sparse-CGE step equals CGE restricted to the mask drawn from the same key.
    opt = zo.scale_by_sparse_cge({"w": 0.25, "b": 1 / 3}, smoothing=1e-6, difference="central")
    key = jax.random.PRNGKey(5)
    u, state = opt.update(params, opt.init(params), params, value_fn=fun, key=key)
    mask, _ = zo.random_sparse_mask(key, params, {"w": 0.25, "b": 1 / 3})
    g = jax.grad(fun)(params)
    for name in ("w", "b"):
        np.testing.assert_allclose(u[name], jnp.where(mask[name], g[name], 0.0), atol=1e-6)
        np.testing.assert_array_equal(state.mask[name], mask[name])
    # With refresh_every=2 the second step keeps the mask.
    opt2 = zo.scale_by_sparse_cge(0.5, refresh_every=2)
    s = opt2.init(params)
    _, s1 = opt2.update(params, s, params, value_fn=fun, key=jax.random.PRNGKey(1))
    _, s2 = opt2.update(params, s1, params, value_fn=fun, key=jax.random.PRNGKey(2))
    np.testing.assert_array_equal(s1.mask["w"], s2.mask["w"])


@pytest.mark.slow
def test_deepzero_digits_close_to_first_order():
    from jaxopt_lab.problems import load_digits

    data = load_digits(dtype=jnp.float32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p0 = {"W1": jax.random.normal(k1, (64, 16)) / 8.0, "b1": jnp.zeros(16),
          "W2": jax.random.normal(k2, (16, 10)) / 4.0, "b2": jnp.zeros(10)}
    logits = lambda p, X: jnp.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]

    def loss(p, X, y):
        z = logits(p, X)
        return jnp.mean(jax.nn.logsumexp(z, 1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])

    def train(opt, first_order=False, steps=300):
        def step(carry, k):
            p, s = carry
            kb, ke = jax.random.split(k)
            idx = jax.random.choice(kb, data.X_train.shape[0], (128,), replace=False)
            f = lambda q: loss(q, data.X_train[idx], data.y_train[idx])
            g = jax.grad(f)(p) if first_order else p
            u, s = opt.update(g, s, p, value_fn=f, key=ke)
            return (optax.apply_updates(p, u), s), None

        keys = jax.random.split(jax.random.PRNGKey(1), steps)
        p = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), keys)[0][0])(p0)
        return float(jnp.mean(jnp.argmax(logits(p, data.X_test), 1) == data.y_test))

    sal = zo.zo_saliency(lambda q: loss(q, data.X_train, data.y_train), p0, jax.random.PRNGKey(2))
    dens = zo.layerwise_density(sal, 0.8)
    acc_zo = train(zo.deepzero_sgd(0.05, dens))
    acc_fo = train(optax.adam(0.01), first_order=True)
    assert acc_fo > 0.9
    assert acc_zo >= acc_fo - 0.05, (acc_zo, acc_fo)
