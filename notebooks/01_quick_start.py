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
# # 01 · Quick start: how does the validation loss depend on the L2 strength?
#
# We fit an L2-regularized multinomial logistic regression on scikit-learn's
# digits (8x8 images, 10 classes, bundled with scikit-learn: no download) with
# `LBFGS`, differentiate the **solution** with respect to the regularization
# strength by implicit differentiation (reverse and forward mode), and solve
# a whole grid of strengths at once with `jax.vmap`.
#
# Everything runs on a laptop CPU in a few seconds, in float32 (JAX's default
# dtype); on a GPU the same code runs unchanged.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import jaxopt_lab as jaxopt
from jaxopt_lab.problems import load_digits, multinomial_logreg_loss

data = load_digits(seed=0)
print("train", data.X_train.shape, "validation", data.X_val.shape)


# %% [markdown]
# The inner problem: training cross-entropy plus `0.5 * lam * ||W||^2`. The
# regularization strength is passed as an ordinary argument to `run`, so it can be
# differentiated and vmapped over.

# %%
def train_loss(params, lam, X, y):
    return multinomial_logreg_loss(params, X, y) + 0.5 * lam * jnp.sum(params["W"] ** 2)


def val_loss(params):
    return multinomial_logreg_loss(params, data.X_val, data.y_val)


init = {"W": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
# float32 resolves about 7 digits of the loss (~2.3 nats at the start), so the line
# search stops seeing decreases once the gradient norm is a few 1e-5: ask for 1e-4
# (1e-7, a float64 habit, ends in a failed line search on some lanes below).
solver = jaxopt.LBFGS(train_loss, tol=1e-4, maxiter=500)

t0 = time.perf_counter()
sol = solver.run(init, 1e-2, data.X_train, data.y_train)
print(f"solved in {time.perf_counter() - t0:.2f} s (including compilation)")
print("iterations:", int(sol.state.iter_num), "| status:", jaxopt.status_name(sol.state.status),
      "| gradient norm:", float(sol.state.error))
print("validation cross-entropy:", float(val_loss(sol.params)))
assert sol.params["W"].dtype == jnp.float32 and jaxopt.status_name(sol.state.status) == "CONVERGED"


# %% [markdown]
# ## Implicit differentiation of the solution
#
# `solver.run` is wrapped by `custom_root`: the derivative of the solution
# `w*(lam)` comes from the implicit function theorem (one linear solve with the
# Hessian of the training loss, by conjugate gradient), not by differentiating
# through the iterations. Both `jax.grad` (reverse) and `jax.jvp` (forward) work.
# We differentiate with respect to `log10(lam)` and check against a central
# finite difference.

# %%
def hyper_objective(log_lam):
    params = solver.run(init, 10.0 ** log_lam, data.X_train, data.y_train).params
    return val_loss(params)


log_lam0 = -2.0
g_rev = jax.grad(hyper_objective)(log_lam0)
_, g_fwd = jax.jvp(hyper_objective, (log_lam0,), (1.0,))
eps = 1e-2  # float32: a wider step keeps rounding out of the difference (truncation ~eps^2)
g_fd = (hyper_objective(log_lam0 + eps) - hyper_objective(log_lam0 - eps)) / (2 * eps)
print(f"reverse mode   dL_val/dlog10(lam) = {float(g_rev):+.6f}")
print(f"forward mode   dL_val/dlog10(lam) = {float(g_fwd):+.6f}")
print(f"finite diff.   dL_val/dlog10(lam) = {float(g_fd):+.6f}")
# The implicit derivative is exact up to the inner tolerance and the CG solve;
# the finite difference carries O(eps^2) truncation and the inner solver's error.
assert abs(g_rev - g_fd) < 1e-2 * abs(g_fd) and jnp.allclose(g_fwd, g_rev, rtol=1e-4)

# %% [markdown]
# ## A regularization path with `vmap`
#
# `jax.vmap` over `run` solves all 24 problems in one compiled program, and the
# hypergradient of every lane comes with it. Each lane keeps its own iteration
# count and status code (returned here as auxiliary output).

# %%
def hyper_objective_aux(log_lam):
    sol = solver.run(init, 10.0 ** log_lam, data.X_train, data.y_train)
    return val_loss(sol.params), sol.state


lams = jnp.logspace(-5, 1, 24)
path = jax.jit(jax.vmap(jax.value_and_grad(hyper_objective_aux, has_aux=True)))
t0 = time.perf_counter()
(val, states), hypergrads = path(jnp.log10(lams))
jax.block_until_ready(hypergrads)
print(f"24 solves and hypergradients in {time.perf_counter() - t0:.2f} s (including compilation)")
print("statuses:", {jaxopt.status_name(s) for s in states.status})
assert all(jaxopt.status_name(s) == "CONVERGED" for s in states.status)
assert bool(jnp.all(jnp.isfinite(hypergrads)))
best = int(jnp.argmin(val))
print(f"best lam = {float(lams[best]):.2e}, validation cross-entropy {float(val[best]):.4f}")
assert hypergrads[0] < 0 < hypergrads[-1]  # the minimum is inside the grid

# %% [markdown]
# The hypergradient changes sign at the minimum of the validation loss: a
# gradient-based hyperparameter search (notebook 03) would find it.

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8))
ax0.semilogx(lams, val, "o-", ms=3, label="validation loss")
ax0.axvline(float(lams[best]), color="gray", ls=":", label="best on grid")
ax0.set_xlabel(r"L2 strength $\lambda$ (dimensionless)")
ax0.set_ylabel("validation cross-entropy (nats)")
ax0.legend()
ax1.semilogx(lams, hypergrads, "o-", ms=3, color="C1")
ax1.axhline(0.0, color="gray", lw=0.8)
ax1.set_xlabel(r"L2 strength $\lambda$ (dimensionless)")
ax1.set_ylabel(r"$\partial L_{val} / \partial \log_{10}\lambda$ (nats per decade)")
ax1.set_title("implicit hypergradient")
fig.tight_layout()
plt.show()

# %% [markdown]
# The iteration counts differ per lane (weak regularization is harder):

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(lams, states.iter_num, "o-", ms=3)
ax.set_xlabel(r"L2 strength $\lambda$ (dimensionless)")
ax.set_ylabel("L-BFGS iterations (count)")
fig.tight_layout()
plt.show()
