"""Zeroth-order estimators: cost of one estimate (vs a Python loop and torchopt), and scaling.

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

from jaxopt_lab import zeroth_order as zo  # noqa: E402

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
        if name.endswith("(limit)"):
            torch_cost = torchopt_costs(W, b, x, q)
            if torch_cost is not None:
                rows.append((f"RGE q={q}, d={d}",
                             f"torchopt zero_order forward (torch CPU, {torch_cost[2]} threads)",
                             *torch_cost[:2]))
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


def _torchopt():
    """``(torch, torchopt)`` or ``None`` when the optional anchor is not installed."""
    try:
        import torch
        import torchopt
    except ImportError:
        return None
    return torch, torchopt


def torchopt_costs(W, b, x, q, sigma=1e-3):
    """Median time of one torchopt zero-order estimate (forward differences, q samples)."""
    mods = _torchopt()
    if mods is None:
        return None
    torch, torchopt = mods
    Wt, bt = torch.from_numpy(np.array(W)), torch.from_numpy(np.array(b))
    dist = torch.distributions.Normal(torch.tensor(0.0), torch.tensor(1.0))
    fun = torchopt.diff.zero_order.zero_order(dist, method="forward", num_samples=q, sigma=sigma)(
        lambda z: torch.nn.functional.softplus(Wt @ z - bt).sum())
    xt = torch.from_numpy(np.array(x)).requires_grad_(True)

    def once():
        xt.grad = None
        fun(xt).backward()
        return xt.grad

    t = time.perf_counter()
    once()
    first = time.perf_counter() - t
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), torch.get_num_threads()


def scaling_check(d=50, sigma=0.01):
    """Mean estimate vs the true gradient on f = 0.5 sum a x^2: ``<E g_hat, g> / ||g||^2``."""
    a = np.linspace(0.5, 2.0, d)
    x0 = np.linspace(-1.0, 1.0, d)
    g = a * x0
    rows = []
    quad = lambda z: 0.5 * jnp.sum(jnp.asarray(a) * z * z)
    for q, n in ((1, 2000), (20, 200)):
        keys = jax.random.split(jax.random.PRNGKey(0), n)
        est = jax.jit(jax.vmap(lambda k, q=q: zo.rge(quad, jnp.asarray(x0), k, num_directions=q,
                                                smoothing=sigma)[1]))(keys)
        mean = np.asarray(jnp.mean(est, 0))
        err = np.median(np.linalg.norm(np.asarray(est) - g, axis=1)) / np.linalg.norm(g)
        rows.append(("jaxopt_lab rge (forward)", q, float(mean @ g / (g @ g)), float(err)))
    mods = _torchopt()
    if mods is not None:
        torch, torchopt = mods
        torch.manual_seed(0)
        at, xt0 = torch.from_numpy(a), torch.from_numpy(x0)
        dist = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64),
                                          torch.tensor(1.0, dtype=torch.float64))
        for method in ("forward", "antithetic", "naive"):
            for q, n in ((1, 2000), (20, 200)):
                fun = torchopt.diff.zero_order.zero_order(dist, method=method, num_samples=q, sigma=sigma)(
                    lambda z: 0.5 * (at * z * z).sum())
                ests = []
                for _ in range(n):
                    z = xt0.clone().requires_grad_(True)
                    fun(z).backward()
                    ests.append(z.grad.numpy().copy())
                est = np.stack(ests)
                err = np.median(np.linalg.norm(est - g, axis=1)) / np.linalg.norm(g)
                rows.append((f"torchopt {method}", q, float(est.mean(0) @ g / (g @ g)), float(err)))
    return rows


def main():
    est = estimator_costs()
    scaling = scaling_check()
    have_torch = _torchopt() is not None
    lines = ["## Zeroth-order estimators", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_zeroth_order.py` "
             f"(CPU, {jax.devices()[0].platform}, float32, median of {REPEATS}; compile apart; "
             "a shared machine may make absolute times noisy). Function: "
             "`sum(softplus(W x - b))`, W 200 x 1000. DeepZero training: `bench_deepzero.py`.", "",
             ("torchopt (the PyTorch reference; `pip install torch torchopt`, bench extra only) runs "
              "in the same process on the same data: its estimator is a Python loop over samples "
              "inside `backward`." if have_torch else
              "torchopt is not importable here, so its row is skipped."), "",
             "| Estimate | Implementation | first call incl. compile (s) | median (ms) | ratio to limit |",
             "| --- | --- | --- | --- | --- |"]
    for group in sorted({r[0] for r in est}, key=lambda g: [r[0] for r in est].index(g)):
        rows = [r for r in est if r[0] == group]
        limit = rows[-1][3]
        for g, name, first, med in rows:
            lines.append(f"| {g} | {name} | {first:.3f} | {1e3 * med:.3f} | {med / limit:.2f} |")
    lines += ["", "### Scaling of the forward-difference estimate (torchopt mismatch)", "",
              "On `f(x) = 0.5 sum a_i x_i^2` (d = 50, float64, sigma = 0.01) the mean of many "
              "estimates is projected on the true gradient: `<E g_hat, g> / ||g||^2` should be 1. "
              "torchopt's `forward` method multiplies the difference by sigma instead of dividing "
              "(`div_(1.0 / sigma)`), so its estimate is about sigma^2 = 1e-4 of the gradient; with "
              "more than one sample it also overwrites the base value `f(x)` by the previous "
              "difference inside its loop, so the later differences are not differences at all.", "",
              "| Estimator | q | samples | <E g_hat, g> / \\|g\\|^2 | median \\|g_hat - g\\| / \\|g\\| |",
              "| --- | --- | --- | --- | --- |"]
    for name, q, ratio, err in scaling:
        lines.append(f"| {name} | {q} | {2000 if q == 1 else 200} | {ratio:.3g} | {err:.3g} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
