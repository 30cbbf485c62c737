"""Per-step cost of second-order transforms vs optax.adamw, Rademacher probe
generation (packed bits vs jax.random.rademacher), and M-FAC IHVP scaling.

Run: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_second_order.py [probes] [steps] [mfac]
(no argument: all three sections; XLA:CPU runs single-threaded).
Writes benchmarks/results/second_order.md.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Fixed thread count: one XLA:CPU thread, so timings do not depend on how many cores
# the (shared) machine has free.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()

import pathlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import optax.contrib  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from jaxopt_lab import curvature as cv  # noqa: E402

REPEATS = 5
MFAC_REPEATS = 9
L3_BYTES = 32e6  # this machine's L3 cache (lscpu)
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


def _paired_median_ms(fns, args, repeats, per_call):
    """Median ms per step of each ``fns[i](*args[i])``, timed in alternation so that both
    see the same load of the shared machine."""
    for fn, a in zip(fns, args, strict=True):
        jax.block_until_ready(fn(*a))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn, a in zip(times, fns, args, strict=True):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*a))
            t.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(t)) / per_call for t in times]


def mfac_scaling(lines, repeats=MFAC_REPEATS, steps=20):
    """M-FAC step time against d (m fixed) and m (d fixed), with a memory-bound floor.

    The floor is the same two products with the window (``G g`` and ``c G``) alone,
    also ``steps`` times in a scan: an O(dm) IHVP must stay a constant multiple of it.
    """
    lines += [f"### M-FAC step (window update + IHVP), float32, {steps} steps per timed call, "
              f"median of {repeats}; XLA:CPU single-threaded", "",
              "Floor: the two products with the window alone (`G @ g`, `c @ G`), the O(dm) part "
              "any IHVP needs. Window size in MB = 4 d m / 1e6 (L3 cache here: 32 MB).", "",
              "| d | m | window MB | ms / step | floor ms | step / floor | compile s |",
              "|---|---|---|---|---|---|---|"]
    grid_d = [(d, 32) for d in (10**4, 3 * 10**4, 10**5, 3 * 10**5, 6 * 10**5, 10**6)]
    grid_m = [(10**5, m) for m in (8, 16, 64, 128, 192, 256)]
    rows, floors = {}, {}
    for d, m in grid_d + grid_m:
        tx = jl.scale_by_mfac(num_grads=m, damping=1e-3)
        g = jax.random.normal(jax.random.PRNGKey(0), (d,), jnp.float32)
        G = jax.random.normal(jax.random.PRNGKey(1), (m, d), jnp.float32)
        state = tx.init(g)
        state = state._replace(grads=G, gram=G @ G.T)

        def run(state, g, tx=tx):
            def body(s, _):
                u, s = tx.update(g, s)
                return s, u[0]
            return jax.lax.scan(body, state, None, length=steps)

        def floor(G, g):
            def body(x, _):
                c = G @ x
                return g - 1e-3 * (c @ G), None
            return jax.lax.scan(body, g, None, length=steps)[0]

        t0 = time.perf_counter()
        fn = jax.jit(run).lower(state, g).compile()
        c = time.perf_counter() - t0
        ms, fl = _paired_median_ms([fn, jax.jit(floor)], [(state, g), (G, g)], repeats, steps)
        rows[(d, m)] = ms
        floors[(d, m)] = fl
        lines.append(f"| {d:.0e} | {m} | {4 * d * m / 1e6:.1f} | {ms:.3f} | {fl:.3f} | {ms / fl:.2f} "
                     f"| {c:.1f} |")
    ds = np.array([d for d, _ in grid_d], float)
    td = np.array([rows[k] for k in grid_d])
    ms_ = np.array([m for _, m in grid_m + [(10**5, 32)]], float)
    tm = np.array([rows[k] for k in grid_m + [(10**5, 32)]])
    fd = np.array([floors[k] for k in grid_d])
    fm = np.array([floors[k] for k in grid_m + [(10**5, 32)]])
    slope = lambda x, y: np.polyfit(np.log(x), np.log(y), 1)[0]
    big_d = ds * 32 * 4 > L3_BYTES
    big_m = ms_ * 1e5 * 4 > L3_BYTES
    lines += ["", f"Fitted slope of log(time) vs log(d) at m=32: **{slope(ds, td):.2f}** over d=1e4..1e6 "
              f"(floor: {slope(ds, fd):.2f}); over the windows larger than the L3 cache (d >= 3e5): "
              f"**{slope(ds[big_d], td[big_d]):.2f}** (floor: {slope(ds[big_d], fd[big_d]):.2f}). "
              f"Slope vs log(m) at d=1e5, m=8..256: **{slope(ms_, tm):.2f}** (floor: "
              f"{slope(ms_, fm):.2f}); beyond the L3 cache (m >= 128): "
              f"**{slope(ms_[big_m], tm[big_m]):.2f}** "
              f"(floor: {slope(ms_[big_m], fm[big_m]):.2f}). Median step / floor over the "
              f"grid: {np.median([rows[k] / floors[k] for k in rows]):.2f}. "
              "Per step the algorithm costs O(dm) for the Gram row and the "
              "preconditioned output plus O(m^2) for the rank-2 inverse update (and an O(m^3) "
              "refresh every m steps, O(m^2) amortized); at d=1e5 the dm term dominates "
              "(dm >= 8e5 vs m^2 <= 6.6e4), so the expected slopes are 1 in d and 1 in m. "
              "Deviations come from the memory hierarchy (a window that fits in cache streams faster) "
              "and the fixed per-step overhead at small d; they show in the floor (plain BLAS-like "
              "products) as much as in M-FAC, so the step / floor ratio is the measure of the "
              "implementation's overhead.", ""]


def main():
    lines = ["## Second-order methods", "",
             "Command: `OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_second_order.py`  ",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
             f"jax {jax.__version__}, optax {optax.__version__}; medians of {REPEATS} repeats, "
             "compile excluded.", ""]
    sections = sys.argv[1:] or ["probes", "steps", "mfac"]
    if "probes" in sections:
        probe_gain(lines)
    if "steps" in sections:
        step_costs(lines)
    if "mfac" in sections:
        mfac_scaling(lines)
    out = pathlib.Path(__file__).parent / "results" / "second_order.md"
    text = "\n".join(lines) + "\n"
    if len(sections) < 3 and out.exists():  # keep the sections not re-run from the last run
        blocks = lambda t: t.split("\n### ")
        new = {b.split("\n")[0][:20]: b for b in blocks(text)[1:]}
        old = blocks(out.read_text())
        kept = [new.pop(b.split("\n")[0][:20], b) for b in old[1:]]
        text = "\n### ".join([blocks(text)[0], *kept, *new.values()])
    out.write_text(text)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
