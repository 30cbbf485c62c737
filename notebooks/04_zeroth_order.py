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
# # 04 · Zeroth-order training: how far do function values alone get a digits classifier?
#
# Zeroth-order (ZO) methods estimate gradients from loss evaluations only: useful
# when the loss is a black box (a simulator, a non-differentiable metric, a model
# behind an API) or when memory for backpropagation is short. We train a linear
# softmax classifier on scikit-learn's digits (650 parameters) three ways, all with
# Adam on top:
#
# - **RGE** (randomized gradient estimate): `q` random Gaussian directions,
#   `(f(x + mu u) - f(x)) / mu * u` averaged; `q + 1` evaluations per step;
# - **CGE** (coordinate-wise estimate): one finite difference per coordinate,
#   `d + 1` evaluations per step, nearly exact but `d` times the cost;
# - **first order**: `jax.grad` (reverse mode), for reference.
#
# Every perturbation of one estimate is evaluated in a single `vmap`-ed call.
# The ZO optimizers are optax transforms taking `value_fn=` and `key=` as extra
# arguments, so they chain with anything in optax.
#
# References: Ghadimi and Lan, "Stochastic first- and zeroth-order methods for
# nonconvex stochastic programming", 2013 (arXiv:1309.5549); Liu et al., "A primer
# on zeroth-order optimization in signal processing and machine learning", 2020
# (arXiv:2006.06224); Chen et al., "DeepZero: Scaling up zeroth-order optimization
# for deep model training", 2023 (arXiv:2310.02025).

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jl
from jaxopt_lab import zeroth_order as zo
from jaxopt_lab.problems import accuracy, load_digits, multinomial_logreg_loss

data = load_digits(seed=0)
init = {"W": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
dim = sum(p.size for p in jax.tree_util.tree_leaves(init))


def loss(params):
    return multinomial_logreg_loss(params, data.X_train, data.y_train)


print("parameters:", dim)

# %% [markdown]
# First, the estimators themselves: cosine similarity with the true gradient at the
# starting point (RGE's expected cosine with `q` directions in `d` dimensions is
# about `sqrt(q / d)`).

# %%
g_true = ravel_pytree(jax.grad(loss)(init))[0]
estimators = [("RGE q=10", zo.value_and_grad(loss, "rge", num_directions=10), jax.random.PRNGKey(0)),
              ("RGE q=100", zo.value_and_grad(loss, "rge", num_directions=100), jax.random.PRNGKey(0)),
              ("CGE", zo.value_and_grad(loss, "cge"), None)]
for name, vg, key in estimators:
    _, g = vg(init, key=key)
    g = ravel_pytree(g)[0]
    cos = float(g @ g_true / (jnp.linalg.norm(g) * jnp.linalg.norm(g_true)))
    print(f"{name:10s} cosine with the true gradient {cos:.3f}")
    if name == "CGE":
        assert cos > 0.99

# %% [markdown]
# Now training: 150 full-batch steps each, the whole loop one `lax.scan`.

# %%
STEPS = 150
methods = {
    "RGE (q=20)": (jl.zo_adam(0.02, method="rge", num_directions=20, smoothing=1e-3), 21),
    "CGE": (jl.zo_adam(0.02, method="cge", smoothing=1e-3), dim + 1),
    "first order": (optax.adam(0.02), None),
}


def train(opt, zeroth_order):
    def step(carry, key):
        params, state = carry
        if zeroth_order:
            updates, state = opt.update(params, state, params, value_fn=loss, key=key)
        else:
            updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), (loss(params), accuracy(params, data.X_test, data.y_test))

    keys = jax.random.split(jax.random.PRNGKey(1), STEPS)
    (params, _), (losses, accs) = jax.lax.scan(step, (init, opt.init(init)), keys)
    return params, losses, accs


results = {}
for name, (opt, evals) in methods.items():
    t0 = time.perf_counter()
    params, losses, accs = jax.jit(lambda o=opt, z=evals is not None: train(o, z))()
    jax.block_until_ready(losses)
    results[name] = (losses, accs, evals)
    print(f"{name:12s} final train loss {float(losses[-1]):.4f}  test accuracy {float(accs[-1]):.4f}  "
          f"({time.perf_counter() - t0:.1f} s with compilation)")

assert results["CGE"][1][-1] > 0.9 and results["first order"][1][-1] > 0.9
assert results["RGE (q=20)"][0][-1] < results["RGE (q=20)"][0][0]  # RGE makes progress
assert results["RGE (q=20)"][0][-1] > results["CGE"][0][-1]  # ... but slower per step

# %% [markdown]
# Per step, CGE tracks first-order training closely and RGE lags. Per function
# evaluation (the cost that matters for a black box), RGE's cheap steps make it
# competitive early on. A first-order step is counted as 3 evaluations (a reverse
# pass costs a small multiple of a forward pass).

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for name, (losses, accs, evals) in results.items():
    steps = jnp.arange(1, STEPS + 1)
    axes[0].semilogy(steps, losses, label=name)
    axes[1].loglog(steps * (evals or 3), losses, label=name)
    axes[2].plot(steps, 100 * accs, label=name)
axes[0].set_xlabel("optimizer step (count)")
axes[0].set_ylabel("training cross-entropy (nats)")
axes[1].set_xlabel("loss evaluations (count)")
axes[1].set_ylabel("training cross-entropy (nats)")
axes[2].set_xlabel("optimizer step (count)")
axes[2].set_ylabel("test accuracy (%)")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# A black-box term inside a differentiable loss: `zo.blackbox` wraps a function
# with a `jax.custom_jvp` whose tangent is `<g, dparams>` for the ZO estimate `g`
# (linear in the tangent, so `jax.grad` transposes it: forward and reverse mode see
# the same estimate for the same key). Here a
# non-differentiable penalty (the number of weights above 0.5 in magnitude, through
# a smoothed surrogate evaluated only as values) sits next to an ordinary loss.

# %%
def count_large(params):
    return jnp.sum(jax.nn.sigmoid(50.0 * (jnp.abs(params["W"]) - 0.5)))


penalty = zo.blackbox(count_large, "rge", num_directions=50, smoothing=1e-3)
total = lambda p, key: loss(p) + 0.01 * penalty(p, key=key)
val, g = jax.value_and_grad(total)(init, jax.random.PRNGKey(2))
print("loss with black-box term:", float(val), "| gradient finite:",
      all(bool(jnp.isfinite(x).all()) for x in jax.tree_util.tree_leaves(g)))
