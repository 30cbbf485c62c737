"""Per-step cost of the first-order / proximal transforms against optax.adam (and ROOT against
optax.contrib.muon) on a 10M-parameter pytree (ten 1000 x 1000 float32 matrices).

Each optimizer's ``update`` is jitted with the state donated; compile time (first call) is
reported apart; the step time is the median of ``--repeats`` timed calls after a warm-up.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_first_order.py`` (writes
``benchmarks/results/first_order.md``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import optax  # noqa: E402

import jaxopt_lab as jl  # noqa: E402


def optimizers(leaf_size: int):
    k = max(1, leaf_size // 100)  # 1% of each leaf
    return {
        "optax.adam (anchor)": optax.adam(1e-3),
        "diffgrad": jl.diffgrad(1e-3),
        "adamp": jl.adamp(1e-3, weight_decay=1e-4),
        "sgdp": jl.sgdp(1e-3),
        "coordinate_clipped_sgd": jl.coordinate_clipped_sgd(1e-3, threshold=1.0),
        "perp_grad": jl.perp_grad(1e-3, momentum=0.9),
        "prox_lasso_transform": jl.prox_lasso_transform(1e-3, 1e-4),
        "hard_threshold_topk (k=1%)": jl.hard_threshold_topk(1e-3, k=k),
        "group_envelope (k=100 cols)": jl.group_envelope(1e-3, k=100),
        "econtrol (top-k 1%)": jl.econtrol(1e-3, jl.top_k_compressor(k)),
        "layerwise_noise_adaptive (euclidean)": jl.layerwise_noise_adaptive(1e-3, geometry="euclidean"),
        "refined_schedule + sgd": optax.sgd(jl.refined_schedule([1.0] * 1000, peak_value=1e-3)),
        "optax.contrib.muon (anchor)": optax.contrib.muon(1e-3),
        "root": jl.root(1e-3),
        "lowrank_dct (rank 64)": jl.lowrank_dct(1e-3, rank=64),
    }


def time_one(opt, params, grads, repeats):
    state = opt.init(params)
    step = jax.jit(lambda g, s, p: opt.update(g, s, p), donate_argnums=(1,))
    t0 = time.perf_counter()
    u, state = step(grads, state, params)
    jax.block_until_ready((u, state))
    compile_s = time.perf_counter() - t0
    for _ in range(2):
        u, state = step(grads, state, params)
    jax.block_until_ready((u, state))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        u, state = step(grads, state, params)
        jax.block_until_ready((u, state))
        times.append(time.perf_counter() - t0)
    return compile_s, statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-leaves", type=int, default=10)
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--matrix-dim", type=int, default=256,
                    help="matrix size for ROOT / muon / low-rank DCT (Newton-Schulz is O(n^3) per leaf)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated substrings of optimizer names")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "first_order.md"))
    args = ap.parse_args(argv)
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * args.n_leaves)
    shape = (args.dim, args.dim)
    mshape = (args.matrix_dim, args.matrix_dim)

    def tree(shp):
        p = {f"w{i}": 0.02 * jax.random.normal(keys[i], shp) for i in range(args.n_leaves)}
        g = {f"w{i}": jax.random.normal(keys[args.n_leaves + i], shp) for i in range(args.n_leaves)}
        return p, g

    n_params = args.n_leaves * args.dim**2
    matrix_names = ("optax.contrib.muon (anchor)", "root", "lowrank_dct (rank 64)")
    rows, base = [], {}
    for name, opt in optimizers(args.dim**2).items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        params, grads = tree(mshape if name in matrix_names else shape)
        c, t = time_one(opt, params, grads, args.repeats)
        del params, grads
        anchor = "optax.contrib.muon (anchor)" if name in matrix_names else "optax.adam (anchor)"
        base[name] = t
        rows.append((name, c, t, anchor))
        print(f"{name:40s} compile {c:7.2f} s  step {1e3 * t:9.2f} ms", flush=True)
    dev = jax.devices()[0]
    lines = [
        "## First-order and proximal transforms: per-step cost",
        "",
        f"`{' '.join(['python', *sys.argv])}` on {dev.platform} ({dev.device_kind}), jax {jax.__version__}, "
        f"optax {optax.__version__}. Pytree: {args.n_leaves} float32 matrices {shape} = "
        f"{n_params / 1e6:.0f}M parameters. `update` jitted with the state donated; "
        f"median of {args.repeats} steps after warm-up; "
        "compile time (first call) apart. Ratio = step time / anchor step time (adam for element-wise rules, "
        f"muon for ROOT and low-rank DCT; these three run on {args.n_leaves} matrices {mshape}, "
        f"{args.n_leaves * args.matrix_dim**2 / 1e6:.2f}M parameters, since Newton-Schulz is cubic in the "
        "size and this run is CPU-only).",
        "",
        "| transform | step (ms) | ratio | anchor | compile (s) |",
        "|---|---:|---:|---|---:|",
    ]
    for name, c, t, anchor in rows:
        ratio = t / base[anchor] if anchor in base else float("nan")
        lines.append(f"| {name} | {1e3 * t:.2f} | {ratio:.2f} | {anchor.split(' ')[0]} | {c:.2f} |")
    lines.append("")
    pathlib.Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
