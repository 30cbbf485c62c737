# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Second order: does curvature help, and what step size does the Hessian allow?
#
# Part 1 trains a small MLP on digits with **Sophia** (clipped Newton-like steps
# with a Hutchinson diagonal, refreshed every 10 steps) and **AdaHessian** (Adam
# with a Hutchinson Hessian diagonal instead of squared gradients) against
# **AdamW**. Both second-order transforms are optax transforms whose `update` takes
# `value_fn=` (the minibatch loss, differentiated twice for Hessian-vector
# products) and `key=` (for the random probes).
#
# Part 2 looks at the Hessian itself: its spectrum by **stochastic Lanczos
# quadrature** (SLQ), its largest eigenvalue by Lanczos, and the stability bound of
# gradient descent: near a minimum, GD with step `eta` is stable only if
# `lambda_max <= 2 / eta`.
#
# References: Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for
# Language Model Pre-training", 2023 (arXiv:2305.14342); Yao et al., "ADAHESSIAN:
# An Adaptive Second Order Optimizer for Machine Learning", 2020 (arXiv:2006.00719);
# Loshchilov and Hutter, "Decoupled Weight Decay Regularization", 2017
# (arXiv:1711.05101); Ghorbani, Krishnan and Xiao, "An Investigation into Neural Net
# Optimization via Hessian Eigenvalue Density", 2019 (arXiv:1901.10159); Cohen et
# al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of
# Stability", 2021 (arXiv:2103.00065).

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jl
from jaxopt_lab import curvature as cv
from jaxopt_lab.problems import load_digits, multinomial_logreg_loss

data = load_digits(seed=0)


def init_mlp(key):
    k1, k2 = jax.random.split(key)
    return {"W1": jax.random.normal(k1, (64, 32)) / 8.0, "b1": jnp.zeros(32),
            "W2": jax.random.normal(k2, (32, 10)) / jnp.sqrt(32.0), "b2": jnp.zeros(10)}


def mlp_loss(params, X, y):
    logits = jnp.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])


def mlp_accuracy(params, X, y):
    logits = jnp.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    return jnp.mean(jnp.argmax(logits, axis=1) == y)


# %% [markdown]
# ## 1. Sophia and AdaHessian against AdamW
#
# 400 steps with minibatches of 128, the same batches and initialization for all;
# learning rates chosen from a small grid per method (AdamW 1e-2 with weight decay
# 1e-4, Sophia 3e-3, AdaHessian 0.1).

# %%
STEPS, BATCH = 400, 128
optimizers = {
    "AdamW": (optax.adamw(1e-2, weight_decay=1e-4), False),
    "Sophia-H": (jl.sophia(3e-3), True),
    "AdaHessian": (jl.adahessian(0.1), True),
}


def train(opt, needs_curvature):
    params0 = init_mlp(jax.random.PRNGKey(0))

    def step(carry, key):
        params, state = carry
        k_batch, k_probe = jax.random.split(key)
        idx = jax.random.choice(k_batch, data.X_train.shape[0], (BATCH,), replace=False)
        X, y = data.X_train[idx], data.y_train[idx]
        grads = jax.grad(mlp_loss)(params, X, y)
        extra = dict(value_fn=lambda p: mlp_loss(p, X, y), key=k_probe) if needs_curvature else {}
        updates, state = opt.update(grads, state, params, **extra)
        params = optax.apply_updates(params, updates)
        return (params, state), (mlp_loss(params, data.X_train, data.y_train),
                                 mlp_accuracy(params, data.X_test, data.y_test))

    keys = jax.random.split(jax.random.PRNGKey(1), STEPS)
    (params, _), curves = jax.lax.scan(step, (params0, opt.init(params0)), keys)
    return params, curves


runs = {}
for name, (opt, needs_curvature) in optimizers.items():
    t0 = time.perf_counter()
    params, (train_loss, test_acc) = jax.jit(lambda o=opt, c=needs_curvature: train(o, c))()
    jax.block_until_ready(train_loss)
    runs[name] = (params, train_loss, test_acc)
    print(f"{name:10s} train loss after 100 steps {float(train_loss[99]):.4f}, after {STEPS}: "
          f"{float(train_loss[-1]):.2e}; test accuracy {float(test_acc[-1]):.4f} "
          f"({time.perf_counter() - t0:.1f} s with compilation)")
    assert float(train_loss[-1]) < 0.05 and float(test_acc[-1]) > 0.85

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.8))
for name, (_, train_loss, test_acc) in runs.items():
    ax0.semilogy(jnp.arange(1, STEPS + 1), train_loss, label=name)
    ax1.plot(jnp.arange(1, STEPS + 1), 100 * test_acc, label=name)
ax0.set_xlabel("optimizer step (count)")
ax0.set_ylabel("full training cross-entropy (nats)")
ax1.set_xlabel("optimizer step (count)")
ax1.set_ylabel("test accuracy (%)")
ax1.set_ylim(80, 100)
for ax in (ax0, ax1):
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The Hessian spectrum and the step-size bound
#
# We take the (convex) multinomial logistic regression on digits at its minimum
# `w*` (650 parameters, small enough to check everything against the dense
# Hessian). `cv.hvp` gives Hessian-vector products by forward-over-reverse;
# `cv.lanczos` gives the extreme eigenvalues from 40 of them, `cv.slq_density` the
# spectral density from a few random probes.

# %%
def lr_loss(params):
    return multinomial_logreg_loss(params, data.X_train, data.y_train) + 0.5e-3 * jnp.sum(params["W"] ** 2)


# Everything runs in float32 (JAX's default): the loss (~0.1 nats at w*) resolves
# about 1e-8, so a gradient norm of 1e-4 is a tolerance L-BFGS can reach.
init = {"W": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
sol = jl.LBFGS(lr_loss, tol=1e-4, maxiter=2000).run(init)
w_star = sol.params
print(f"w*: {int(sol.state.iter_num)} L-BFGS iterations, status {jl.status_name(sol.state.status)}, "
      f"gradient norm {float(sol.state.error):.1e}, dtype {w_star['W'].dtype}")
assert jl.status_name(sol.state.status) == "CONVERGED" and w_star["W"].dtype == jnp.float32
matvec = lambda v: cv.hvp(lr_loss, w_star, v)

lz = cv.lanczos(matvec, w_star, jax.random.PRNGKey(0), num_iters=40)
lam_max = float(lz.eigenvalues[-1])
flat, unravel = ravel_pytree(w_star)
H = jax.hessian(lambda f: lr_loss(unravel(f)))(flat)
dense_eigs = np.linalg.eigvalsh(np.asarray(H))
print(f"lambda_max: Lanczos (40 HVPs) {lam_max:.6f}, dense eigvalsh {dense_eigs[-1]:.6f}")
assert abs(lam_max - dense_eigs[-1]) < 1e-4 * dense_eigs[-1]  # float32

slq = cv.slq_density(matvec, w_star, jax.random.PRNGKey(1), num_iters=60, n_samples=8, num_points=400,
                     grid=jnp.linspace(-0.02, 1.1 * lam_max, 400))
trace_slq = float(jnp.sum(slq.weights * slq.nodes) / slq.nodes.shape[0] * flat.size)
print(f"trace: SLQ {trace_slq:.4f}, dense {dense_eigs.sum():.4f}")
assert abs(trace_slq - dense_eigs.sum()) < 0.2 * dense_eigs.sum()

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.hist(dense_eigs, bins=80, density=True, alpha=0.5, label="dense eigenvalues (histogram)")
ax.plot(slq.grid, slq.density, color="C1", label="SLQ density (8 probes x 60 HVPs)")
ax.axvline(lam_max, color="k", ls=":", label=r"Lanczos $\lambda_{max}$")
ax.set_yscale("log")
ax.set_ylim(1e-2, None)
ax.set_xlabel(r"Hessian eigenvalue $\lambda$ (nats per unit$^2$ of parameter)")
ax.set_ylabel("spectral density (per unit eigenvalue)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# **The stability bound.** Near `w*`, GD is `w_{t+1} - w* ~ (I - eta H)(w_t - w*)`:
# the component along the top eigenvector is multiplied by `|1 - eta lambda_max|`
# each step, which is below 1 exactly when `eta < 2 / lambda_max`. We start GD at
# `w*` plus a small displacement along the top Ritz vector (and subtract a baseline
# GD run started at `w*` itself) with step sizes just
# below, at and just above `2 / lambda_max`. (Further out, the unstable run leaves
# the quadratic regime and its growth slows down: the curvature of the logistic loss
# decreases away from `w*`.)

# %%
v_top = jax.tree_util.tree_map(lambda e: e[-1], lz.eigenvectors)
v_top_flat = ravel_pytree(v_top)[0]
grad = jax.jit(jax.grad(lr_loss))


def gd_distance(eta, steps=60, delta=1e-3):
    """|<w_t - b_t, v_max>| where w starts at w* + delta v_max and b (baseline) at w*.

    Subtracting the baseline run removes the drift caused by w* being a numerical
    (not exact) minimizer. In float32, w is stored to ~1e-7 of its size, so a
    displacement of 1e-5 would be a few hundred ulps spread over 650 coordinates
    (percent-level noise in the projection); 1e-3 keeps the noise near 1e-4 and is
    still small enough for the quadratic model over the first 15 steps.
    """
    w = jax.tree_util.tree_map(lambda a, b: a + delta * b, w_star, v_top)
    b = w_star
    out = []
    for _ in range(steps):
        w = jax.tree_util.tree_map(lambda a, g: a - eta * g, w, grad(w))
        b = jax.tree_util.tree_map(lambda a, g: a - eta * g, b, grad(b))
        out.append(float(jnp.abs((ravel_pytree(w)[0] - ravel_pytree(b)[0]) @ v_top_flat)))
    return np.array(out)


fig, ax = plt.subplots(figsize=(7, 3.8))
for factor in (0.9, 1.0, 1.1):
    eta = factor * 2.0 / lam_max
    d = gd_distance(eta)
    ax.semilogy(np.arange(1, 61), d, label=rf"$\eta = {factor} \times 2/\lambda_{{max}}$ = {eta:.2f}")
    rate = (d[14] / d[4]) ** (1 / 10)  # while the displacement is small (linear regime)
    print(f"eta = {factor:.1f} x 2/lambda_max: per-step factor {rate:.4f} "
          f"(predicted |1 - eta lambda_max| = {abs(1 - eta * lam_max):.4f})")
    assert abs(rate - abs(1 - eta * lam_max)) < 0.01
ax.set_xlabel("gradient-descent step (count)")
ax.set_ylabel(r"$|\langle w_t - b_t, v_{max}\rangle|$ (parameter units)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
