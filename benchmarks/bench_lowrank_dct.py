"""Per-step cost of ``lowrank_dct`` against ``optax.adam`` on one 1024 x 256 float32 leaf.

Like with like: both optimizers run the same jitted training loop, ``lax.scan`` over
``--steps`` steps of ``update`` + ``optax.apply_updates`` (params and state donated), on
the same gradients. ``lowrank_dct`` runs at rank 8 with ``update_interval=50``, so the loop
holds its refresh steps (DCT scoring and column selection) in the proportion a training run
has them; a second row times ``update_interval`` larger than the loop (steps that only
project). Compile time (first call) is reported apart. Candidate and anchor are timed
interleaved (anchor, candidate, anchor, ... for ``--repeats`` rounds after a warm-up) so that
load drift on a shared machine hits both alike; the ratio is median(candidate) /
median(anchor), in wall time and in process CPU time.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lowrank_dct.py`` (writes
``benchmarks/results/lowrank_dct.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import block, machine, write_section  # noqa: E402

import jaxopt_lab as jl  # noqa: E402

SHAPE = (1024, 256)


def make_loop(opt, steps):
    """A jitted ``steps``-step training loop on fixed gradients (params, state donated)."""

    def loop(params, state, grads):
        def body(carry, g):
            p, s = carry
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (params, state), grads)[0]

    return jax.jit(loop, donate_argnums=(0, 1))


def timed(fn, *args):
    t0, c0 = time.perf_counter(), time.process_time()
    out = block(fn(*args))
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    key = jax.random.PRNGKey(0)
    grads = 1e-2 * jax.random.normal(key, (args.steps, *SHAPE), jnp.float32)
    params0 = jax.random.normal(jax.random.PRNGKey(1), SHAPE, jnp.float32)
    cases = {
        "optax.adam (anchor)": optax.adam(1e-3),
        "lowrank_dct rank 8, update_interval=50": jl.lowrank_dct(1e-3, rank=8, update_interval=50),
        f"lowrank_dct rank 8, no refresh after step 0 (update_interval={10 * args.steps})":
            jl.lowrank_dct(1e-3, rank=8, update_interval=10 * args.steps),
    }
    block(jax.jit(lambda x: 2 * x)(params0))  # backend start-up outside the first compile time
    runs = {}
    for name, opt in cases.items():
        loop = make_loop(opt, args.steps)
        carry, first, _ = timed(loop, params0.copy(), opt.init(params0), grads)  # compile + run
        runs[name] = dict(opt=opt, loop=loop, carry=carry, first=first, wall=[], cpu=[])
    anchor = "optax.adam (anchor)"
    for _ in range(args.repeats):
        for name in [anchor] + [n for n in cases if n != anchor]:
            r = runs[name]
            r["carry"], w, c = timed(r["loop"], *r["carry"], grads)
            r["wall"].append(w / args.steps)
            r["cpu"].append(c / args.steps)
    med = {n: (statistics.median(r["wall"]), statistics.median(r["cpu"])) for n, r in runs.items()}
    lines = [
        "## lowrank_dct: per-step cost against optax.adam (1024 x 256 float32 leaf)",
        "",
        f"`python benchmarks/bench_lowrank_dct.py --steps {args.steps} --repeats {args.repeats}` "
        f"({machine()}). One jitted `lax.scan` of {args.steps} steps (`update` + `apply_updates`, "
        "params and state donated) per call, the same gradients for both; per-step time = call "
        f"time / {args.steps}, median of {args.repeats} interleaved calls after a warm-up; compile "
        "time (first call minus one median call) apart. Column selection (a DCT of the gradient "
        "and a top-k) runs only on refresh steps, inside `lax.cond`; the other steps only "
        "project (`Q^T G`, `Q U`: 4 m n rank = 8.4e6 flops at rank 8). The previous "
        "implementation (a dense `D^T G` scoring, 5.4e8 flops, on every step; commit e6680b6) "
        "measured 15.0x adam in CPU time (15.4x wall) with this script at 100 steps.",
        "",
        "| optimizer | per step, wall (us) | per step, CPU (us) | ratio to adam, wall | ratio, CPU "
        "| compile (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (w, c) in med.items():
        comp = max(runs[name]["first"] - w * args.steps, 0.0)
        lines.append(f"| {name} | {1e6 * w:.1f} | {1e6 * c:.1f} | {w / med[anchor][0]:.2f} | "
                     f"{c / med[anchor][1]:.2f} | {comp:.2f} |")
    text = "\n".join(lines)
    print(text)
    print("wrote", write_section("lowrank_dct", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
