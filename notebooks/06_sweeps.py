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
# # 06 · Sweeps: how do I run a hyperparameter grid as one program, sharded, and resume it?
#
# `jaxopt_lab.sweep.run(fun, hparams, *args)` evaluates `fun(member_hparams, *args)`
# for every member of a grid as `jit(vmap(fun))`: one compile, every member's solve
# batched. With `mesh=` the members are split over devices (`shard_map`); with
# `checkpoint_dir=` every finished chunk is saved (orbax) and a rerun resumes.
#
# This notebook simulates 4 devices on the CPU (`jax_num_cpu_devices`, set before
# the first computation); on a machine with 4 GPUs the same code shards over them.

# %%
import os
import re

# Drop any device-count flag inherited from the environment (e.g. a test runner's);
# the number of simulated CPU devices is set through JAX's config below.
os.environ["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                                 os.environ.get("XLA_FLAGS", ""))

import tempfile
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxopt_lab as jl
from jaxopt_lab import sweep
from jaxopt_lab.problems import logreg

jax.config.update("jax_num_cpu_devices", 4)  # before the first computation
print("devices:", jax.devices())
assert len(jax.devices()) == 4

# %% [markdown]
# The per-member function: fit an L2-regularized logistic regression (synthetic
# data, 1000 samples, 50 features) with L-BFGS from a seeded random start, and
# report metrics, iterations and status. Both hyperparameters are traced arrays.

# %%
problem = logreg(n_samples=1000, n_features=50, seed=0)


def fit(h, data, eval_data):
    solver = jl.LBFGS(lambda w, d: problem.loss(w, {"l2": h["l2"]}, d), tol=1e-6, maxiter=300)
    w0 = problem.init_params(jax.random.PRNGKey(h["seed"]))
    sol = solver.run(w0, data)
    out = problem.metrics(sol.params, h, eval_data)
    out.update(iterations=sol.state.iter_num, status=sol.state.status)
    return out


hp = sweep.grid(l2=np.logspace(-5, 0, 16), seed=[0, 1])
print("members:", sweep.num_members(hp))

# %% [markdown]
# ## One device, vmapped

# %%
t0 = time.perf_counter()
res = sweep.run(fit, hp, problem.data, problem.eval_data)
jax.block_until_ready(res)
t_first = time.perf_counter() - t0
t0 = time.perf_counter()
res2 = sweep.run(fit, sweep.grid(l2=np.logspace(-4, 1, 16), seed=[2, 3]), problem.data, problem.eval_data)
jax.block_until_ready(res2)
print(f"first grid {t_first:.2f} s (with compilation); a new grid of the same shape "
      f"{time.perf_counter() - t0:.2f} s (no recompilation)")
print("statuses:", {jl.status_name(s) for s in res["status"]})

# %% [markdown]
# ## Sharded over 4 devices, in chunks of 8 members
#
# Each device runs its slice of a chunk vmapped; results are identical to the
# single-device run.

# %%
mesh = sweep.mesh_for(4)
t0 = time.perf_counter()
res_sharded = sweep.run(fit, hp, problem.data, problem.eval_data, mesh=mesh, chunk_size=8)
jax.block_until_ready(res_sharded)
print(f"sharded sweep {time.perf_counter() - t0:.2f} s (with compilation)")
for k in ("val_loss", "val_accuracy"):
    np.testing.assert_allclose(res_sharded[k], res[k], rtol=1e-4, atol=1e-6)
# float32 reductions round differently for a batch of 32 and of 2 per device, which can
# move the tol crossing by one iteration:
assert np.max(np.abs(np.asarray(res_sharded["iterations"]) - np.asarray(res["iterations"]))) <= 1
print("sharded results match the single-device run")

# %%
l2 = np.asarray(hp["l2"]).reshape(16, 2)[:, 0]
val_loss = np.asarray(res["val_loss"]).reshape(16, 2)
val_acc = np.asarray(res["val_accuracy"]).reshape(16, 2)
iters = np.asarray(res["iterations"]).reshape(16, 2)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for s in range(2):
    axes[0].semilogx(l2, val_loss[:, s], "o-", ms=3, label=f"seed {s}")
    axes[1].semilogx(l2, 100 * val_acc[:, s], "o-", ms=3, label=f"seed {s}")
    axes[2].semilogx(l2, iters[:, s], "o-", ms=3, label=f"seed {s}")
axes[0].set_ylabel("validation logistic loss (nats)")
axes[1].set_ylabel("validation accuracy (%)")
axes[2].set_ylabel("L-BFGS iterations (count)")
for ax in axes:
    ax.set_xlabel(r"L2 strength $\lambda$ (dimensionless)")
    ax.legend()
fig.tight_layout()
plt.show()
best = int(np.argmin(val_loss[:, 0]))
print(f"best l2 = {l2[best]:.1e} (validation loss {val_loss[best, 0]:.4f})")
assert 0 < best < 15  # an interior optimum

# %% [markdown]
# ## Interrupted and resumed
#
# With `checkpoint_dir`, each finished chunk is written to disk. We interrupt the
# sweep after two of its four chunks (an exception from the `on_chunk` callback
# stands in for a killed job), then call `sweep.run` again with the same folder: it
# loads the two saved chunks and computes only the other two.

# %%
class Interrupted(Exception):
    pass


def stop_after_two(i, num_chunks, loaded):
    if i == 1:
        raise Interrupted(f"stopped after chunk {i + 1} of {num_chunks}")


ckpt = tempfile.mkdtemp(prefix="sweep_ckpt_")
try:
    sweep.run(fit, hp, problem.data, problem.eval_data, mesh=mesh, chunk_size=8, checkpoint_dir=ckpt,
              on_chunk=stop_after_two)
except Interrupted as err:
    print("interrupted:", err)

events = []
resumed = sweep.run(fit, hp, problem.data, problem.eval_data, mesh=mesh, chunk_size=8,
                    checkpoint_dir=ckpt, on_chunk=lambda i, n, loaded: events.append((i, loaded)))
print("chunk, loaded from checkpoint:", events)
assert [loaded for _, loaded in events] == [True, True, False, False]
np.testing.assert_allclose(resumed["val_loss"], res_sharded["val_loss"], rtol=1e-6)
print("resumed results match the uninterrupted sweep")
