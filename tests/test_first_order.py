"""Maths checks of the first-order transforms (diffGrad, AdamP/SGDP, ROOT, clipping, ⊥Grad)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl
from jaxopt_lab.ops.orthogonalize import orthogonalize
from jaxopt_lab.ops.sparsify import prox_topk
from tests.registry import TRANSFORMS

MINE = ("diffgrad", "adamp", "sgdp", "root", "coordinate_clipped_sgd", "perp_grad", "prox_lasso",
        "hard_threshold_topk", "group_envelope", "sora_gate", "econtrol-topk", "lowrank_dct",
        "layerwise_noise_adaptive", "layerwise_noise_adaptive-spectral", "refined_schedule-sgd")
rng = np.random.default_rng(0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_diffgrad_friction_coefficient_matches_paper():
    g1, g2 = rng.standard_normal(5), rng.standard_normal(5)
    b1, b2, eps = 0.9, 0.999, 1e-8
    opt = jl.scale_by_diffgrad(b1, b2, eps)
    s = opt.init(jnp.zeros(5))
    u1, s = opt.update(jnp.asarray(g1), s)
    u2, s = opt.update(jnp.asarray(g2), s)
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    xi1, xi2 = _sigmoid(np.abs(g1)), _sigmoid(np.abs(g1 - g2))  # g_0 = 0
    ref1 = xi1 * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    ref2 = xi2 * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    np.testing.assert_allclose(u1, ref1, rtol=1e-10)
    np.testing.assert_allclose(u2, ref2, rtol=1e-10)
    assert np.all((xi2 >= 0.5) & (xi2 < 1.0))
    # Unchanged gradient -> friction 0.5 exactly: half of Adam's step.
    adam = optax.scale_by_adam(b1, b2, eps)
    sa, sd = adam.init(jnp.zeros(5)), opt.init(jnp.zeros(5))
    g = jnp.asarray(g1)
    for _ in range(2):
        ua, sa = adam.update(g, sa)
        ud, sd = opt.update(g, sd)
    np.testing.assert_allclose(ud, 0.5 * ua, rtol=1e-9)


def _orthogonal_grad(W):
    G = rng.standard_normal(W.shape)
    return G - W * np.sum(W * G, 1, keepdims=True) / np.sum(W * W, 1, keepdims=True)


@pytest.mark.parametrize("make", [lambda: jl.scale_by_adamp(), lambda: jl.scale_by_sgdp()],
                         ids=["adamp", "sgdp"])
def test_adamp_projects_only_when_cosine_test_fires(make):
    W = rng.standard_normal((6, 40))
    opt = make()
    # Gradient orthogonal to every row of W (scale-invariant weight): the test fires and the
    # update is orthogonal to the weights, row by row.
    G = _orthogonal_grad(W)
    u, _ = opt.update(jnp.asarray(G), opt.init(jnp.asarray(W)), jnp.asarray(W))
    np.testing.assert_allclose(np.sum(np.asarray(u) * W, 1), 0.0, atol=1e-6)  # eps in the norms
    # Gradient aligned with W: the test does not fire, the update is the plain Adam/SGD one.
    G2 = W + 0.1 * rng.standard_normal(W.shape)
    u2, _ = opt.update(jnp.asarray(G2), opt.init(jnp.asarray(W)), jnp.asarray(W))
    ref = optax.scale_by_adam() if "Adam" in type(opt.init(W)).__name__ else optax.trace(0.9)
    r, _ = ref.update(jnp.asarray(G2), ref.init(jnp.asarray(W)))
    np.testing.assert_allclose(u2, r, rtol=1e-9)
    assert abs(np.sum(np.asarray(u2) * W)) > 1.0


def test_adamp_weight_decay_ratio_and_vectors_not_projected():
    W = rng.standard_normal((4, 30))
    G = _orthogonal_grad(W)
    opt0, opt1 = jl.scale_by_adamp(weight_decay=0.0), jl.scale_by_adamp(weight_decay=0.5, wd_ratio=0.1)
    u0, _ = opt0.update(jnp.asarray(G), opt0.init(W), jnp.asarray(W))
    u1, _ = opt1.update(jnp.asarray(G), opt1.init(W), jnp.asarray(W))
    np.testing.assert_allclose(np.asarray(u1) - np.asarray(u0), 0.5 * 0.1 * W, atol=1e-12)
    v, g = rng.standard_normal(7), rng.standard_normal(7)
    a, ref = jl.scale_by_adamp(), optax.scale_by_adam()
    np.testing.assert_allclose(a.update(jnp.asarray(g), a.init(v), jnp.asarray(v))[0],
                               ref.update(jnp.asarray(g), ref.init(v))[0], rtol=1e-9)
    with pytest.raises(ValueError, match="delta"):
        jl.adamp(0.1, delta=-1.0)


@pytest.mark.parametrize("shape", [(64, 64), (64, 128), (128, 32), (32, 256)])
def test_root_orthogonalization_error_below_bound(shape):
    X = np.random.default_rng(sum(shape)).standard_normal(shape)
    U, _, Vt = np.linalg.svd(X, full_matrices=False)
    polar = U @ Vt
    O = np.asarray(orthogonalize(jnp.asarray(X, jnp.float32)))
    err = np.linalg.norm(O - polar) / np.linalg.norm(polar)
    bound = 5e-2 if shape[0] == shape[1] else 1e-3  # square Gaussian matrices have sigma_min ~ 0
    assert err < bound, err
    # On every singular direction with sigma_i >= 0.05 sigma_max the polar factor is reached to 1e-2.
    s = np.linalg.svd(X, compute_uv=False)
    diag = np.diag(U.T @ O @ Vt.T)
    np.testing.assert_allclose(diag[s >= 0.05 * s[0]], 1.0, atol=1e-2)
    # Muon's fixed 5-step quintic, for comparison, leaves singular values in ~[0.7, 1.2].
    muon = optax.contrib._muon.orthogonalize_via_newton_schulz(
        jnp.asarray(X, jnp.float32), jnp.asarray([[3.4445, -4.7750, 2.0315]] * 5), 5)
    assert err < np.linalg.norm(np.asarray(muon) - polar) / np.linalg.norm(polar)


def test_root_soft_threshold_removes_outliers_and_errors():
    G = rng.standard_normal((16, 8))
    opt = jl.scale_by_root(beta=0.0, threshold=2.0, nesterov=False)
    cut = 2.0 * np.sqrt(np.mean(G**2))
    G_out = G.copy()
    G_out[3, 2] = 1e4  # a huge outlier barely changes the RMS-relative cut ...
    cut_out = 2.0 * np.sqrt(np.mean(G_out**2))
    u, _ = opt.update(jnp.asarray(G_out), opt.init(jnp.asarray(G)))
    ref = orthogonalize(jnp.asarray(np.clip(G_out, -cut_out, cut_out)))  # B_t = M_t - T_eps[M_t]
    np.testing.assert_allclose(u, np.sqrt(2.0) * np.asarray(ref), atol=1e-6)
    assert cut_out > cut
    with pytest.raises(ValueError, match=r"\['b'\].*matrices only"):
        jl.scale_by_root().init({"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="threshold"):
        jl.scale_by_root(threshold=-1.0)
    # The recipe sends non-matrix leaves to the fallback through optax.partition.
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(3)}
    opt = jl.root(0.1, fallback=optax.sgd(1.0))
    g = {"w": jnp.asarray(rng.standard_normal((3, 2))), "b": jnp.arange(3.0)}
    u, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(u["b"], -jnp.arange(3.0))
    sv = np.linalg.svd(np.asarray(u["w"]) / -0.1 / np.sqrt(1.5), compute_uv=False)
    np.testing.assert_allclose(sv, 1.0, atol=1e-3)


def test_clip_by_coordinate():
    u = jnp.asarray([-3.0, -0.5, 0.2, 4.0])
    out, _ = jl.clip_by_coordinate(1.0).update(u, optax.EmptyState())
    np.testing.assert_allclose(out, [-1.0, -0.5, 0.2, 1.0])
    out, _ = jl.clip_by_coordinate(1.0, relative=True).update(u, optax.EmptyState())
    rms = float(jnp.sqrt(jnp.mean(u**2)))
    np.testing.assert_allclose(out, np.clip(u, -rms, rms))
    with pytest.raises(ValueError, match="threshold"):
        jl.clip_by_coordinate(-1.0)


def test_perp_grad_is_orthogonal_to_weights():
    w = {"a": jnp.asarray(rng.standard_normal((3, 4))), "b": jnp.asarray(rng.standard_normal(5))}
    g = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), w)
    u, _ = jl.scale_by_perp_grad().update(g, optax.EmptyState(), w)
    for k in w:
        assert abs(float(jnp.vdot(u[k], w[k]))) < 1e-12
        # the removed part is along w: g - u is parallel to w
        d = np.asarray(g[k] - u[k]).ravel()
        wk = np.asarray(w[k]).ravel()
        np.testing.assert_allclose(d, (d @ wk) / (wk @ wk) * wk, atol=1e-12)
    # One step changes the weight norm only at second order: ||w - lr u||^2 = ||w||^2 + lr^2 ||u||^2.
    lr = 0.1
    new = w["b"] - lr * u["b"]
    np.testing.assert_allclose(jnp.sum(new**2), jnp.sum(w["b"] ** 2) + lr**2 * jnp.sum(u["b"] ** 2))


_FAST = ("diffgrad", "root", "prox_lasso")  # representative; the rest run with -m slow (compile-bound)


@pytest.mark.parametrize("entry", [e if e.name in _FAST else pytest.param(e, marks=pytest.mark.slow)
                                   for e in TRANSFORMS if e.name in MINE], ids=lambda e: e.name)
def test_multisteps_and_masked(entry):
    params = {"w": jnp.asarray(rng.standard_normal((6, 4))), "v": jnp.asarray(rng.standard_normal((6, 4)))}
    fun = lambda p: 0.5 * jnp.sum((p["w"] - 1.0) ** 2) + 0.5 * jnp.sum((p["v"] + 1.0) ** 2)
    opt = entry.make(entry.learning_rate, **entry.kwargs)
    ms = optax.MultiSteps(opt, every_k_schedule=2)
    s = ms.init(params)
    g = jax.grad(fun)(params)
    u1, s = ms.update(g, s, params)
    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree_util.tree_leaves(u1))
    u2, s = ms.update(g, s, params)
    direct, _ = opt.update(g, opt.init(params), params)
    for a, b in zip(jax.tree_util.tree_leaves(u2), jax.tree_util.tree_leaves(direct), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    masked = optax.masked(opt, {"w": True, "v": False})
    u, _ = masked.update(g, masked.init(params), params)
    np.testing.assert_allclose(u["v"], g["v"])  # masked-out leaf passes through
    sub = {"w": params["w"]}  # the masked transform sees only the unmasked leaves
    ref, _ = opt.update({"w": g["w"]}, opt.init(sub), sub)
    np.testing.assert_allclose(u["w"], ref["w"], rtol=1e-6, atol=1e-9)


def test_refined_schedule_closed_forms():
    T = 50
    sched = jl.refined_schedule(np.ones(T), peak_value=0.3)
    t = np.arange(T)
    np.testing.assert_allclose([sched(i) for i in t], 0.3 * (T - 1 - t) / (T - 1), atol=1e-12)  # linear decay
    norms = rng.uniform(0.5, 2.0, T)
    w = norms**-2.0
    ref = np.array([w[i] * w[i + 1:].sum() for i in range(T)])
    values = jax.vmap(jl.refined_schedule(norms))(jnp.arange(T))
    np.testing.assert_allclose(values, ref / ref.max(), rtol=1e-10)
    # Large early gradient norms: a warm-up emerges (the peak is not at step 0).
    warm = jl.refined_schedule(np.concatenate([np.linspace(10, 1, 10), np.ones(40)]))
    values = np.asarray(jax.vmap(warm)(jnp.arange(T)))
    assert values[0] < 0.05 and np.argmax(values) >= 9
    assert float(warm(10_000)) == 0.0
    with pytest.raises(ValueError, match="grad_norms"):
        jl.refined_schedule([1.0, -1.0])
    with pytest.raises(ValueError, match="smoothing"):
        jl.refined_schedule(np.ones(5), smoothing=2)


def test_adaptive_batch_size_tests_match_formulas():
    G = rng.standard_normal((8, 5)) + 0.3
    tree = {"a": jnp.asarray(G[:, :2]), "b": jnp.asarray(G[:, 2:].reshape(8, 3, 1))}
    mean = G.mean(0)
    var = np.sum((G - mean) ** 2) / 7
    passed, b = jl.norm_test(tree, 0.5)
    assert bool(passed) == (var / 8 <= 0.25 * mean @ mean)
    assert int(b) == int(np.ceil(var / (0.25 * mean @ mean)))
    ip_var = np.sum((G @ mean - mean @ mean) ** 2) / 7
    passed, b = jl.inner_product_test(tree, 0.5)
    assert bool(passed) == (ip_var / 8 <= 0.25 * (mean @ mean) ** 2)
    assert int(b) == int(np.ceil(ip_var / (0.25 * (mean @ mean) ** 2)))
    opt = optax.chain(jl.adaptive_batch_size(8, tolerance=0.5), optax.sgd(0.1))
    s = opt.init(jnp.zeros(5))
    g = jnp.asarray(mean)
    u, s = opt.update(g, s, per_example_grads=jnp.asarray(G))
    np.testing.assert_allclose(u, -0.1 * mean)
    assert int(s[0].batch_size) == max(8, int(np.ceil(var / (0.25 * mean @ mean))))
    same = jnp.tile(g, (4, 1))  # no noise: the test passes, the batch size stays
    s2 = jl.adaptive_batch_size(4).init(None)
    _, s2 = jl.adaptive_batch_size(4).update(g, s2, per_example_grads=same)
    assert bool(s2.passed) and int(s2.batch_size) == 4
    with pytest.raises(ValueError, match="per_example_grads"):
        opt.update(g, s)


def test_layerwise_noise_adaptive_first_step_and_noise_ordering():
    g = {"a": jnp.asarray(rng.standard_normal(6)), "b": jnp.asarray(3.0 * rng.standard_normal(4))}
    opt = jl.scale_by_layerwise_noise_adaptive(geometry="euclidean")
    u, _ = opt.update(g, opt.init(g))
    n2 = {k: float(jnp.sum(v**2)) for k, v in g.items()}
    mean = 0.5 * (n2["a"] + n2["b"])
    for k in g:  # first step: H_l = ||g_l||^2, direction g_l / ||g_l||
        np.testing.assert_allclose(u[k], np.sqrt(mean / n2[k]) * g[k] / np.sqrt(n2[k]), rtol=1e-6)
    # Quiet layer vs noisy layer with the same mean gradient: the noisy one gets the smaller step.
    opt = jl.scale_by_layerwise_noise_adaptive(geometry="spectral")
    params = {"quiet": jnp.zeros((4, 3)), "noisy": jnp.zeros((4, 3))}
    s = opt.init(params)
    base = jnp.asarray(rng.standard_normal((4, 3)))
    for _ in range(30):
        grads = {"quiet": base, "noisy": base + 3.0 * jnp.asarray(rng.standard_normal((4, 3)))}
        u, s = opt.update(grads, s)
    assert float(jnp.linalg.norm(u["noisy"])) < 0.5 * float(jnp.linalg.norm(u["quiet"]))
    with pytest.raises(ValueError, match="geometry"):
        jl.layerwise_noise_adaptive(0.1, geometry="bogus")
    with pytest.raises(ValueError, match=r"\['b'\]"):
        jl.layerwise_noise_adaptive(0.1, geometry="spectral").init({"b": jnp.zeros(3)})


_TREE = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}}
_BAD_INPUTS = [  # (what, call, pattern naming the argument and, for leaves, the leaf path)
    ("rank > min(shape)", lambda: jl.lowrank_dct(0.1, rank=5).init({"k": jnp.ones((4, 3))}),
     r"rank=5 exceeds min\(shape\)=3 of leaf \['k'\]"),
    ("rank <= 0", lambda: jl.lowrank_dct(0.1, rank=0), "rank"),
    ("k <= 0 (hard threshold)", lambda: jl.hard_threshold_topk(0.1, k=0), "k must be a positive int"),
    ("k <= 0 (group envelope)", lambda: jl.group_envelope(0.1, k=-1), "k must be a positive int"),
    ("k <= 0 (top-k compressor)", lambda: jl.top_k_compressor(0), "k must be a positive int"),
    ("k <= 0 (random-k compressor)", lambda: jl.random_k_compressor(-3), "k must be a positive int"),
    ("k <= 0 (prox_topk)", lambda: prox_topk(jnp.ones(3), 0), "k must be"),
    ("negative clip threshold", lambda: jl.coordinate_clipped_sgd(0.1, threshold=-1.0), "threshold"),
    ("negative l1reg", lambda: jl.prox_lasso_transform(0.1, -1e-3), "l1reg"),
    ("negative gate l1reg", lambda: jl.sora_gate(0.1, -1.0, gate_mask=lambda p: p), "l1reg"),
    ("non-positive envelope weight", lambda: jl.group_envelope(0.1, k=2, weight=-1.0), "weight"),
    ("negative eta", lambda: jl.econtrol(0.1, eta=-0.5), "eta"),
    ("negative delta", lambda: jl.sgdp(0.1, delta=-0.1), "delta"),
    ("momentum outside [0, 1)", lambda: jl.perp_grad(0.1, momentum=1.5), "momentum"),
    ("b1 outside [0, 1)", lambda: jl.layerwise_noise_adaptive(0.1, b1=1.0), "b1"),
    ("non-positive peak", lambda: jl.refined_schedule([1.0, 2.0], peak_value=-1.0), "peak_value"),
    ("max below initial batch", lambda: jl.adaptive_batch_size(8, max_batch_size=4), "max_batch_size"),
    ("vector leaf given to ROOT", lambda: jl.scale_by_root().init(_TREE),
     r"leaf \['dense'\]\['bias'\] has shape \(3,\).*matrices only; mask it out"),
    ("vector leaf given to low-rank DCT", lambda: jl.lowrank_dct(0.1, rank=2).init(_TREE),
     r"leaf \['dense'\]\['bias'\].*matrices only; mask it out"),
    ("vector leaf given to spectral noise-adaptive",
     lambda: jl.layerwise_noise_adaptive(0.1, geometry="spectral").init(_TREE),
     r"leaf \['dense'\]\['bias'\].*matrices only"),
]


@pytest.mark.parametrize("what,call,pattern", _BAD_INPUTS, ids=[b[0] for b in _BAD_INPUTS])
def test_bad_input_raises_naming_the_argument_and_leaf(what, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_matrix_only_blocks_accept_vectors_once_masked():
    """The documented fix for the error above: mask vector leaves out (they get plain SGD)."""
    is_matrix = jax.tree_util.tree_map(lambda x: x.ndim == 2, _TREE)
    opt = optax.chain(optax.masked(jl.root(0.1), is_matrix),
                      optax.masked(optax.sgd(0.1), jax.tree_util.tree_map(lambda m: not m, is_matrix)))
    u, _ = opt.update(_TREE, opt.init(_TREE), _TREE)
    np.testing.assert_allclose(u["dense"]["bias"], -0.1 * _TREE["dense"]["bias"])
    assert u["dense"]["kernel"].shape == (4, 3) and bool(jnp.all(jnp.isfinite(u["dense"]["kernel"])))


def test_adamp_projection_under_vmap_matches_per_example():
    # The radial inner products are computed only when the test fires (lax.cond); under vmap
    # both branches run and a select picks per example: results must equal the unbatched ones.
    W = rng.standard_normal((2, 5, 30))
    G = np.stack([_orthogonal_grad(W[0]), W[1] + 0.1 * rng.standard_normal((5, 30))])  # fires / not
    for opt in (jl.scale_by_adamp(weight_decay=0.3), jl.scale_by_sgdp(weight_decay=0.3, nesterov=True)):
        one = lambda g, w, opt=opt: opt.update(g, opt.init(w), w)[0]
        batched = jax.vmap(one)(jnp.asarray(G), jnp.asarray(W))
        for i in range(2):
            np.testing.assert_allclose(batched[i], one(jnp.asarray(G[i]), jnp.asarray(W[i])), rtol=1e-12)
        np.testing.assert_allclose(np.sum((np.asarray(batched[0]) - 0.3 * 0.1 * W[0]) * W[0], 1), 0.0,
                                   atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_layerwise_noise_adaptive_momentum_is_the_plain_ema(dtype):
    # The momentum update carries a zero-valued dependence on the noise estimate (to order XLA's
    # in-place write); its value must be exactly the EMA b1 * B + (1 - b1) * G in the leaf's dtype.
    opt = jl.scale_by_layerwise_noise_adaptive(b1=0.9, geometry="euclidean")
    gs = [jnp.asarray(rng.standard_normal((3, 7)), dtype) for _ in range(3)]
    state, ref = opt.init(gs[0]), jnp.zeros((3, 7), dtype)
    step = jax.jit(opt.update)
    for g in gs:
        _, state = step(g, state)
        ref = (0.9 * ref + (1 - 0.9) * g).astype(dtype)
        assert state.momentum.dtype == dtype
        # float32: XLA may contract multiply-adds (ulps); bfloat16: the same roundings as the plain EMA.
        tol = dict(rtol=1e-6, atol=1e-7) if dtype == jnp.float32 else dict(rtol=0.0, atol=0.0)
        np.testing.assert_allclose(np.asarray(state.momentum, np.float32), np.asarray(ref, np.float32), **tol)
