"""Compile once: new numbers (tolerances, step sizes, data values) reuse the compiled programs.

Compilations are counted two ways: JAX's compile log (``jax.log_compiles``, which names
the jitted function) and the ``/jax/core/compile/backend_compile_duration`` event of
``jax.monitoring`` (one per XLA compilation, whatever the caller).
"""

import contextlib
import logging

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_lab as jl
from jaxopt_lab import sweep
from jaxopt_lab.problems.logreg import logistic_data, logreg_loss

_EVENTS: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, _secs, **_kw: _EVENTS.append(name) if name.endswith("backend_compile_duration") else None)


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Finished XLA compilation of "):
            self.names.append(msg[len("Finished XLA compilation of "):].split(" in ")[0])


@contextlib.contextmanager
def counting():
    """Yields a dict filled on exit: ``names`` (compiled jit names) and ``backend`` (count)."""
    handler, logger, start = _CompileLog(), logging.getLogger("jax"), len(_EVENTS)
    logger.addHandler(handler)
    out: dict = {}
    try:
        with jax.log_compiles(True):
            yield out
    finally:
        logger.removeHandler(handler)
        out["names"] = handler.names
        out["backend"] = len(_EVENTS) - start


X, Y = logistic_data(60, 5, seed=4)
X2 = X * 1.5 + 0.1
Y2 = 1.0 - Y
X0 = jnp.zeros(5)
L2 = jnp.asarray(0.1)
L2B = jnp.asarray(0.7)


def test_counter_sees_a_compilation():
    f = jax.jit(lambda x: jnp.sin(x) * 3.0)
    x = jnp.ones(7)
    with counting() as c:
        f(x).block_until_ready()
    assert c["backend"] == 1 and any("<lambda>" in n for n in c["names"]), c


def test_solver_run_new_tol_stepsize_and_data():
    jl.LBFGS(logreg_loss, tol=1e-6, maxiter=100).run(X0, L2, X, Y).params.block_until_ready()
    jl.GradientDescent(logreg_loss, stepsize=0.5, tol=1e-6, maxiter=100).run(X0, L2, X, Y)
    with counting() as c:
        for tol in (1e-7, 1e-9):
            jl.LBFGS(logreg_loss, tol=tol, maxiter=100).run(X0, L2B, X2, Y2).params.block_until_ready()
        for step in (0.25, 0.125):
            res = jl.GradientDescent(logreg_loss, stepsize=step, tol=1e-6, maxiter=100).run(X0, L2B, X2, Y2)
            res.params.block_until_ready()
    assert c["backend"] == 0, c["names"]


def test_batch_run_reuses_bucket_programs():
    solver = lambda tol: jl.LBFGS(logreg_loss, tol=tol, maxiter=100)
    axes = (None, 0, None, None)
    grids = [jnp.logspace(-3, 0, 8), jnp.logspace(-2, 1, 8), jnp.linspace(0.01, 0.5, 8)]
    buckets = (8, 4, 2, 1)
    with counting() as c:
        for i, lams in enumerate(grids):
            data = (X, Y) if i != 1 else (X2, Y2)
            out = jl.batch_run(solver(1e-6 if i else 1e-7), X0, lams, *data, in_axes=axes,
                               segment_size=4, buckets=buckets)
            jax.block_until_ready(out)
    segments = [n for n in c["names"] if n.startswith("jit(_segment_program)")]
    # At most one segment program per bucket size, over three batches, tolerances, data.
    assert 1 <= len(segments) <= len(buckets), c["names"]
    with counting() as again:
        jax.block_until_ready(jl.batch_run(solver(1e-8), X0, grids[0] * 1.01, X, Y, in_axes=axes,
                                           segment_size=4, buckets=(8,)))
        jax.block_until_ready(jl.batch_run(solver(1e-8), X0, grids[1], X, Y, in_axes=axes,
                                           segment_size=4, buckets=(8,)))
    # One bucket size: its program is compiled at most once (already, if the first batches used 8).
    assert len([n for n in again["names"] if n.startswith("jit(_segment_program)")]) <= 1, again["names"]
    with counting() as third:
        jax.block_until_ready(jl.batch_run(solver(1e-5), X0, grids[2] * 2.0, X2, Y2, in_axes=axes,
                                           segment_size=4, buckets=(8,)))
    assert third["backend"] == 0, third["names"]


def member(h, X, y):
    return jl.LBFGS(logreg_loss, tol=1e-6, maxiter=100).run(jnp.zeros(5), h["l2"], X, y)


def test_sweep_run_several_grids_one_shape():
    grids = [sweep.grid(l2=np.logspace(-3, 0, 6)), sweep.grid(l2=np.logspace(-2, 1, 6)),
             sweep.grid(l2=np.linspace(0.05, 2.0, 6))]
    with counting() as c:
        for g in grids:
            jax.block_until_ready(sweep.run(member, g, X, Y))
    segments = [n for n in c["names"] if n.startswith("jit(_segment_program)")]
    # One bucket for 6 members (6 slots); compiled at most once.
    assert 1 <= len(segments) <= 4, c["names"]
    shifted = [{"l2": jnp.asarray(g["l2"]) * 1.01} for g in grids]
    with counting() as again:
        for g in shifted:
            jax.block_until_ready(sweep.run(member, g, X2, Y2))
    segments_again = [n for n in again["names"] if n.startswith("jit(_segment_program)")]
    assert len(segments) + len(segments_again) <= 4, (c["names"], again["names"])
    with counting() as third:  # every program this sweep needs exists: nothing is compiled
        jax.block_until_ready(sweep.run(member, shifted[0], X2, Y2))
    assert third["backend"] == 0, third["names"]
