"""Test configuration: float64 on (the implicit-derivative checks need it)."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

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
