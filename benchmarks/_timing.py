"""Timing helpers shared by the benchmark scripts (medians, compile time apart)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def block(x):
    """Wait for every array in ``x`` (a pytree) to be computed."""
    import jax

    return jax.block_until_ready(x)


def time_call(fn: Callable, repeats: int = 5) -> dict:
    """Time ``fn()`` : the first call (compile + run) and the median of ``repeats`` more.

    Args:
      fn: a zero-argument callable returning arrays.
      repeats: timed calls after the first.

    Returns:
      ``{"first_s", "median_s", "compile_s", "result"}``; ``compile_s`` is the first
      call minus the median.
    """
    t0 = time.perf_counter()
    result = block(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"first_s": first, "median_s": med, "compile_s": max(first - med, 0.0), "result": result}


def machine() -> str:
    """One line describing the machine and library versions."""
    import jax

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"jax {jax.__version__}, backend {jax.default_backend()}")


def write_section(name: str, text: str) -> str:
    """Write ``benchmarks/results/<name>.md`` and return its path."""
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.md")
    with open(path, "w") as fh:
        fh.write(text.rstrip() + "\n")
    return path


def run_section(main: Callable[[int], str], name: str, doc: str | None) -> None:
    """The command line of a benchmark script: ``--repeats N``, run ``main(N)``, print its
    markdown and write it to ``benchmarks/results/<name>.md``."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or name).splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    text = main(parser.parse_args().repeats)
    print(text)
    print(write_section(name, text))
