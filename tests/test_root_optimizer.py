"""root: the ROOT optimizer's default AdamW fallback for non-matrix leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jl

rng = np.random.default_rng(0)


def _run(opt, grads_seq, params):
    state = opt.init(params)
    outs = []
    for g in grads_seq:
        u, state = opt.update(g, state, params)
        params = optax.apply_updates(params, u)
        outs.append(u)
    return outs


def _tree():
    return {"w": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal(4), jnp.float32),
            "s": jnp.asarray(0.5, jnp.float32)}


def test_bias_and_scalar_get_adam_matrices_get_root_without_fallback():
    params = _tree()
    grads = [jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
             for _ in range(3)]
    outs = _run(jl.root(0.05), grads, params)
    core = optax.chain(jl.scale_by_root(), optax.scale_by_learning_rate(0.05))
    ref_w = _run(core, [g["w"] for g in grads], params["w"])
    ref_other = _run(optax.adam(0.05), [{"b": g["b"], "s": g["s"]} for g in grads],
                     {"b": params["b"], "s": params["s"]})
    for u, rw, ro in zip(outs, ref_w, ref_other, strict=True):
        np.testing.assert_allclose(u["w"], rw, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(u["b"], ro["b"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(u["s"], ro["s"], rtol=1e-6, atol=1e-7)
    # Adam's bias-corrected first step: -lr * sign(g) (a plain SGD fallback would give -lr * g).
    np.testing.assert_allclose(outs[0]["b"], -0.05 * np.sign(grads[0]["b"]), rtol=1e-5)


def test_adam_options_and_weight_decay_reach_the_fallback():
    params = _tree()
    grads = [jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
             for _ in range(2)]
    opt = jl.root(0.05, adam_learning_rate=0.01, adam_b1=0.5, adam_b2=0.9, adam_weight_decay=0.1)
    outs = _run(opt, grads, params)
    sub = lambda t: {"b": t["b"], "s": t["s"]}
    ref = _run(optax.adamw(0.01, b1=0.5, b2=0.9, weight_decay=0.1), [sub(g) for g in grads], sub(params))
    for u, r in zip(outs, ref, strict=True):
        np.testing.assert_allclose(u["b"], r["b"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(u["s"], r["s"], rtol=1e-6, atol=1e-7)


def test_explicit_fallback_still_used():
    params = _tree()
    g = jax.tree_util.tree_map(jnp.ones_like, params)
    opt = jl.root(0.05, fallback=optax.sgd(0.3))
    u, _ = opt.update(g, opt.init(params))
    np.testing.assert_allclose(u["b"], -0.3 * np.ones(4))


def test_trains_a_linear_layer_with_bias_in_jit():
    X = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)
    W_true = jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)
    Y = X @ W_true + jnp.asarray([1.0, -2.0, 0.5])
    loss = lambda p: 0.5 * jnp.mean(jnp.sum((X @ p["w"] + p["b"] - Y) ** 2, axis=1))
    opt = jl.root(0.05)
    params = {"w": jnp.zeros((8, 3)), "b": jnp.zeros(3)}

    @jax.jit
    def run(params):
        def body(c, _):
            p, s = c
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(body, (params, opt.init(params)), None, 300)[0][0]

    out = run(params)
    assert float(loss(out)) < 1e-2 * float(loss(params))
    np.testing.assert_allclose(out["b"], [1.0, -2.0, 0.5], atol=0.1)
