"""Running a sweep: :func:`run` (one compiled call per chunk) and :func:`run_steps` (long loops).

Long runs (:func:`run_steps`): a member that is a loop of steps (a training run,
a solver driven by ``init_state``/``update``) is run in segments of
``checkpoint_every`` steps; after each segment the whole stacked state is saved,
so a killed run resumes mid-run from the last segment (bitwise the same results
as an uninterrupted run: the same compiled segment program continues from the
same saved arrays).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_lab.sweep.batch import sweep_solver_runs
from jaxopt_lab.sweep.checkpoint import _open_checkpoints
from jaxopt_lab.sweep.placement import _host, _Plan

PyTree = Any

__all__ = ["run", "run_steps", "member_status"]


def member_status(results: PyTree) -> jax.Array | None:
    """Per-member :class:`jaxopt_lab.Status` codes of a sweep that returned an ``OptStep``.

    Args:
      results: the output of :func:`run`.

    Returns:
      The ``(n,)`` int32 status array, or ``None`` when ``results`` has no solver state.
    """
    state = getattr(results, "state", None)
    return getattr(state, "status", None)


def run(
    fun: Callable[..., PyTree],
    hparams: PyTree,
    *args,
    mesh: Mesh | None = None,
    chunk_size: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    axis_name: str | None = None,
    data_specs: PyTree | None = None,
    on_chunk: Callable[[int, int, bool], None] | None = None,
    run_key: str | None = None,
    **kwargs,
) -> PyTree:
    """Evaluate ``fun`` for every member of a hyperparameter sweep in one compiled program.

    ``fun(member_hparams, *args, **kwargs)`` gets one member's hyperparameters
    (``hparams`` with the member axis removed) and returns a pytree (e.g. a solver's
    ``OptStep``, or a dict of metrics). ``args``/``kwargs`` are shared by all members
    (pytrees of arrays, traced). Differentiable: ``jax.grad`` of a function of the
    results with respect to ``hparams`` (or ``args``) works, with implicit
    differentiation per member when ``fun`` runs a solver (no checkpointing then).
    A member that calls one jaxopt_lab solver's ``run`` (with any computation before or
    after it) is run by :func:`jaxopt_lab.batch_run`'s driver when no ``checkpoint_dir``,
    ``data_specs`` or ``on_chunk`` is given and nothing is traced: members that finish
    leave the batch, instead of waiting for the slowest (the same results, to rounding).

    Args:
      fun: the per-member function; the same Python object reuses the compiled program.
      hparams: pytree of arrays with a leading member axis (see :func:`grid`, :func:`random`).
      *args: shared arguments of ``fun``.
      mesh: a ``jax.sharding.Mesh``; members are split over ``axis_name`` (each device
        runs its slice vmapped). ``None`` runs on the default device.
      chunk_size: members per compiled call (bounds memory; a multiple of the mesh
        axis size). ``None`` runs all members at once. The last chunk is padded by
        repeating the last member, so every chunk has the same shape (one compile).
      checkpoint_dir: folder where each finished chunk is saved (orbax); a rerun with
        the same folder resumes from the saved chunks. A folder written by another
        sweep (other ``hparams``, ``chunk_size``, shared arguments, ``fun`` or output
        structure) raises ``ValueError``, and so does a moved, renamed or damaged chunk.
      axis_name: mesh axis for the members (default: the mesh's first axis).
      data_specs: optional tuple with one ``PartitionSpec`` (or ``None``) per positional
        argument, sharding the shared data (e.g. ``P("data")`` splits rows) over other
        mesh axes; then XLA partitions ``fun`` itself (GSPMD), and lanes wait
        for the slowest member of the whole chunk.
      on_chunk: optional callback ``(chunk_index, num_chunks, loaded_from_checkpoint)``
        called after each chunk is finished (and saved).
      run_key: with ``checkpoint_dir``, a string that names ``fun``'s behaviour instead
        of fingerprinting its code, closure and defaults (needed when ``fun`` holds
        something that has no deterministic content, e.g. a lock or an open file;
        change it whenever ``fun`` computes something else).
      **kwargs: shared keyword arguments of ``fun``.

    Returns:
      ``fun``'s output pytree with a leading member axis of length ``n``. When ``fun``
      returns an ``OptStep``, ``results.state.status`` holds each member's status
      (see :func:`member_status`).

    References:
      Bradbury et al., "JAX: composable transformations of Python+NumPy programs", 2018;
      Xu et al., "GSPMD: General and Scalable Parallelization for ML Computation
      Graphs", 2021 (arXiv:2105.04663).
    """
    if not callable(fun):
        raise TypeError(f"`fun` must be callable, got {type(fun).__name__}.")
    plan = _Plan(hparams, len(args), mesh, chunk_size, axis_name, data_specs)
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(hparams))
    if checkpoint_dir is None and data_specs is None and on_chunk is None and not traced:
        # A member that runs one solver: finished members leave the batch (batch_run's driver).
        batched = sweep_solver_runs(fun, hparams, args, kwargs, mesh, chunk_size, axis_name)
        if batched is not None:
            return batched
    ckpts = None
    if checkpoint_dir is not None:
        if traced:
            raise ValueError("`checkpoint_dir` cannot be used while differentiating or tracing a sweep.")
        ckpts, out_shape = _open_checkpoints(checkpoint_dir, run_key, {"fun": fun}, plan, fun, hparams,
                                             args, kwargs)
        out_tree = jax.tree_util.tree_structure(out_shape)
    else:
        out_tree = None
    pieces = []
    done = ckpts.done() if ckpts else set()
    for i in range(plan.num_chunks):
        if i in done:
            pieces.append([jnp.asarray(x) for x in ckpts.load(i, out_tree.num_leaves)])
        else:
            leaves, out_tree = jax.tree_util.tree_flatten(plan.compute(fun, plan.chunk_of(hparams, i),
                                                                       args, kwargs))
            if ckpts is not None:
                ckpts.save(i, [_host(x) for x in leaves])
            pieces.append(leaves)
        if on_chunk is not None:
            on_chunk(i, plan.num_chunks, i in done)
    return plan.assemble(pieces, out_tree, traced)


def _strong(tree, like=None):
    # Carries are kept strongly typed, so a carry restored from disk (numpy, no weak
    # types) runs the very same compiled segment as one kept in memory.
    like = tree if like is None else like
    return jax.tree_util.tree_map(lambda x, r: jnp.asarray(x, jnp.result_type(r)), tree, like)


@functools.lru_cache(maxsize=128)
def _strong_init(init: Callable) -> Callable:
    return lambda h, *args, **kwargs: _strong(init(h, *args, **kwargs))


@functools.lru_cache(maxsize=128)
def _segment(step: Callable, done: Callable | None) -> Callable:
    """Per-member program: up to ``length`` steps (a traced count), frozen once ``done``."""

    def seg(member, length, *args, **kwargs):
        h, carry = member

        def cond(c):
            go = c[0] < length
            return go if done is None else go & ~jnp.asarray(done(c[1]), bool)

        body = lambda c: (c[0] + 1, _strong(step(c[1], h, *args, **kwargs), c[1]))
        return jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), carry))[1]

    return seg


def run_steps(
    init: Callable[..., PyTree],
    step: Callable[..., PyTree],
    hparams: PyTree,
    *args,
    num_steps: int,
    done: Callable[[PyTree], jax.Array] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    chunk_size: int | None = None,
    axis_name: str | None = None,
    data_specs: PyTree | None = None,
    on_segment: Callable[[int, int, int, bool], None] | None = None,
    run_key: str | None = None,
    **kwargs,
) -> PyTree:
    """A sweep of long step loops (training runs, solvers), checkpointed mid-run.

    Every member runs ``carry = init(h, *args, **kwargs)`` then up to ``num_steps``
    times ``carry = step(carry, h, *args, **kwargs)``, stopping early (its carry
    frozen) once ``done(carry)`` is true. The steps run as one compiled vmapped
    ``while_loop`` per segment of ``checkpoint_every`` steps; with
    ``checkpoint_dir`` the stacked carry is saved (orbax) after every segment, so a
    killed process restarted with the same call resumes from the last saved
    segment and returns bitwise the results of an uninterrupted run. Finished
    chunks are kept as in :func:`run`. A solver is driven by
    ``init = lambda h, *a: OptStep(x0, solver(h).init_state(x0, *a))``,
    ``step = lambda c, h, *a: solver(h).update(c.params, c.state, *a)`` and
    ``done = lambda c: c.state.status != Status.RUNNING`` (what ``solver.run`` does,
    without its non-finite guard and implicit differentiation).

    Args:
      init: ``init(member_hparams, *args, **kwargs) -> carry`` (a pytree of arrays).
      step: ``step(carry, member_hparams, *args, **kwargs) -> carry`` (same structure).
      hparams: pytree of arrays with a leading member axis.
      *args: shared arguments of ``init`` and ``step``.
      num_steps: maximum steps per member.
      done: optional ``done(carry) -> bool`` per member (e.g. a solver's status left RUNNING).
      checkpoint_every: steps per compiled segment (default ``num_steps``: one segment).
      checkpoint_dir: folder for the per-segment states and finished chunks.
      mesh, chunk_size, axis_name, data_specs: as in :func:`run`.
      on_segment: optional callback ``(chunk_index, num_chunks, steps_done, resumed)``
        after each segment is finished (and saved); ``resumed`` is true for a state
        or chunk loaded from ``checkpoint_dir``.
      run_key: with ``checkpoint_dir``, a string naming what ``init``, ``step`` and
        ``done`` compute, used instead of fingerprinting their code (see :func:`run`).
      **kwargs: shared keyword arguments of ``init`` and ``step``.

    Returns:
      The final carries stacked along a leading member axis of length ``n``.

    References:
      Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016
      (arXiv:1604.06174), for checkpointing long runs; orbax-checkpoint (Google).
    """
    for f, name in ((init, "init"), (step, "step")):
        if not callable(f):
            raise TypeError(f"`{name}` must be callable, got {type(f).__name__}.")
    if done is not None and not callable(done):
        raise TypeError(f"`done` must be callable or None, got {type(done).__name__}.")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
    every = num_steps if checkpoint_every is None else checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"`checkpoint_every` must be a positive int, got {checkpoint_every!r}.")
    plan = _Plan(hparams, len(args), mesh, chunk_size, axis_name, data_specs)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(hparams)):
        raise ValueError("`run_steps` cannot be traced or differentiated; use `run` with a solver's `run` "
                         "(implicit differentiation) instead.")
    seg, init_ = _segment(step, done), _strong_init(init)
    ckpts = None
    if checkpoint_dir is not None:
        ckpts, _ = _open_checkpoints(checkpoint_dir, run_key, {"init": init, "step": step, "done": done},
                                     plan, init_, hparams, args, kwargs, options=f"steps {num_steps}/{every}")
    finished = ckpts.done() if ckpts else set()
    out_tree, pieces = None, []

    def all_done(carry):
        return done is not None and bool(np.all(_host(jax.vmap(done)(carry))))

    for i in range(plan.num_chunks):
        h = plan.chunk_of(hparams, i)
        carry_shape = jax.eval_shape(lambda hh: plan.compute(init_, hh, args, kwargs), h)
        out_tree = jax.tree_util.tree_structure(carry_shape)
        if i in finished:
            pieces.append([jnp.asarray(x) for x in ckpts.load(i, out_tree.num_leaves)])
            if on_segment is not None:
                on_segment(i, plan.num_chunks, num_steps, True)
            continue
        steps, path = ckpts.latest_state(i) if ckpts else (0, None)
        if path is not None:
            saved = ckpts.load_state(i, steps, path, out_tree.num_leaves)
            carry = jax.tree_util.tree_unflatten(out_tree, saved)
            if on_segment is not None:
                on_segment(i, plan.num_chunks, steps, True)
        else:
            carry = plan.compute(init_, h, args, kwargs)
        while steps < num_steps and not all_done(carry):
            length = min(every, num_steps - steps)
            carry = plan.compute(seg, (h, carry), (np.int32(length), *args), kwargs, extra_specs=(P(),))
            steps += length
            if ckpts is not None and steps < num_steps:
                ckpts.save_state(i, steps, [_host(x) for x in jax.tree_util.tree_leaves(carry)])
            if on_segment is not None:
                on_segment(i, plan.num_chunks, steps, False)
        leaves = jax.tree_util.tree_leaves(carry)
        if ckpts is not None:
            ckpts.save(i, [_host(x) for x in leaves])
            ckpts.drop_states(i)
        pieces.append(leaves)
    return plan.assemble(pieces, out_tree, False)
