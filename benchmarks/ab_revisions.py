"""Time two revisions of jaxopt_lab's L-BFGS on the MGH problems in one process, interleaved.

Separate processes of the same code differ by up to 1.3x on XLA:CPU (its thread pool runs
the independent operations of loop bodies whose buffers exceed 512 bytes), and two solvers
with equal options share one compiled program in one process, so a change is measured by
compiling each revision's solves in its own process and timing the executables side by side:

    # in a checkout (or git worktree) of each revision, with this file from the newer one:
    PYTHONPATH=<checkout> python benchmarks/ab_revisions.py build OLD --out /tmp/ab
    python benchmarks/ab_revisions.py build NEW --out /tmp/ab
    OPENBLAS_NUM_THREADS=1 python benchmarks/ab_revisions.py time OLD,NEW --out /tmp/ab

``build TAG`` compiles ``jax.jit`` of ``LBFGS(fun, tol=1e-6, maxiter=3000).run`` (float64,
returning the solution, iteration count and gradient norm) for each MGH problem with the
jaxopt_lab that Python imports, and serializes the executables under ``--out/TAG``.
``time TAGS`` loads them and times every tag's executable round-robin (direction alternating),
``--repeats`` calls each after a warm-up, and prints the medians, iterations, XLA's flop
estimate and the ratios to the first tag, with their geometric mean. ``--linesearch`` and
``--problems`` narrow the solves. A benchmark of our own revisions, not of an anchor: the
anchors are in ``bench_lbfgs_evals.py``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)


def _build(tag: str, out: str, names: list[str], linesearch: str) -> None:
    from jax.experimental.serialize_executable import serialize

    import jaxopt_lab as jl
    from jaxopt_lab.problems import mgh

    os.makedirs(os.path.join(out, tag), exist_ok=True)
    for name in names:
        p = mgh.get(name)
        solver = jl.LBFGS(fun=p.fun, tol=1e-6, maxiter=3000, linesearch=linesearch)
        fn = jax.jit(lambda x, s=solver: (lambda o: (o.params, o.state.iter_num, o.state.error))(s.run(x)))
        compiled = fn.lower(p.x0).compile()
        record = (serialize(compiled), np.asarray(p.x0), compiled.cost_analysis()["flops"], jl.__file__)
        with open(os.path.join(out, tag, f"{name}.pkl"), "wb") as fh:
            pickle.dump(record, fh)
    print(f"built {tag} from {jl.__file__}: {len(names)} problems in {os.path.join(out, tag)}")


def _time(tags: list[str], out: str, names: list[str], repeats: int) -> None:
    from jax.experimental.serialize_executable import deserialize_and_load

    ratios = {t: [] for t in tags[1:]}
    print("| problem | " + " | ".join(f"{t} (us, iters, flops)" for t in tags) + " | "
          + " | ".join(f"{t} / {tags[0]}" for t in tags[1:]) + " |")
    print("|---" * (2 * len(tags)) + "|")
    for name in names:
        run, flops = {}, {}
        for t in tags:
            with open(os.path.join(out, t, f"{name}.pkl"), "rb") as fh:
                (blob, in_tree, out_tree), x0, flops[t], _ = pickle.load(fh)
            run[t] = deserialize_and_load(blob, in_tree, out_tree)
        x0 = jax.numpy.asarray(x0)
        iters = {t: int(run[t](x0)[1]) for t in tags}
        times = {t: [] for t in tags}
        for r in range(repeats):
            for t in (tags if r % 2 else tags[::-1]):
                start = time.perf_counter()
                jax.block_until_ready(run[t](x0))
                times[t].append(time.perf_counter() - start)
        med = {t: float(np.median(times[t])) for t in tags}
        for t in tags[1:]:
            ratios[t].append(med[t] / med[tags[0]])
        print(f"| {name} | " + " | ".join(f"{med[t] * 1e6:.1f}, {iters[t]}, {flops[t]:.0f}" for t in tags)
              + " | " + " | ".join(f"{med[t] / med[tags[0]]:.2f}" for t in tags[1:]) + " |", flush=True)
    for t, r in ratios.items():
        print(f"\n{t} / {tags[0]}: geo-mean {np.exp(np.mean(np.log(r))):.3f}, min {min(r):.2f}, "
              f"max {max(r):.2f} over {len(r)} problems")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["build", "time"])
    parser.add_argument("tags", help="build: one tag; time: comma-separated tags, the first the reference")
    parser.add_argument("--out", default="ab_executables", help="folder of the serialized executables")
    parser.add_argument("--problems", default="", help="comma-separated MGH names (default: all 18)")
    parser.add_argument("--linesearch", default="zoom")
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args(argv)
    from jaxopt_lab.problems import mgh

    names = [n for n in args.problems.split(",") if n] or [p.name for p in mgh.PROBLEMS]
    tags = [t for t in args.tags.split(",") if t]
    if args.mode == "build":
        if len(tags) != 1:
            parser.error("`tags`: build takes exactly one tag")
        _build(tags[0], args.out, names, args.linesearch)
    else:
        if args.repeats < 1:
            parser.error("`--repeats` must be >= 1")
        _time(tags, args.out, names, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
