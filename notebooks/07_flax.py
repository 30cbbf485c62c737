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
# # 07 · flax: do jaxopt_lab's optimizers train a flax model unchanged?
#
# Every jaxopt_lab transform is an `optax.GradientTransformation`, so a flax model
# trains with it exactly as with `optax.adam`. The transforms that need more than
# the gradient (Sophia's curvature, a zeroth-order estimate) take it through optax's
# extra-args convention: `value_fn=` (the loss as a function of the params),
# `logits_fn=` (the model's logits) and `key=`. We train a small MLP on scikit-learn's
# digits three ways:
#
# 1. **flax.linen**: `model.apply(params, x)` in a plain `lax.scan` training loop,
#    with `optax.adam` (reference), `diffgrad`, Sophia-G (`logits_fn=`) and
#    `zo_adam` (loss values only: no backpropagation through the model);
# 2. **flax.nnx**: `nnx.Optimizer(model, jl.sophia(...), wrt=nnx.Param)`, whose
#    `update(model, grads, **kwargs)` hands the extra arguments to the transform;
# 3. **OptaxSolver**: jaxopt's solver API (`run(params, *args)`) over linen params.
#
# Full batch, float32, a few seconds on a laptop CPU.

# %%
import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax
from flax import nnx

import jaxopt_lab as jl
from jaxopt_lab.problems import load_digits

data = load_digits(seed=0)
X, y = data.X_train, data.y_train
print("train", X.shape, "validation", data.X_val.shape)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels):
    return float(100 * jnp.mean(jnp.argmax(logits, -1) == labels))


# %% [markdown]
# ## 1. flax.linen
# The training step passes each transform the extra arguments it declares; optax's
# `GradientTransformationExtraArgs` lets a chain ignore the ones a stage does not use,
# so one `extra` dict could serve all of them.

# %%
class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.tanh(nn.Dense(32)(x)))


model = MLP()
params0 = model.init(jax.random.PRNGKey(0), X)
logits_fn = lambda p: model.apply(p, X)
loss_fn = lambda p: cross_entropy(logits_fn(p), y)

STEPS = 200
optimizers = {
    "optax.adam": (optax.adam(1e-2), lambda key: {}),
    "jl.diffgrad": (jl.diffgrad(1e-2), lambda key: {}),
    "jl.sophia (Sophia-G, logits_fn=)": (jl.sophia(1e-2, estimator="gnb", update_interval=1),
                                         lambda key: dict(logits_fn=logits_fn, key=key)),
    "jl.zo_adam (loss values only)": (jl.zo_adam(1e-2, num_directions=20, smoothing=1e-3),
                                      lambda key: dict(value_fn=loss_fn, key=key)),
}


def train(tx, extra):
    def step(carry, key):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p, **extra(key))
        return (optax.apply_updates(p, updates), s), loss

    keys = jax.random.split(jax.random.PRNGKey(1), STEPS)
    (p, _), losses = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params0, tx.init(params0)))
    return p, losses


curves, trained = {}, {}
for name, (tx, extra) in optimizers.items():
    trained[name], curves[name] = train(tx, extra)
    print(f"{name:36s} train loss {float(curves[name][-1]):.3f}  "
          f"validation accuracy {accuracy(model.apply(trained[name], data.X_val), data.y_val):.1f}%")

initial = float(loss_fn(params0))
for name in ("jl.diffgrad", "jl.sophia (Sophia-G, logits_fn=)"):
    assert float(loss_fn(trained[name])) < 0.1 * initial, name
# zeroth order: 20 loss evaluations per step instead of a gradient, slower but it learns
assert float(loss_fn(trained["jl.zo_adam (loss values only)"])) < 0.8 * initial

# %% [markdown]
# ## 2. flax.nnx
# `nnx.Optimizer` keeps the optax state next to the model. Sophia-H needs the loss
# as a function of the parameters: split the model into its graph and its `nnx.Param`
# state and merge them back inside `value_fn`.

# %%
class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


nnx_model = NnxMLP(nnx.Rngs(0))
optimizer = nnx.Optimizer(nnx_model, jl.sophia(1e-2, update_interval=1), wrt=nnx.Param)


@nnx.jit
def nnx_step(model, optimizer, key):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    value_fn = lambda p: cross_entropy(nnx.merge(graphdef, p, rest)(X), y)
    loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(X), y))(model)
    optimizer.update(model, grads, value_fn=value_fn, key=key)
    return loss


nnx_initial = float(cross_entropy(nnx_model(X), y))
nnx_keys = jax.random.split(jax.random.PRNGKey(2), STEPS)
nnx_losses = [float(nnx_step(nnx_model, optimizer, k)) for k in nnx_keys]
nnx_final = float(cross_entropy(nnx_model(X), y))
print(f"nnx + Sophia-H: loss {nnx_initial:.3f} -> {nnx_final:.3f}, "
      f"validation accuracy {accuracy(nnx_model(data.X_val), data.y_val):.1f}%")
assert nnx_final < 0.1 * nnx_initial

# %% [markdown]
# ## 3. OptaxSolver: jaxopt's solver API over flax params
# `OptaxSolver(fun, opt)` runs any transform inside one compiled `while_loop` and
# reports a status, like every jaxopt_lab solver.

# %%
fun = lambda p, X, y: cross_entropy(model.apply(p, X), y)
sol = jl.OptaxSolver(fun, jl.diffgrad(1e-2), maxiter=STEPS, tol=1e-3).run(params0, X, y)
print(f"OptaxSolver(diffgrad): {int(sol.state.iter_num)} steps, status {jl.status_name(sol.state.status)}, "
      f"loss {float(fun(sol.params, X, y)):.3f}")
assert float(fun(sol.params, X, y)) < 0.1 * initial

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, losses in curves.items():
    ax.plot(losses, label=f"linen: {name}")
ax.plot(nnx_losses, "--", label="nnx: jl.sophia (Sophia-H, value_fn=)")
ax.set_yscale("log")
ax.set_xlabel("optimizer step (count)")
ax.set_ylabel("training cross-entropy (nats)")
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()
