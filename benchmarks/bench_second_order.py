"""Per-step cost of second-order transforms vs optax.adamw, Rademacher probe
generation (packed bits vs jax.random.rademacher), and M-FAC IHVP scaling.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_second_order.py
Writes benchmarks/results/second_order.md.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pathlib  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import optax.contrib  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from jaxopt_lab import curvature as cv  # noqa: E402

REPEATS = 5
WIDTH = int(os.environ.get("BENCH_WIDTH", "2236"))  # two WIDTH x WIDTH layers: ~10M params


def timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), compile_s


def model():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    s = 1 / np.sqrt(WIDTH)
    params = {"w1": s * jax.random.normal(k1, (WIDTH, WIDTH), jnp.float32),
              "w2": s * jax.random.normal(k2, (WIDTH, WIDTH), jnp.float32),
              "b": jnp.zeros(WIDTH, jnp.float32)}
    x = jax.random.normal(k3, (8, WIDTH), jnp.float32)
    loss = lambda p: jnp.mean((jnp.tanh(x @ p["w1"] + p["b"]) @ p["w2"] - x) ** 2)
    return params, loss


def step_costs(lines):
    params, loss = model()
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    steps = 10
    opts = {
        "optax.adamw": (optax.adamw(1e-3), "plain"),
        "jaxopt_lab.sophia (H, k=10)": (jl.sophia(1e-3, update_interval=10), "value_fn"),
        "optax.contrib.sophia (k=10)": (optax.contrib.sophia(1e-3, update_interval=10), "obj_fn"),
        "jaxopt_lab.adahessian": (jl.adahessian(1e-3), "value_fn"),
    }
    lines += [f"### Per-step cost, {n / 1e6:.1f}M-parameter MLP (float32, batch 8), {steps} steps "
              "per timed call (amortizes k=10)", "",
              "| optimizer | ms / step | ratio to adamw | compile s |", "|---|---|---|---|"]
    base_ms = None
    for name, (opt, kind) in opts.items():
        def run(p, opt=opt, kind=kind):
            def body(carry, key):
                p, s = carry
                g = jax.grad(loss)(p)
                if kind == "value_fn":
                    u, s = opt.update(g, s, p, value_fn=loss, key=key)
                elif kind == "obj_fn":
                    u, s = opt.update(g, s, p, obj_fn=loss)
                else:
                    u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None
            (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), jax.random.split(jax.random.PRNGKey(1), steps))
            return p
        t, c = timed(jax.jit(run), params)
        ms = 1e3 * t / steps
        base_ms = ms if base_ms is None else base_ms
        lines.append(f"| {name} | {ms:.1f} | {ms / base_ms:.2f} | {c:.1f} |")
    lines.append("")


def probe_gain(lines):
    params, _ = model()
    packed = jax.jit(lambda k: cv.rademacher_like(k, params))

    @jax.jit
    def naive(key):
        leaves, tdef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(key, len(leaves))
        return tdef.unflatten([jax.random.rademacher(k, x.shape, x.dtype)
                               for k, x in zip(keys, leaves, strict=True)])

    key = jax.random.PRNGKey(0)
    tp, cp = timed(packed, key)
    tn, cn = timed(naive, key)
    lines += ["### Rademacher probes for the same pytree", "",
              "| method | ms | speed-up | compile s |", "|---|---|---|---|",
              f"| jax.random.rademacher per leaf | {1e3 * tn:.1f} | 1.00 | {cn:.1f} |",
              f"| curvature.rademacher_like (packed bits) | {1e3 * tp:.1f} | {tn / tp:.1f} | {cp:.1f} |", ""]


def mfac_scaling(lines):
    lines += ["### M-FAC step (window update + IHVP), float32", "",
              "| d | m | ms / step | compile s |", "|---|---|---|---|"]
    grid = [(10**4, 32), (10**5, 32), (10**6, 32), (10**5, 8), (10**5, 64), (10**5, 128), (10**5, 256)]
    for d, m in grid:
        tx = jl.scale_by_mfac(num_grads=m, damping=1e-3)
        g = jax.random.normal(jax.random.PRNGKey(0), (d,), jnp.float32)
        state = tx.init(g)

        @jax.jit
        def ten(state, g, tx=tx):
            def body(s, _):
                u, s = tx.update(g, s)
                return s, u[0]
            return jax.lax.scan(body, state, None, length=10)

        t, c = timed(ten, state, g)
        lines.append(f"| {d:.0e} | {m} | {1e3 * t / 10:.2f} | {c:.1f} |")
    lines.append("")


def main():
    lines = ["## Second-order methods", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_second_order.py`  ",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
             f"jax {jax.__version__}, optax {optax.__version__}; medians of {REPEATS} repeats, "
             "compile excluded.", ""]
    probe_gain(lines)
    step_costs(lines)
    mfac_scaling(lines)
    out = pathlib.Path(__file__).parent / "results" / "second_order.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
