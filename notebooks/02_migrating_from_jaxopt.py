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
# # 02 · Migrating from jaxopt: does my script still work, and what do I gain?
#
# A typical jaxopt script (ridge regression solved by `LBFGS`, with the
# derivative of the solution in the regularization strength) is run twice: once
# with `import jaxopt`, once with `import jaxopt_lab as jaxopt` and nothing else
# changed. Both are checked against the closed form
# `w*(lam) = (X^T X / n + lam I)^{-1} X^T y / n` and its derivative
# `dw*/dlam = -(X^T X / n + lam I)^{-1} w*`.
# Then we use what jaxopt cannot do: forward-mode implicit differentiation
# (`jax.jacfwd`, `jax.hessian` of a hyper-objective) and per-instance status codes.
# Everything runs in float32, JAX's default dtype (x64 stays off), so the
# tolerances below are float32 ones: a gradient norm of 1e-6 on this problem is
# about 10 ulps of its terms.
# The full guide is in the documentation's migration page.

# %%
import importlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

n, d = 200, 20
X = jax.random.normal(jax.random.PRNGKey(0), (n, d))
w_true = jax.random.normal(jax.random.PRNGKey(1), (d,))
y = X @ w_true + 0.5 * jax.random.normal(jax.random.PRNGKey(2), (n,))
X_val = jax.random.normal(jax.random.PRNGKey(3), (n, d))
y_val = X_val @ w_true + 0.5 * jax.random.normal(jax.random.PRNGKey(4), (n,))


def closed_form(lam):
    A = X.T @ X / n + lam * jnp.eye(d)
    w = jnp.linalg.solve(A, X.T @ y / n)
    return w, -jnp.linalg.solve(A, w)


# %% [markdown]
# ## The same script, two imports
#
# `script(jaxopt)` is what a jaxopt user already has; only the module object differs.

# %%
def ridge(w, lam, X, y):
    return 0.5 * jnp.mean((X @ w - y) ** 2) + 0.5 * lam * jnp.sum(w ** 2)


def script(jaxopt):
    solver = jaxopt.LBFGS(fun=ridge, tol=1e-6, maxiter=200)
    sol = solver.run(jnp.zeros(d), 0.1, X, y)
    dw = jax.jacrev(lambda lam: solver.run(jnp.zeros(d), lam, X, y).params)(0.1)
    return sol.params, dw, sol.state


results = {}
for name in ("jaxopt", "jaxopt_lab"):
    module = importlib.import_module(name)
    t0 = time.perf_counter()
    w, dw, state = script(module)
    results[name] = (w, dw)
    assert w.dtype == jnp.float32
    if name == "jaxopt_lab":  # jaxopt's state has no status code
        assert module.status_name(state.status) == "CONVERGED"
    print(f"{name:11s} iterations={int(state.iter_num):3d}  error={float(state.error):.1e}  "
          f"time {time.perf_counter() - t0:.2f} s (with compilation)  "
          f"state type {type(state).__name__}")

w_ref, dw_ref = closed_form(0.1)
for name, (w, dw) in results.items():
    err_w = float(jnp.max(jnp.abs(w - w_ref)))
    err_dw = float(jnp.max(jnp.abs(dw - dw_ref)))
    print(f"{name:11s} max|w - w*| = {err_w:.1e}   max|dw/dlam - closed form| = {err_dw:.1e}")
    assert err_w < 1e-5 and err_dw < 1e-4  # float32; both use CG with their default tolerance

# %% [markdown]
# ## What forward mode adds
#
# jaxopt's implicit differentiation defines only a reverse-mode rule, so
# `jax.jacfwd` (and therefore `jax.hessian`, which is forward-over-reverse) of a
# function of the solution fails. jaxopt_lab's rule is a `custom_jvp` whose tangent
# is a linear solve, which JAX transposes for reverse mode; both work, and so do
# second derivatives of a hyper-objective.

# %%
import jaxopt  # noqa: E402

import jaxopt_lab  # noqa: E402


def val_loss_fn(module):
    solver = module.LBFGS(fun=ridge, tol=1e-6, maxiter=200)

    def val_loss(log_lam):
        w = solver.run(jnp.zeros(d), jnp.exp(log_lam), X, y).params
        return 0.5 * jnp.mean((X_val @ w - y_val) ** 2)

    return val_loss


try:
    jax.jacfwd(val_loss_fn(jaxopt))(jnp.log(0.1))
    print("jaxopt: forward mode worked")
except Exception as err:  # jaxopt's custom_vjp rule has no JVP
    print("jaxopt forward mode fails:", type(err).__name__, str(err).splitlines()[0][:100])

f = val_loss_fn(jaxopt_lab)
g_fwd = jax.jacfwd(f)(jnp.log(0.1))
g_rev = jax.grad(f)(jnp.log(0.1))
h = jax.hessian(f)(jnp.log(0.1))


def f_ref(log_lam):
    w, _ = closed_form(jnp.exp(log_lam))
    return 0.5 * jnp.mean((X_val @ w - y_val) ** 2)


print(f"jaxopt_lab  d/dlog(lam): forward {float(g_fwd):+.8f}  reverse {float(g_rev):+.8f}  "
      f"closed form {float(jax.grad(f_ref)(jnp.log(0.1))):+.8f}")
print(f"jaxopt_lab  d2/dlog(lam)2: {float(h):+.8f}  "
      f"closed form {float(jax.hessian(f_ref)(jnp.log(0.1))):+.8f}")
assert jnp.allclose(g_fwd, jax.grad(f_ref)(jnp.log(0.1)), rtol=1e-4)
assert jnp.allclose(h, jax.hessian(f_ref)(jnp.log(0.1)), rtol=1e-3)

# %% [markdown]
# With the second derivative, a Newton step on `log(lam)` finds the best
# regularization in a handful of outer iterations (the `make demo` job does this
# with a safeguard on digits). Here the curvature drawn against `log(lam)`:

# %%
grid = jnp.linspace(jnp.log(1e-3), jnp.log(10.0), 40)
vals = jax.vmap(f)(grid)
grads = jax.vmap(jax.grad(f))(grid)
curv = jax.vmap(jax.hessian(f))(grid)
ref = jax.vmap(f_ref)(grid)
assert np.allclose(vals, ref, rtol=1e-5) and np.all(np.isfinite(curv))

lam_axis = np.exp(np.asarray(grid))
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
axes[0].semilogx(lam_axis, vals, label="LBFGS + implicit diff.")
axes[0].semilogx(lam_axis, ref, "k:", label="closed form")
axes[0].set_ylabel("validation loss (squared units of y)")
axes[0].legend()
axes[1].semilogx(lam_axis, grads)
axes[1].set_ylabel(r"$\partial L_{val}/\partial \log\lambda$ (units of loss)")
axes[2].semilogx(lam_axis, curv, color="C2")
axes[2].set_ylabel(r"$\partial^2 L_{val}/\partial (\log\lambda)^2$ (units of loss)")
axes[2].set_title("forward-over-reverse (jaxopt: unavailable)")
for ax in axes:
    ax.axhline(0.0, color="gray", lw=0.6)
    ax.set_xlabel(r"ridge strength $\lambda$ (dimensionless)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Status codes under `vmap`
#
# jaxopt's state tells you the iteration count and error; jaxopt_lab's also carries
# a `status` code per instance. With `maxiter=5`, weakly regularized (badly
# conditioned) lanes stop at `MAX_ITER` while the others converge:

# %%
short = jaxopt_lab.LBFGS(fun=ridge, tol=1e-6, maxiter=5)
lams = jnp.logspace(-4, 2, 7)
states = jax.vmap(lambda lam: short.run(jnp.zeros(d), lam, X, y).state)(lams)
for lam, it, st in zip(lams, states.iter_num, states.status, strict=True):
    print(f"lam={float(lam):8.1e}  iterations={int(it)}  status={jaxopt_lab.status_name(st)}")
names = [jaxopt_lab.status_name(st) for st in states.status]
assert names[0] == "MAX_ITER" and names[-1] == "CONVERGED" and set(names) == {"MAX_ITER", "CONVERGED"}
