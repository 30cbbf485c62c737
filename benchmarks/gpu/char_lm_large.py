"""Character-level LM, larger configuration: throughput and loss of AdamW vs Sophia-G on one device.

The model of ``benchmarks/bench_char_lm.py`` (pre-LN GPT on Python stdlib source) at a
size meant for an accelerator: 6 layers, d=384, 6 heads, context 256, batch 64 windows
(about 11M parameters), float32. Each optimizer trains ``--members`` members (learning
rates around its tuned value, one seed each) as one ``jit(vmap)`` program; compile time
(AOT lowering) and run time are measured apart, and steps per second, tokens per second
and the final validation loss are reported.

Run: ``python benchmarks/gpu/char_lm_large.py [--smoke] [--steps N] [--out PATH]``.
``--smoke`` shrinks the model and the run to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _char_lm as C  # noqa: E402
from benchmarks._timing import machine  # noqa: E402

LRS = {"optax.adamw": (1.5e-3, 3e-3), "jaxopt_lab.sophia (G, k=10)": (5e-4, 1e-3)}


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny model and run (a CPU check)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--out", default="", help="also write the section to this file")
    a = p.parse_args(argv)
    if a.smoke:
        cfg, steps, every = C.Config(n_layer=1, d_model=32, n_head=2, context=32, batch=8, n_val=8), 20, 10
    else:
        cfg = C.Config(n_layer=6, d_model=384, n_head=6, context=256, batch=64, n_val=64)
        steps, every = a.steps, a.eval_every
    train, val = C.load_tokens()
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(C.init_params(jax.random.PRNGKey(0), cfg)))
    rows = []
    for name, lrs in LRS.items():
        lr_m = jnp.asarray(lrs, jnp.float32)
        seed_m = jnp.zeros(len(lrs), jnp.int32)
        fn = C.make_train(name, train, val, cfg, steps, every, max(1, steps // 20))
        t0 = time.perf_counter()
        compiled = fn.lower(lr_m, seed_m).compile()
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        vc, _ = jax.block_until_ready(compiled(lr_m, seed_m))
        t_run = time.perf_counter() - t0
        final = np.asarray(vc)[:, -1]
        member_steps = steps * len(lrs)
        rows.append(f"| {name} | {', '.join(f'{lr:g}' for lr in lrs)} | "
                    f"{', '.join(f'{v:.3f}' for v in final)} | {t_compile:.1f} | {t_run:.1f} | "
                    f"{member_steps / t_run:.1f} | {member_steps * cfg.batch * cfg.context / t_run:,.0f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "### Character-level LM, larger configuration", "",
        f"Command: `python benchmarks/gpu/char_lm_large.py{' --smoke' if a.smoke else ''}`; {machine()}.  ",
        f"Model: {cfg.n_layer} layers, d={cfg.d_model}, {cfg.n_head} heads, context {cfg.context}, "
        f"{n_params:,} parameters, float32; batch {cfg.batch} windows; {steps} steps per member, "
        f"validation every {every}. Members = learning rates, trained together as one jit(vmap).", "",
        "| optimizer | learning rates | final val loss | compile s | run s | member-steps / s | tokens / s |",
        "|---|---|---|---|---|---|---|", *rows, ""])
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
