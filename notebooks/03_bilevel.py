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
# # 03 · Bilevel: can gradient descent on hyperparameters learn regularization and clean noisy labels?
#
# A bilevel problem is `min_x F(x, y*(x))` with `y*(x) = argmin_y G(x, y)`: `x` are
# hyperparameters, `y` model parameters, `G` the training objective and `F` the
# validation loss. `jaxopt_lab.bilevel` provides a problem object
# (`BilevelProblem(outer_fun, inner_fun)`), hypergradients `dF(x, y*(x))/dx` with
# diagnostics, and bilevel algorithms that update `x` and `y` together.
#
# 1. **Hyperparameter learning**: one L2 strength per feature of a logistic
#    regression (breast-cancer data), learned with `hypergradient` + `optax.adam`.
# 2. **Data hyper-cleaning**: one weight per training point of a digits classifier
#    whose labels are 50% corrupted, learned with `ImplicitBilevel` (approximate
#    implicit differentiation) and `PenaltyBilevel` (first-order, no Hessians).
#
# References: Pedregosa, "Hyperparameter optimization with approximate gradient",
# 2016 (arXiv:1602.02355); Franceschi et al., "Forward and Reverse Gradient-Based
# Hyperparameter Optimization", 2017 (arXiv:1703.01785); Kwon et al., "On Penalty
# Methods for Nonconvex Bilevel Optimization and First-Order Stochastic
# Approximation", 2023 (arXiv:2309.01753).

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax

import jaxopt_lab as jl
from jaxopt_lab import bilevel as bl
from jaxopt_lab.problems.bilevel_problems import hyper_cleaning_digits, logreg_l2_hyperparams
from jaxopt_lab.problems.digits import accuracy

# %% [markdown]
# ## 1. Per-feature L2 penalties
#
# Inner: training logistic loss `+ sum_j exp(x_j) w_j^2 / 2`; outer: validation
# logistic loss. `x` is 30-dimensional (one log-penalty per feature). Writing your
# own problem is two functions:
#
# ```python
# problem = bl.BilevelProblem(outer_fun=lambda x, w, data: val_loss(w, data),
#                             inner_fun=lambda x, w, data: train_loss(w, data) + penalty(x, w))
# ```

# %%
inst = logreg_l2_hyperparams(seed=0, n_train=200)
problem, data = inst.problem, inst.data
X_test, y_test = inst.extra


def test_loss(w):
    z = X_test @ w
    return jnp.mean(jnp.logaddexp(0.0, z) - y_test * z)


x, y = inst.x0, inst.y0
opt = optax.adam(0.2)
opt_state = opt.init(x)
history = []
t0 = time.perf_counter()
for _ in range(40):
    g, diag = bl.hypergradient(problem, x, y, data, method="implicit", inner_tol=1e-6)
    y = diag.inner_solution  # warm start the next inner solve
    history.append((float(diag.outer_value), float(test_loss(y)), float(diag.inner_residual),
                    float(diag.adjoint_residual), int(diag.inner_iterations)))
    updates, opt_state = opt.update(g, opt_state)
    x = optax.apply_updates(x, updates)
print(f"40 outer steps in {time.perf_counter() - t0:.1f} s (including compilation)")
val_hist, test_hist, inner_res, adj_res, inner_its = map(jnp.array, zip(*history, strict=True))
print(f"validation loss {float(val_hist[0]):.4f} -> {float(val_hist[-1]):.4f}; "
      f"test loss {float(test_hist[0]):.4f} -> {float(test_hist[-1]):.4f}")
assert val_hist[-1] < 0.9 * val_hist[0]

# %% [markdown]
# The hypergradient of the implicit method agrees with a central finite difference
# of the hyper-objective `phi(x) = F(x, y*(x))` (`bl.hyperobjective` solves the inner
# problem to high accuracy) along a random direction:

# %%
direction = jax.random.normal(jax.random.PRNGKey(0), x.shape)
g, diag = bl.hypergradient(problem, x, y, data, method="implicit", inner_tol=1e-6)
phi = lambda xx: bl.hyperobjective(problem, xx, y, data, inner_tol=1e-7)
eps = 1e-2
fd = (phi(x + eps * direction) - phi(x - eps * direction)) / (2 * eps)
print(f"directional derivative: implicit {float(g @ direction):+.5f}, finite difference {float(fd):+.5f}")
assert abs(float(g @ direction) - float(fd)) < 0.05 * abs(float(fd)) + 1e-4

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
axes[0].plot(val_hist, label="validation (outer objective)")
axes[0].plot(test_hist, label="test")
axes[0].set_xlabel("outer step (count)")
axes[0].set_ylabel("logistic loss (nats)")
axes[0].legend()
axes[1].semilogy(inner_res, label=r"inner $\|\nabla_y G\|$")
axes[1].semilogy(jnp.maximum(adj_res, 1e-12), label="adjoint residual")
axes[1].set_xlabel("outer step (count)")
axes[1].set_ylabel("residual norm (loss units)")
axes[1].set_title("hypergradient diagnostics")
axes[1].legend()
axes[2].bar(jnp.arange(x.shape[0]), x)
axes[2].set_xlabel("feature index")
axes[2].set_ylabel(r"learned $\log$ L2 penalty $x_j$ (nats)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Data hyper-cleaning on digits
#
# Half of the 898 training labels are replaced by a wrong class. The inner problem
# is a weighted cross-entropy with weights `sigmoid(x_i)`; the outer objective is
# the cross-entropy on a clean validation set. A good bilevel solver drives the
# weights of the corrupted points to zero. We drive the solvers' `update` ourselves
# (jitted) to record the test accuracy along the way; `solver.run(x0, y0, data)` does
# the whole loop in one call.

# %%
clean = hyper_cleaning_digits(corruption=0.5, reg=1e-2, seed=0)
P, D, E = clean.problem, clean.data, clean.extra
print("training points", E.corrupted.shape[0], "corrupted", int(E.corrupted.sum()))

solvers = {
    "ImplicitBilevel (AID)": bl.ImplicitBilevel(P, stepsize=1000.0, maxiter=150, tol=0.0,
                                                inner_steps=20, adjoint_maxiter=20),
    "PenaltyBilevel (single loop)": bl.PenaltyBilevel(P, sigma=1e-3, stepsize=1000.0, maxiter=150,
                                                      tol=0.0, variant="single"),
}
curves, final = {}, {}
for name, solver in solvers.items():
    t0 = time.perf_counter()
    params = bl.BilevelParams(clean.x0, clean.y0)
    state = solver.init_state(params, D)
    step = jax.jit(solver.update)
    accs = []
    for _ in range(150):
        params, state = step(params, state, D)
        accs.append(float(accuracy(params.y, E.X_test, E.y_test)))
    curves[name], final[name] = accs, params
    print(f"{name:30s} test accuracy {accs[-1]:.4f}   ({time.perf_counter() - t0:.1f} s with compilation)")

# %% [markdown]
# Baselines: the same inner problem with every weight 1 (no cleaning), and with the
# corrupted points removed (the oracle a perfect cleaner would reach).

# %%
inner_solver = jl.LBFGS(P.inner_objective, tol=1e-5, maxiter=1000)


def lbfgs_inner(x_weights):
    return inner_solver.run(clean.y0, x_weights, D).params


acc_none = float(accuracy(lbfgs_inner(10.0 * jnp.ones_like(clean.x0)), E.X_test, E.y_test))
acc_oracle = float(accuracy(lbfgs_inner(jnp.where(E.corrupted, -10.0, 10.0)), E.X_test, E.y_test))
print(f"no cleaning {acc_none:.4f}   oracle {acc_oracle:.4f}")
for name in solvers:
    assert curves[name][-1] > acc_none + 0.05, name

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.8))
for name, accs in curves.items():
    ax0.plot(jnp.arange(1, 151), 100 * jnp.array(accs), label=name)
ax0.axhline(100 * acc_none, color="C3", ls="--", label="no cleaning")
ax0.axhline(100 * acc_oracle, color="k", ls=":", label="oracle (corrupted removed)")
ax0.set_xlabel("outer iteration (count)")
ax0.set_ylabel("test accuracy (%)")
ax0.legend(fontsize=8)
w = jax.nn.sigmoid(final["ImplicitBilevel (AID)"].x)
bins = jnp.linspace(0, 1, 21)
ax1.hist(w[E.corrupted], bins=bins, alpha=0.7, label="corrupted labels")
ax1.hist(w[~E.corrupted], bins=bins, alpha=0.7, label="clean labels")
ax1.set_xlabel(r"learned weight $\sigma(x_i)$ (dimensionless)")
ax1.set_ylabel("training points (count)")
ax1.set_title("ImplicitBilevel")
ax1.legend()
fig.tight_layout()
plt.show()
print(f"mean weight: corrupted {float(w[E.corrupted].mean()):.2f}, clean {float(w[~E.corrupted].mean()):.2f}")
assert w[E.corrupted].mean() < 0.5 * w[~E.corrupted].mean()
