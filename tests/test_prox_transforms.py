"""Maths checks of the proximal blocks, EControl and the low-rank DCT projection."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize

import jaxopt_lab as jl

rng = np.random.default_rng(0)


def _apply(opt, params, grads):
    u, _ = opt.update(grads, opt.init(params), params)
    return optax.apply_updates(params, u)


def test_prox_update_accepts_any_prox_with_jaxopt_signature():
    jaxopt_prox = pytest.importorskip("jaxopt.prox")
    w, g = jnp.asarray(rng.standard_normal(6)), jnp.asarray(rng.standard_normal(6))
    lr, lam = 0.3, 0.4
    opt = optax.chain(optax.sgd(lr), jl.prox_update(jaxopt_prox.prox_lasso, lam, scaling=lr))
    np.testing.assert_allclose(_apply(opt, w, g), jaxopt_prox.prox_lasso(w - lr * g, lam, lr), rtol=1e-12)
    np.testing.assert_allclose(_apply(jl.prox_lasso_transform(lr, lam), w, g),
                               jaxopt_prox.prox_lasso(w - lr * g, lam, lr), rtol=1e-12)
    box = lambda x, hp, s: jax.tree_util.tree_map(lambda v: jnp.clip(v, -hp, hp), x)
    tree = {"a": w, "b": 2 * w}
    out = _apply(optax.chain(optax.sgd(lr), jl.prox_update(box, 0.5)), tree, {"a": g, "b": g})
    np.testing.assert_allclose(out["b"], jnp.clip(2 * w - lr * g, -0.5, 0.5))
    with pytest.raises(TypeError, match="prox_fn"):
        jl.prox_update(3.0)
    with pytest.raises(ValueError, match="l1reg"):
        jl.prox_lasso_transform(0.1, l1reg=-1.0)


def test_ista_reaches_sklearn_lasso():
    from sklearn.linear_model import Lasso

    X, y = rng.standard_normal((50, 8)), rng.standard_normal(50)
    alpha = 0.1
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100000).fit(X, y).coef_
    fun = lambda w: 0.5 * jnp.mean((jnp.asarray(X) @ w - jnp.asarray(y)) ** 2)
    lr = 1.0 / np.linalg.eigvalsh(X.T @ X / 50).max()
    opt = jl.prox_lasso_transform(lr, alpha)

    def step(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(fun)(w), s, w)
        return (w + u, s), None

    w0 = jnp.zeros(8)
    (w, _), _ = jax.lax.scan(step, (w0, opt.init(w0)), None, length=3000)
    np.testing.assert_allclose(w, ref, atol=1e-6)
    assert int(jnp.sum(w == 0)) == int(np.sum(ref == 0))


def test_hard_threshold_keeps_exactly_k_largest_with_signs():
    w = {"a": jnp.asarray(rng.standard_normal((5, 4))), "b": jnp.asarray(rng.standard_normal(3))}
    g = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), w)
    out = _apply(jl.hard_threshold_topk(0.5, k=4), w, g)
    for key in w:
        z = np.asarray(w[key] - 0.5 * g[key]).ravel()
        kk = min(4, z.size)
        o = np.asarray(out[key]).ravel()
        assert int(np.sum(o != 0)) == kk
        keep = np.argsort(-np.abs(z))[:kk]
        np.testing.assert_array_equal(o[keep], z[keep])  # values and signs kept
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="k"):
            jl.hard_threshold_topk(0.1, k=bad)


def _top_k_reference(v, k):
    """numpy reference: the k largest |v|, ties by lowest index (stable sort on -|v|), NaN largest
    (as ``jax.lax.top_k`` ranks it)."""
    flat = np.abs(np.asarray(v, np.float64)).ravel()
    flat = np.where(np.isnan(flat), np.inf, flat)  # the test data hold no infinities
    keep = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, bool)
    mask[keep] = True
    return mask.reshape(np.shape(v))


@pytest.mark.parametrize("name", ["ties", *(pytest.param(n, marks=pytest.mark.slow) for n in
                                           ("normal", "float64", "bfloat16", "scaled_rows", "zeros", "nan"))])
def test_topk_magnitude_mask_is_exact_on_large_leaves(name):
    """The counting search (leaves >= 2**15, k >= 256) keeps exactly the top-k of a stable sort."""
    from jaxopt_lab.ops.sparsify import topk_magnitude_mask

    r = np.random.default_rng(1)
    v = {"normal": r.standard_normal((200, 200)).astype(np.float32),
         "ties": r.integers(-6, 7, (190, 190)).astype(np.float32),  # thousands of equal magnitudes
         "float64": r.standard_normal(50_000),
         "bfloat16": jnp.asarray(r.standard_normal(40_000), jnp.bfloat16),
         "scaled_rows": (r.standard_normal((256, 160)) * np.logspace(-4, 4, 256)[:, None]).astype(np.float32),
         "zeros": np.zeros(33_000, np.float32),
         "nan": np.where(r.random(40_000) < 0.01, np.nan, r.standard_normal(40_000)).astype(np.float32)}[name]
    v = jnp.asarray(v)
    select = jax.jit(topk_magnitude_mask, static_argnums=1)
    for k in (256, 1000, v.size // 3, v.size - 1):
        mask = np.asarray(select(v, k))
        assert int(mask.sum()) == k
        np.testing.assert_array_equal(mask, _top_k_reference(v.astype(jnp.float32), k))
    assert bool(jnp.all(select(v, v.size + 5)))


def test_topk_magnitude_mask_under_vmap_matches_per_example():
    """Batched counting search (while_loop and cond under vmap): one ties-heavy and one plain row."""
    from jaxopt_lab.ops.sparsify import topk_magnitude_mask

    r = np.random.default_rng(3)
    v = jnp.asarray(np.stack([r.integers(-4, 5, 40_000), r.standard_normal(40_000)]).astype(np.float32))
    masks = np.asarray(jax.jit(jax.vmap(lambda x: topk_magnitude_mask(x, 3000)))(v))
    for row, mask in zip(v, masks, strict=True):
        np.testing.assert_array_equal(mask, _top_k_reference(row, 3000))


def test_top_k_compressor_and_hard_threshold_on_a_large_leaf_match_sorting():
    """Exactly k entries (largest in magnitude, signs kept) on a 40K-entry leaf (counting path)."""
    r = np.random.default_rng(2)
    w, g = jnp.asarray(r.standard_normal((200, 200))), jnp.asarray(r.standard_normal((200, 200)))
    k = 400
    z = np.asarray(w - 0.1 * g)
    out = np.asarray(_apply(jl.hard_threshold_topk(0.1, k=k), w, g))
    ref = np.where(_top_k_reference(z, k), z, 0.0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    comp = np.asarray(jl.top_k_compressor(k)(g, jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(comp, np.where(_top_k_reference(g, k), np.asarray(g), 0.0))


def _brute_envelope_prox(z, k, lam, d):
    """prox of lam*h** by Moreau: z - lam prox_{h*/lam}(z/lam), h*(s) = max over k-subsets S of
    0.5 sum_S s_i^2/d_i; solved as an epigraph QCQP with one constraint per subset."""
    w = z / lam
    subsets = list(itertools.combinations(range(len(z)), k))
    obj = lambda v: v[-1] / lam + 0.5 * np.sum((v[:-1] - w) ** 2)
    cons = [{"type": "ineq", "fun": (lambda v, S=S: v[-1] - 0.5 * sum(v[i] ** 2 / d[i] for i in S))}
            for S in subsets]
    x0 = np.concatenate([w, [0.5 * np.sum(w**2 / d)]])
    res = minimize(obj, x0, constraints=cons, method="SLSQP", options=dict(ftol=1e-15, maxiter=1000))
    return z - lam * res.x[:-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_envelope_prox_matches_brute_force(seed):
    r = np.random.default_rng(seed)
    m, k = 6, 2
    z, d, lam = np.abs(r.standard_normal(m)) * 2, r.uniform(0.5, 2.0, m), r.uniform(0.2, 1.0)
    factor = jl.group_envelope_prox_norms(jnp.asarray(z), k, lam, jnp.asarray(d))
    np.testing.assert_allclose(np.asarray(factor) * z, _brute_envelope_prox(z, k, lam, d), atol=1e-6)


def test_group_envelope_on_matrix_groups():
    x = jnp.asarray(rng.standard_normal((5, 4)))  # groups: the 4 columns (group_axis=-1)
    out = jl.prox_group_envelope(x, (2, 0.7), 0.5)
    norms = np.linalg.norm(np.asarray(x), axis=0)
    factor = np.asarray(jl.group_envelope_prox_norms(jnp.asarray(norms), 2, 0.35))
    np.testing.assert_allclose(out, np.asarray(x) * factor[None, :], rtol=1e-10)
    assert np.all(factor[np.argsort(norms)[:1]] <= factor.max())
    # k >= number of groups: no sparsity, the prox of (d/2)||x||^2 is x / (1 + lam d).
    np.testing.assert_allclose(jl.prox_group_envelope(x, (4, 0.7), 0.5), x / (1 + 0.35), rtol=1e-10)
    with pytest.raises(ValueError, match="k"):
        jl.group_envelope(0.1, k=0)
    with pytest.raises(ValueError, match="weight"):
        jl.group_envelope(0.1, k=2, weight=-1.0)


def test_sora_gate_thresholds_only_gates():
    params = {"gate": jnp.asarray([0.05, -0.5, 1.0]), "w": jnp.asarray([0.05, -0.5, 1.0])}
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    out = _apply(jl.sora_gate(0.5, 0.2, {"gate": True, "w": False}), params, zero)
    np.testing.assert_allclose(out["gate"], [0.0, -0.4, 0.9])
    np.testing.assert_allclose(out["w"], params["w"])


@pytest.mark.parametrize("compressor", [jl.top_k_compressor(2), jl.random_k_compressor(2)],
                         ids=["top", "rand"])
@pytest.mark.parametrize("eta", [0.0, 0.1, 1.0])
def test_econtrol_error_feedback_identity(compressor, eta):
    opt = jl.scale_by_econtrol(compressor, eta=eta, seed=3)
    params = {"a": jnp.zeros(7), "b": jnp.zeros((2, 3))}
    s = opt.init(params)
    total_g = total_out = jax.tree_util.tree_map(jnp.zeros_like, params)
    for _ in range(15):
        g = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), params)
        h_prev = s.estimate
        out, s = opt.update(g, s)
        # each step transmits one compressed message with at most k nonzeros per leaf
        for d in jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda o, h: o - h, out, h_prev)):
            assert int(jnp.sum(d != 0)) <= 2
        total_g = jax.tree_util.tree_map(jnp.add, total_g, g)
        total_out = jax.tree_util.tree_map(jnp.add, total_out, out)
    lhs = jax.tree_util.tree_map(jnp.add, total_out, s.error)
    for a, b in zip(jax.tree_util.tree_leaves(lhs), jax.tree_util.tree_leaves(total_g), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match="eta"):
        jl.scale_by_econtrol(compressor, eta=-1.0)
    with pytest.raises(ValueError, match="k"):
        jl.top_k_compressor(0)


def test_dct_projection_round_trip_and_selection():
    D = np.asarray(jl.dct_basis(12, jnp.float64))
    np.testing.assert_allclose(D.T @ D, np.eye(12), atol=1e-12)
    from scipy.fft import dct

    np.testing.assert_allclose(D.T, dct(np.eye(12), norm="ortho", axis=0), atol=1e-12)
    S = [1, 4, 7]
    G = D[:, S] @ rng.standard_normal((3, 5))  # gradient inside the span of 3 DCT columns
    opt = jl.scale_by_lowrank_dct(rank=3, b1=0.0, b2=0.0, eps=0.0)
    u, state = opt.update(jnp.asarray(G), opt.init(jnp.zeros((12, 5))))
    assert sorted(np.asarray(state.index).tolist()) == S
    Q = D[:, np.asarray(state.index)]
    np.testing.assert_allclose(Q @ (Q.T @ G), G, atol=1e-12)  # round trip is exact in the span
    np.testing.assert_allclose(np.asarray(u), Q @ np.sign(Q.T @ G), atol=1e-12)  # b1=b2=0: sign Adam
    # wide matrices are projected on the right
    u2, st2 = opt.update(jnp.asarray(G.T), opt.init(jnp.zeros((5, 12))))
    np.testing.assert_allclose(u2, np.asarray(u).T, atol=1e-12)


def test_lowrank_dct_and_root_bad_input_names_leaf():
    with pytest.raises(ValueError, match=r"rank=6 exceeds.*\['w'\]"):
        jl.lowrank_dct(0.1, rank=6).init({"w": jnp.zeros((5, 8))})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        jl.lowrank_dct(0.1, rank=2).init({"w": jnp.zeros((5, 8)), "b": jnp.zeros(5)})
    with pytest.raises(ValueError, match="rank"):
        jl.lowrank_dct(0.1, rank=0)
    masked = optax.masked(jl.lowrank_dct(0.1, rank=2), {"w": True, "b": False})
    params = {"w": jnp.ones((5, 8)), "b": jnp.ones(5)}
    u, _ = masked.update(params, masked.init(params), params)
    assert u["w"].shape == (5, 8)
