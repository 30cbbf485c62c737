"""Stopped lanes under ``vmap``: a float32 L-BFGS pair with a failing lane vs the long lane alone.

Lane 0 gets a gradient of the wrong sign, so its first line search fails
(``LINESEARCH_FAILED`` at iteration 1, after ``maxls`` trials); lane 1 is an
L2-regularized logistic regression solved to ``tol``. Before stopped lanes started their
line searches "done", every later iteration of lane 1 also ran lane 0's ``maxls``
trials. The ratio (pair / long lane alone) is the cost of the stopped lane; about 2 is
the floor (a batched evaluation computes both lanes) plus the failing lane's own
``maxls`` trials in the first iteration.
With ``--before PATH`` the same measurement runs in a subprocess against the
``jaxopt_lab`` found at ``PATH`` (e.g. a ``git worktree`` of an older commit), and both
rows are written.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_stopped_lanes.py [--before PATH]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("BENCH_LIB_PATH"):
    sys.path.insert(0, os.environ["BENCH_LIB_PATH"])
else:
    sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(1, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks._timing import machine, time_call, write_section  # noqa: E402

MAXLS = 60
TOL = 1e-4
REPEATS = 7


def data(n=4000, d=100, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * np.logspace(0, 1.5, d)).astype(np.float32)  # ill-conditioned
    w = rng.standard_normal(d) / np.sqrt(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(np.float32)
    return jnp.asarray(X), jnp.asarray(y)


def measure() -> dict:
    """Time the long lane alone and the vmapped pair; report the lanes' outcomes."""
    X, y = data()

    def fun(w, sign):
        def loss(w):
            z = X @ w
            return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5e-3 * jnp.sum(w**2)
        value, grad = jax.value_and_grad(loss)(w)
        return value, sign * grad

    solver = jl.LBFGS(fun, value_and_grad=True, tol=TOL, maxiter=500, maxls=MAXLS)
    w0 = jnp.zeros(X.shape[1], jnp.float32)
    solo = jax.jit(lambda s: solver.run(w0, s))
    pair = jax.jit(jax.vmap(lambda s: solver.run(w0, s)))
    signs = jnp.array([-1.0, 1.0], jnp.float32)
    t_solo = time_call(lambda: solo(jnp.float32(1.0)), repeats=REPEATS)
    t_pair = time_call(lambda: pair(signs), repeats=REPEATS)
    st = t_pair["result"].state
    return {
        "solo_ms": 1e3 * t_solo["median_s"], "pair_ms": 1e3 * t_pair["median_s"],
        "ratio": t_pair["median_s"] / t_solo["median_s"],
        "compile_solo_s": t_solo["compile_s"], "compile_pair_s": t_pair["compile_s"],
        "status": [jl.status_name(s) for s in np.asarray(st.status)],
        "iters": [int(i) for i in np.asarray(st.iter_num)],
        "solo_iters": int(t_solo["result"].state.iter_num),
        "solo_evals": int(t_solo["result"].state.num_fun_eval),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print("RESULT " + json.dumps(measure()))
        return 0
    rows = []
    if argv[:1] == ["--before"]:
        env = {**os.environ, "BENCH_LIB_PATH": os.path.abspath(argv[1]), "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env,
                             capture_output=True, text=True, check=True).stdout
        line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
        rows.append(("before (stopped lanes ran their line searches)", json.loads(line[7:])))
    rows.append(("now (stopped lanes start their line searches done)", measure()))
    lines = [
        "## Stopped lanes under vmap (float32 L-BFGS pair, one failing lane)\n",
        f"`OPENBLAS_NUM_THREADS=1 python benchmarks/bench_stopped_lanes.py --before <old checkout>`; "
        f"{machine()}. Logistic regression 4000 x 100 (column scales 1 to 30), float32, "
        f"`tol={TOL}`, `maxls={MAXLS}`; lane 0 has a gradient of the wrong sign "
        "(its first line search fails), lane 1 is the long solve. "
        f"Medians of {REPEATS} runs after a warm-up; compile time apart.\n",
        "| code | long lane alone (ms) | vmapped pair (ms) | pair / alone | compile alone / pair (s) "
        "| pair status | pair iterations | long lane alone: iterations, evaluations |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for label, r in rows:
        lines.append(f"| {label} | {r['solo_ms']:.2f} | {r['pair_ms']:.2f} | {r['ratio']:.2f}x | "
                     f"{r['compile_solo_s']:.1f} / {r['compile_pair_s']:.1f} | {', '.join(r['status'])} | "
                     f"{r['iters']} | {r['solo_iters']}, {r['solo_evals']} |")
    text = "\n".join(lines)
    print(text)
    write_section("stopped_lanes", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
