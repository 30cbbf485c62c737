"""Test configuration: float64 on (the implicit-derivative checks need it), and a guard
that keeps a long-lived worker below the kernel's memory-map limit.

Every XLA:CPU executable holds a few memory mappings (its JIT-compiled code) for as long
as a jit cache keeps it alive. A pytest worker that compiles thousands of programs (the
slow suite: property tests over every registry solver) grows past ``vm.max_map_count``
(65530 by default); LLVM's allocation of the next executable then fails ("LLVM
compilation error: Cannot allocate memory") and the worker segfaults inside
``backend_compile_and_load``. After each test, when the process holds more than half of
the limit, the jit caches are cleared, which unmaps the cached executables.
"""

import gc
import os
import pathlib

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def max_map_count() -> int:
    """The kernel's per-process limit on memory mappings (65530 when unreadable)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530


def map_count() -> int:
    """Number of memory mappings of this process (0 where /proc is not available)."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def release_executables_if_needed(threshold: int) -> bool:
    """Clear JAX's compilation caches when this process holds more than ``threshold`` maps.

    Returns:
      Whether the caches were cleared.
    """
    if map_count() <= threshold:
        return False
    jax.clear_caches()
    gc.collect()
    return True


_MAP_THRESHOLD = max_map_count() // 2


def pytest_runtest_teardown(item, nextitem):
    release_executables_if_needed(_MAP_THRESHOLD)

# Hypothesis cases tried, summed over tests (and xdist workers: the counts travel in each
# report's ``user_properties``) and printed at the end of the run.
_HYPOTHESIS_CASES: dict = {}


def pytest_runtest_logreport(report):
    if report.when != "teardown":  # the fixture records its counts at teardown
        return
    for name, value in report.user_properties:
        if name.startswith("hypothesis_cases:"):
            kind = name.split(":", 1)[1]
            _HYPOTHESIS_CASES[kind] = _HYPOTHESIS_CASES.get(kind, 0) + int(value)


def pytest_terminal_summary(terminalreporter):
    if _HYPOTHESIS_CASES:
        total = sum(_HYPOTHESIS_CASES.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(_HYPOTHESIS_CASES.items()))
        terminalreporter.write_line(f"hypothesis cases tried: {total} ({detail})")


_HEAVY_FILE = pathlib.Path(__file__).with_name("heavy_tests.txt")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the measured-heavy tests listed in ``heavy_tests.txt`` as ``slow``."""
    heavy = {line.strip() for line in _HEAVY_FILE.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    for item in items:
        if item.nodeid in heavy:
            item.add_marker(pytest.mark.slow)
