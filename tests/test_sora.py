"""SoRA (arXiv:2311.11696): the gates' proximal step on hand-computed numbers, the sparsifying
schedule, rank pruning, and a small fine-tuning run that recovers the target's rank."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jl


def test_gate_step_is_the_papers_proximal_update():
    # g_{t+1} = T_{eta xi}(g_t - eta grad): z = g - 0.1 grad = [0.4, -0.1, 0.0, -0.6, 0.15],
    # threshold eta * xi = 0.1 -> [0.3, 0, 0, -0.5, 0.05].
    g = jnp.array([0.5, -0.2, 0.05, -0.6, 0.25])
    grad = jnp.array([1.0, -1.0, 0.5, 0.0, 1.0])
    params = {"gate": g, "w": jnp.array([1.0, 2.0])}
    grads = {"gate": grad, "w": jnp.array([0.5, -0.5])}
    opt = jl.sora(0.1, xi=1.0, gate_mask=jl.sora_gate_mask(params), base=optax.sgd(0.1))
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["gate"], [0.3, 0.0, 0.0, -0.5, 0.05], atol=1e-6)
    # the other leaves get `base` only (no thresholding)
    np.testing.assert_allclose(new["w"], [0.95, 2.05], atol=1e-6)


def test_gate_step_follows_the_schedules_and_the_gate_optimizer():
    # xi: 1.0 on step 0, 3.0 from step 1; eta: 0.1 then 0.05 -> thresholds 0.1 then 0.15.
    xi = jl.sora_xi_schedule(1.0, 3.0, num_stages=2, stage_steps=1)
    lr = lambda t: jnp.where(t == 0, 0.1, 0.05)
    g = {"gate": jnp.array([1.0, -0.3])}
    opt = jl.sora(lr, xi, gate_mask={"gate": True})
    state = opt.init(g)
    grad = {"gate": jnp.array([2.0, -1.0])}
    u, state = opt.update(grad, state, g)
    g = optax.apply_updates(g, u)
    np.testing.assert_allclose(g["gate"], [0.7, -0.1], atol=1e-6)  # [0.8, -0.2] shrunk by 0.1
    u, state = opt.update(grad, state, g)
    g = optax.apply_updates(g, u)
    np.testing.assert_allclose(g["gate"], [0.45, 0.0], atol=1e-6)  # [0.6, -0.05] shrunk by 0.15
    # the authors' released optimizer: an Adam direction, threshold xi alone
    # (scale_by_sora_prox with its default learning_rate=1): first Adam direction is sign(grad).
    p = {"gate": jnp.array([1.0, -0.3])}
    tx = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(0.1), jl.scale_by_sora_prox(0.05))
    u, _ = tx.update(grad, tx.init(p), p)
    np.testing.assert_allclose(optax.apply_updates(p, u)["gate"], [0.85, -0.15], atol=1e-5)


def test_xi_schedule_spacings():
    lin = jl.sora_xi_schedule(0.1, 0.5, num_stages=3, stage_steps=10)
    np.testing.assert_allclose([lin(0), lin(9), lin(10), lin(25), lin(1000)], [0.1, 0.1, 0.3, 0.5, 0.5],
                               rtol=1e-6)
    geo = jl.sora_xi_schedule(0.01, 1.0, num_stages=3, stage_steps=1, spacing="geometric")
    np.testing.assert_allclose([geo(0), geo(1), geo(2)], [0.01, 0.1, 1.0], rtol=1e-6)
    loglin = jl.sora_xi_schedule(0.0, 1.0, num_stages=2, stage_steps=1, spacing="log_linear")
    np.testing.assert_allclose([loglin(0), loglin(1)], [0.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="spacing"):
        jl.sora_xi_schedule(0.1, 1.0, 2, 1, spacing="cosine")
    with pytest.raises(ValueError, match="xi_init"):
        jl.sora_xi_schedule(0.0, 1.0, 2, 1, spacing="geometric")
    with pytest.raises(ValueError, match="xi must be non-negative"):
        jl.scale_by_sora_prox(-1.0)


def test_merge_and_prune():
    adapter = jl.sora_init(jax.random.PRNGKey(0), 5, 3, rank=4)
    assert adapter["lora_a"].shape == (5, 4) and adapter["lora_b"].shape == (4, 3)
    kernel = jnp.arange(15.0).reshape(5, 3)
    np.testing.assert_array_equal(jl.sora_merge(kernel, adapter), kernel)  # B = 0 at init
    adapter = dict(adapter, lora_b=jnp.ones((4, 3)), gate=jnp.array([0.5, 0.0, -2.0, 0.0]))
    params = {"layer": {"kernel": kernel, "adapter": adapter}, "bias": jnp.zeros(3)}
    pruned = jl.sora_prune(params)
    small = pruned["layer"]["adapter"]
    assert small["lora_a"].shape == (5, 2) and small["lora_b"].shape == (2, 3)
    np.testing.assert_array_equal(small["gate"], [0.5, -2.0])
    dense = kernel + adapter["lora_a"] @ np.diag(adapter["gate"]) @ adapter["lora_b"]
    np.testing.assert_allclose(jl.sora_merge(kernel, small), dense, rtol=1e-6)
    np.testing.assert_allclose(jl.sora_merge(kernel, adapter), dense, rtol=1e-6)
    mask = jl.sora_gate_mask(params)
    assert mask["layer"]["adapter"]["gate"] and not mask["layer"]["adapter"]["lora_a"] and not mask["bias"]
    with pytest.raises(ValueError, match="do not fit"):
        jl.sora_merge(kernel.T, adapter)


def _finetune(xi, steps=600):
    """Fit a frozen 8x4 weight plus a rank-6 adapter to a target that differs by rank 2."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    w0 = jax.random.normal(k[0], (8, 4))
    target = w0 + jax.random.normal(k[1], (8, 2)) @ jax.random.normal(k[2], (2, 4)) / 2
    x = jax.random.normal(k[3], (256, 8))
    y = x @ target
    params = {"adapter": jl.sora_init(k[4], 8, 4, rank=6)}
    loss = lambda p: jnp.mean((x @ jl.sora_merge(w0, p["adapter"]) - y) ** 2)
    opt = jl.sora(0.05, xi, gate_mask=jl.sora_gate_mask(params), base=optax.adamw(0.05, weight_decay=0.5))

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((params, opt.init(params)))
    return params, loss, loss({"adapter": jl.sora_init(k[4], 8, 4, rank=6)})


def test_finetuning_prunes_to_the_targets_rank():
    params, loss, initial = _finetune(jl.sora_xi_schedule(0.0, 0.4, num_stages=3, stage_steps=100), 300)
    pruned = jl.sora_prune(params)
    assert pruned["adapter"]["gate"].shape == (2,)  # the difference W* - W0 has rank 2
    assert float(loss(pruned)) == pytest.approx(float(loss(params)), rel=1e-5)
    assert float(loss(pruned)) < 1e-2 * float(initial)


@pytest.mark.slow
def test_finetuning_without_sparsity_keeps_every_rank():
    # xi = 0 is plain (gated) LoRA: no gate reaches zero, nothing is pruned
    dense, _, _ = _finetune(0.0, 300)
    assert jl.sora_prune(dense)["adapter"]["gate"].shape == (6,)
