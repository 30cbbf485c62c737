"""Zeroth-order estimators: cost of one estimate, and DeepZero training on digits.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_zeroth_order.py``
Writes ``benchmarks/results/zeroth_order.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pathlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from jaxopt_lab import zeroth_order as zo  # noqa: E402
from jaxopt_lab.problems import load_digits  # noqa: E402

REPEATS = 7
OUT = pathlib.Path(__file__).parent / "results" / "zeroth_order.md"


def timed(fn, *args):
    """(compile-and-first-call seconds, median seconds of REPEATS further calls)."""
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def estimator_costs(d=1000, q=20, m=200):
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.standard_normal((m, d)) / np.sqrt(d), jnp.float32)
    b = jnp.asarray(rng.standard_normal(m), jnp.float32)
    fun = lambda x: jnp.sum(jnp.logaddexp(W @ x - b, 0.0))
    x = jnp.asarray(rng.standard_normal(d), jnp.float32)
    key = jax.random.PRNGKey(0)
    f_jit = jax.jit(fun)
    batched = jax.jit(jax.vmap(fun))
    rows = []

    # RGE, q directions, forward differences: q + 1 evaluations.
    rge_vmapped = jax.jit(lambda x, k: zo.rge(fun, x, k, num_directions=q))
    u = jax.random.normal(key, (q, d), jnp.float32)
    pts = jnp.concatenate([x[None], x + 1e-3 * u])

    def rge_loop(x, k):
        us = jax.random.normal(k, (q, d), jnp.float32)
        f0 = f_jit(x)
        g = sum((f_jit(x + 1e-3 * us[i]) - f0) / 1e-3 * us[i] for i in range(q)) / q
        return f0, g

    for name, fn, args in [("RGE vmapped (jaxopt_lab)", rge_vmapped, (x, key)),
                           ("RGE Python loop of jitted evals", rge_loop, (x, key)),
                           (f"{q + 1} batched evals (limit)", batched, (pts,))]:
        rows.append((f"RGE q={q}, d={d}", name, *timed(fn, *args)))

    # CGE on all d coordinates, forward: d + 1 evaluations.
    cge_vmapped = jax.jit(lambda x: zo.cge(fun, x))
    pts_c = jnp.concatenate([x[None], x + 1e-3 * jnp.eye(d, dtype=x.dtype)])

    def cge_loop(x):
        f0 = f_jit(x)
        return f0, jnp.stack([(f_jit(x.at[i].add(1e-3)) - f0) / 1e-3 for i in range(d)])

    for name, fn, args in [("CGE vmapped (jaxopt_lab)", cge_vmapped, (x,)),
                           ("CGE Python loop of jitted evals", cge_loop, (x,)),
                           (f"{d + 1} batched evals (limit)", batched, (pts_c,))]:
        rows.append((f"CGE d={d}", name, *timed(fn, *args)))
    return rows


def digits_training(steps=400, batch=128, sparsity=0.8):
    data = load_digits(dtype=jnp.float32)

    def init(key, h=16):
        k1, k2 = jax.random.split(key)
        return {"W1": jax.random.normal(k1, (64, h)) / 8.0, "b1": jnp.zeros(h),
                "W2": jax.random.normal(k2, (h, 10)) / jnp.sqrt(h), "b2": jnp.zeros(10)}

    logits = lambda p, X: jnp.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]

    def loss(p, X, y):
        z = logits(p, X)
        return jnp.mean(jax.nn.logsumexp(z, 1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0])

    p0 = init(jax.random.PRNGKey(0))
    d = sum(x.size for x in jax.tree.leaves(p0))

    def train(opt, first_order=False):
        def step(carry, k):
            p, s = carry
            kb, ke = jax.random.split(k)
            idx = jax.random.choice(kb, data.X_train.shape[0], (batch,), replace=False)
            f = lambda q: loss(q, data.X_train[idx], data.y_train[idx])
            g = jax.grad(f)(p) if first_order else jax.tree.map(jnp.zeros_like, p)
            u, s = opt.update(g, s, p, value_fn=f, key=ke)
            return (optax.apply_updates(p, u), s), None

        keys = jax.random.split(jax.random.PRNGKey(1), steps)
        run = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), keys)[0][0])
        t = time.perf_counter()
        p = jax.block_until_ready(run(p0))
        wall = time.perf_counter() - t
        acc = float(jnp.mean(jnp.argmax(logits(p, data.X_test), 1) == data.y_test))
        return acc, wall

    full = lambda q: loss(q, data.X_train, data.y_train)
    sal = zo.zo_saliency(full, p0, jax.random.PRNGKey(2), num_directions=64)
    dens = zo.layerwise_density(sal, sparsity)
    _, k = zo.random_sparse_mask(jax.random.PRNGKey(0), p0, dens)
    rows = [
        (f"DeepZero sparse CGE ({k} of {d} coords, {k + 1} evals/step)",
         *train(zo.deepzero_sgd(0.05, dens))),
        (f"RGE q={k} (equal evals/step), momentum SGD", *train(jl.zo_sgd(0.005, num_directions=k,
                                                                          momentum=0.9))),
        ("first-order Adam (jax.grad)", *train(optax.adam(0.01), first_order=True)),
    ]
    return rows, dens, steps


def main():
    est = estimator_costs()
    digits, dens, steps = digits_training()
    lines = ["## Zeroth-order estimators", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_zeroth_order.py` "
             f"(CPU, {jax.devices()[0].platform}, float32, median of {REPEATS}; compile apart; "
             "machine shared with other jobs, so absolute times are noisy).", "",
             "torchopt (the PyTorch reference) is not installed here (no torch), so it is not "
             "compared.", "",
             "| Estimate | Implementation | first call incl. compile (s) | median (ms) | ratio to limit |",
             "| --- | --- | --- | --- | --- |"]
    for group in sorted({r[0] for r in est}, key=lambda g: [r[0] for r in est].index(g)):
        rows = [r for r in est if r[0] == group]
        limit = rows[-1][3]
        for g, name, first, med in rows:
            lines.append(f"| {g} | {name} | {first:.3f} | {1e3 * med:.3f} | {med / limit:.2f} |")
    lines += ["", f"### DeepZero on scikit-learn digits (MLP 64-16-10, {steps} steps, batch 128)", "",
              "Layer-wise densities from ZO saliency at 80% sparsity: "
              + ", ".join(f"{k}={v:.2f}" for k, v in dens.items()) + ".", "",
              "| Method | test accuracy | wall incl. compile (s) |", "| --- | --- | --- |"]
    for name, acc, wall in digits:
        lines.append(f"| {name} | {acc:.3f} | {wall:.1f} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
