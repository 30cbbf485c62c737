"""batch_run vs a Python loop of jitted solves vs ``jit(vmap(solver.run))``: one L-BFGS sweep.

Part 1 (issue 18): 128 L2-regularized logistic regressions, n=2000 samples, d=100 AR(1)
features (correlation 0.9 between neighbours), l2 in logspace(-4, 0), tol 1e-6, float64.
Part 2: 256 small solves (n=300, d=20, float32, tol 1e-4). All three ways run the same
``jaxopt_lab.LBFGS`` on the same data in this process, interleaved round-robin (load
drift hits all alike); the ratios use each way's fastest repeat (the machine is shared,
and the minimum is the least disturbed), the median is shown beside it; compile time
(first call minus the median) is reported apart; ``batch_run``'s results are checked
against the vmap's.

The limit: a perfectly compacted, perfectly batched sweep costs the total number of
function+gradient evaluations (summed over members) times the cost of one evaluation
in a full batch of members (measured: ``jit(vmap(value_and_grad))`` at the sweep's width,
divided by the width).

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_batch_run.py [--smoke] [--repeats N]``
(writes ``benchmarks/results/batch_run.md``; not with ``--smoke`` or ``--no-write``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_lab as jl  # noqa: E402
from benchmarks._timing import machine, write_section  # noqa: E402
from jaxopt_lab.problems.logreg import logreg_loss  # noqa: E402
from jaxopt_lab.sweep import batch as batch_mod  # noqa: E402


def ar1_logistic(n: int, d: int, rho: float = 0.9, seed: int = 0, dtype=jnp.float64):
    """Features with AR(1) correlation ``rho**|i-j|``, labels from a logistic teacher."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, d))
    X = np.empty((n, d))
    X[:, 0] = eps[:, 0]
    for j in range(1, d):
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho**2) * eps[:, j]
    X /= np.sqrt(d)
    w = rng.standard_normal(d) * 3.0
    y = (X @ w + rng.logistic(size=n) > 0).astype(np.float64)
    return jnp.asarray(X, dtype), jnp.asarray(y, dtype)


def timed(fn, repeats: int):
    """``(min_s, compile_s, result)``: the fastest repeat; compile = first call minus the median."""
    t0 = time.perf_counter()
    result = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return min(times), max(first - med, 0.0), result


def interleaved(fns: dict, repeats: int) -> dict:
    """Time several callables round-robin (load drift hits all alike).

    Returns ``{label: (min wall s, compile s, result, median process-CPU s, median wall s)}``;
    compile is the first call minus the median.
    """
    first, results = {}, {}
    for label, fn in fns.items():
        t0 = time.perf_counter()
        results[label] = jax.block_until_ready(fn())
        first[label] = time.perf_counter() - t0
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for label, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
    out = {}
    for k in fns:
        med = statistics.median(wall[k])
        out[k] = (min(wall[k]), max(first[k] - med, 0.0), results[k], statistics.median(cpu[k]), med)
    return out


def segment_counts(run):
    """``(program calls, lane-steps, [(block, [steps, lane-steps])])`` of one ``batch_run`` call.

    Lane-steps are the batched work: the slots stepped (whole blocks), summed over the steps.
    """
    calls = []
    program = batch_mod._segment_program

    def spy(spec, block, *rest):
        out = program(spec, block, *rest)
        calls.append((block, np.asarray(out[-1]).tolist()))
        return out

    batch_mod._segment_program = spy
    try:
        jax.block_until_ready(run())
    finally:
        batch_mod._segment_program = program
    lane_steps = sum(int(work[1]) for _, work in calls)
    return len(calls), lane_steps, calls


def step_cost(solver, x0, lams, X, y, repeats: int, block: int):
    """``(batched guarded L-BFGS step, the same in blocks of block lanes, batched f+g)`` in
    seconds, each over all the sweep's lanes.

    Timed as 10 iterations of a ``fori_loop`` in one program (no dispatch), from the state
    after 3 steps (the line search takes one trial there, as in most iterations); the
    blocked step is batch_run's own (``_step_blocks`` over ``len(lams) / block`` blocks).
    """
    lane = lambda c, lam: batch_mod._lane_step(solver, (lam, X, y), {}, c)
    init = jax.jit(jax.vmap(lambda lam: batch_mod._lane_init(solver, x0, (lam, X, y), {})))
    blocked = lambda c: batch_mod._step_blocks(lane, c, lams, block, len(lams) // block)
    # One program for both step counts (a traced bound: a while loop, no unrolling).
    steps = jax.jit(lambda c, k: jax.lax.fori_loop(0, k, lambda i, c: jax.vmap(lane)(c, lams), c))
    blocks = jax.jit(lambda c: jax.lax.fori_loop(0, 10, lambda i, c: blocked(c), c))
    carry = steps(init(lams), 3)
    vg = jax.vmap(jax.value_and_grad(logreg_loss), in_axes=(0, 0, None, None))
    fg = jax.jit(lambda W: jax.lax.fori_loop(0, 10, lambda i, W: W - 1e-7 * vg(W, lams, X, y)[1], W))
    W = carry[1]
    t = interleaved({"step": lambda: steps(carry, 10), "blocks": lambda: blocks(carry), "fg": lambda: fg(W)},
                    max(repeats, 5) * 4)
    return t["step"][0] / 10, t["blocks"][0] / 10, t["fg"][0] / 10


def trial_counts(solver, x0, lams, X, y):
    """``(vmap steps, sum over steps of the most trials of a running lane, of the mean)``.

    Under ``vmap`` a line search's while loop runs until its slowest lane is done, so a
    batched step costs the max over running lanes of f+g trials, not the mean.
    """
    init = jax.jit(jax.vmap(lambda lam: batch_mod._lane_init(solver, x0, (lam, X, y), {})))
    lane = lambda c, lam: batch_mod._lane_step(solver, (lam, X, y), {}, c)
    one = jax.jit(lambda c: jax.vmap(lane)(c, lams))
    carry, steps, most, mean = init(lams), 0, 0, 0.0
    while True:
        st = carry[2]
        running = (np.asarray(st.status) == jl.Status.RUNNING) & (np.asarray(st.iter_num) < solver.maxiter)
        if not running.any():
            return steps, most, mean
        before = np.asarray(st.num_fun_eval)
        carry = one(carry)
        trials = (np.asarray(carry[2].num_fun_eval) - before)[running]
        steps, most, mean = steps + 1, most + int(trials.max()), mean + float(trials.mean())


def part(title, n_solves, n, d, tol, dtype, repeats, segment_sizes, maxiter=500):
    X, y = ar1_logistic(n, d, dtype=dtype)
    lams = jnp.logspace(-4, 0, n_solves).astype(dtype)
    x0 = jnp.zeros(d, dtype)
    solver = jl.LBFGS(logreg_loss, tol=tol, maxiter=maxiter)
    axes = (None, 0, None, None)
    one = jax.jit(lambda l2, X, y: solver.run(x0, l2, X, y))
    vm = jax.jit(jax.vmap(solver.run, in_axes=axes))
    fns = {"Python loop of jitted LBFGS.run": lambda: [one(lam, X, y) for lam in lams],
           "jit(vmap(LBFGS.run))": lambda: vm(x0, lams, X, y)}
    for seg in segment_sizes:
        fns[f"jaxopt_lab.batch_run (segment_size={seg})"] = (
            lambda seg=seg: jl.batch_run(solver, x0, lams, X, y, in_axes=axes, segment_size=seg))
    rows = interleaved(fns, repeats)
    seg_best = min(segment_sizes, key=lambda g: rows[f"jaxopt_lab.batch_run (segment_size={g})"][0])
    n_calls, lane_steps, calls = segment_counts(
        lambda: jl.batch_run(solver, x0, lams, X, y, in_axes=axes, segment_size=seg_best))
    block = calls[0][0]
    t_whole, t_step, t_fg1 = step_cost(solver, x0, lams, X, y, repeats, block)
    vm_steps, most, mean = trial_counts(solver, x0, lams, X, y)
    ref = rows["jit(vmap(LBFGS.run))"][2]
    # The limit: total f+g evaluations x one evaluation's cost in a full batch.
    vg = jax.jit(jax.vmap(jax.value_and_grad(logreg_loss), in_axes=(0, 0, None, None)))
    W = jnp.tile(ref.params[:1], (n_solves, 1)) + 0.01
    t_fg, _, _ = timed(lambda: vg(W, lams, X, y), max(repeats, 5) * 4)
    lae = jax.jit(lambda z: jnp.logaddexp(0.0, z))
    Z = jnp.ones((n, n_solves), dtype)
    t_lae, _, _ = timed(lambda: lae(Z), max(repeats, 5) * 4)
    iters = np.asarray(ref.state.iter_num)
    evals = np.asarray(ref.state.num_fun_eval)
    limit = float(evals.sum()) * t_fg / n_solves
    loop_t, vmap_t = rows["Python loop of jitted LBFGS.run"][0], rows["jit(vmap(LBFGS.run))"][0]
    checks = []
    for label, (_, _, out, _, _) in rows.items():
        if label.startswith("jaxopt_lab.batch_run"):
            dp = float(jnp.max(jnp.abs(out.params - ref.params)))
            same = (np.array_equal(out.state.iter_num, ref.state.iter_num)
                    and np.array_equal(out.state.status, ref.state.status))
            checks.append(f"{label}: max |params - vmap params| = {dp:.1e}, iter_num and status "
                          f"{'identical' if same else 'DIFFER'}")
    # How far jit(vmap) agrees with itself at another batch size (first half of the members).
    k = n_solves // 2
    half = vm(x0, lams[:k], X, y)
    n_diff = int(np.sum(np.asarray(half.state.iter_num) != np.asarray(ref.state.iter_num[:k])))
    checks.append(f"reference: jit(vmap) over the first {k} members vs over all {n_solves}: max |params "
                  f"difference| = {float(jnp.max(jnp.abs(half.params - ref.params[:k]))):.1e}, iter_num "
                  f"differs for {n_diff} members (rounding of a batched computation; float32 line-search "
                  "decisions amplify it)")
    status = {jl.status_name(s): int(c) for s, c in zip(*np.unique(np.asarray(ref.state.status),
                                                                    return_counts=True), strict=True)}
    lines = [f"### {title}", "",
             f"{n_solves} solves, n={n}, d={d} (AR(1) features, rho 0.9), l2 in logspace(-4, 0), "
             f"tol {tol:g}, maxiter {maxiter}, {jnp.dtype(dtype).name}. Iterations per member "
             f"{iters.min()}-{iters.max()} (median {int(np.median(iters))}); max x members / sum = "
             f"{iters.max() * n_solves / iters.sum():.2f} (what a vmap pays over perfect compaction); "
             f"f+g evaluations {int(evals.sum())} in all ({evals.sum() / iters.sum():.2f} per iteration); "
             f"status {status}.", "",
             f"| method | min s ({repeats} repeats) | median s | compile s | vs loop | vs jit(vmap) "
             "| median process CPU s |",
             "|---|---|---|---|---|---|---|"]
    for label, (best_t, comp, _, cpu, med) in rows.items():
        lines.append(f"| {label} | {best_t:.3f} | {med:.3f} | {comp:.1f} | {loop_t / best_t:.2f}x "
                     f"| {vmap_t / best_t:.2f}x | {cpu:.3f} |")
    best = min(v[0] for k, v in rows.items() if k.startswith("jaxopt_lab.batch_run"))
    compacted = lane_steps * t_step / n_solves
    lines += ["", f"Work of one batch_run (segment_size={seg_best}, blocks of {block} lanes): {n_calls} "
              f"segment program call(s) (steps, lane-steps: {'; '.join(str(w) for _, w in calls)}), "
              f"{lane_steps} lane-steps for {int(iters.sum())} iterations "
              f"({lane_steps / iters.sum():.2f}x). One batched L-BFGS step of all {n_solves} lanes: "
              f"{1e3 * t_step:.3f} ms in blocks of {block} ({1e3 * t_whole:.3f} ms as one vmap of "
              f"{n_solves}) = {t_step / t_fg1:.1f}x one batched f+g of {n_solves} ({1e3 * t_fg1:.3f} ms; all "
              f"in a fori_loop); lane-steps x step cost / {n_solves} = **{compacted:.3f} s** (what this "
              f"compaction costs with no host or dispatch overhead; best batch_run {best / compacted:.2f}x "
              "that). Line-search trials under vmap: over its "
              f"{vm_steps} steps the slowest running lane took {most} f+g trials in all, the mean lane "
              f"{mean:.1f} ({most / mean:.2f}x: a batched step pays the max over lanes)."]
    lines += ["", f"Limit: {int(evals.sum())} evaluations x {1e3 * t_fg / n_solves:.3f} ms (one f+g in a "
              f"batch of {n_solves}: {1e3 * t_fg:.2f} ms; `logaddexp` of {n}x{n_solves} values alone: "
              f"{1e3 * t_lae:.2f} ms) = **{limit:.3f} s**; best batch_run {best:.3f} s = "
              f"{best / limit:.2f}x the limit, jit(vmap) {vmap_t / limit:.2f}x, loop {loop_t / limit:.2f}x.",
              ""] + [f"- {c}" for c in checks]
    return "\n".join(lines), {k: v[0] for k, v in rows.items()}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (a CPU check of the script)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--segment-sizes", default="10,32",
                    help="batch_run segment sizes timed on the 128-solve sweep (comma-separated)")
    ap.add_argument("--out", default="", help="write the section to this file (not benchmarks/results)")
    a = ap.parse_args(argv)
    shown = [x for i, x in enumerate(argv) if x != "--out" and (i == 0 or argv[i - 1] != "--out")]
    if a.smoke:
        cases = [("Issue 18 sweep (smoke sizes)", 16, 200, 10, 1e-6, jnp.float64, [10]),
                 ("Small solves (smoke sizes)", 16, 100, 5, 1e-4, jnp.float32, [10])]
        repeats = 1
    else:
        segs = [int(x) for x in a.segment_sizes.split(",")]
        cases = [("Issue 18 sweep: 128 L-BFGS solves, float64", 128, 2000, 100, 1e-6, jnp.float64, segs),
                 ("256 small solves, float32", 256, 300, 20, 1e-4, jnp.float32, segs)]
        repeats = a.repeats
    texts, ratios = [], []
    for title, k, n, d, tol, dtype, segs in cases:
        text, times = part(title, k, n, d, tol, dtype, repeats, segs)
        print(text, flush=True)
        texts.append(text)
        best = min(v for lab, v in times.items() if lab.startswith("jaxopt_lab.batch_run"))
        ratios.append((title, times["Python loop of jitted LBFGS.run"] / best,
                       times["jit(vmap(LBFGS.run))"] / best))
    header = ["## batch_run: compacting many solves (issue 18)", "",
              f"Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/bench_batch_run.py"
              f"{''.join(' ' + x for x in shown)}`  ",
              f"Machine: {machine()} (shared; other jobs were running, so absolute times are noisy; "
              "the three ways run interleaved in one process on the same data).  ",
              "Targets (issue 18): >= 1.5x the loop and >= 1.4x jit(vmap) on the 128-solve sweep; "
              ">= 8x the loop on the 256 small solves.", ""]
    summary = [f"- {t}: best batch_run = {lo:.2f}x the loop, {vm:.2f}x jit(vmap)" for t, lo, vm in ratios]
    text = "\n".join(header + summary + [""] + texts) + "\n"
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    elif not (a.smoke or a.no_write):
        print("wrote", write_section("batch_run", text))
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
