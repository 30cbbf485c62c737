"""Batched solves that drop finished members: :func:`batch_run`.

``jax.vmap(solver.run)`` runs one ``while_loop`` for the whole batch: every lane
pays for the iterations of the slowest one. :func:`batch_run` runs the same solves
as compiled *segments* of at most ``segment_size`` ``update`` steps over a bucket
of lanes, and compacts the batch on the device: a step runs a loop over blocks of
``step_width`` lanes (one vmapped step body for every width), and as soon as the
lanes still running fit in fewer blocks it moves them to the first slots (an index
gather of the carry, the lanes and the member ids) and steps only those blocks. A
sweep whose members all start at once therefore runs as one program call with one
small read of the status and ids per call. Outputs of the lanes that stopped are
written on the device into a results buffer in member order. Between calls (when
``segment_size`` steps were taken, or while members wait) the host refills the free
slots from the members still waiting (the rest of the batch and an optional queue).
The segment program is compiled once per bucket size and reused for every later
sweep of the same shapes. Under a 1-D mesh every device holds a bucket of the same
size, and one SPMD program (``shard_map`` of the same segment, no collectives) runs
all of them: one compile for all the devices, each device looping until its own
lanes stop.

Each lane runs exactly the loop of the base ``run``
(:meth:`jaxopt_lab.core.solver.IterativeSolver.run`): ``init_state``, the
non-finite guard of :mod:`jaxopt_lab.core.loop` (with the look-back of
``_state_at_input`` solvers) and the solver's ``_finish_run``; a solver whose
``run`` adapts its arguments first (OSQP, Bisection, bilevel solvers) is seen
through it, so the result of every lane is the result of ``solver.run`` for that
member, up to the rounding of a batched computation.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab.core import loop as _loop
from jaxopt_lab.core import solver as _solver
from jaxopt_lab.core.solver import ById
from jaxopt_lab.core.types import OptStep, Status

PyTree = Any

__all__ = ["batch_run"]

_RUNNING = int(Status.RUNNING)
# Status given to the empty slots of a bucket: any code but RUNNING freezes a lane.
_EMPTY = int(Status.CONVERGED)
DEFAULT_SEGMENT_SIZE = 32
# Lanes stepped at once on CPU: a block's working set (its carry and its f+g temporaries)
# stays in cache. On the 128-solve float64 sweep (n=2000, d=100) and on 256 small float32
# solves (benchmarks/bench_batch_run.py), whole runs with blocks of 8/16/24/32/64 lanes:
# 32 was fastest on both (sweep 80-84 ms vs 89-100 ms at 16 and 121 ms at 64), and a
# step of 32-lane blocks costs less than one step of all the lanes. GPUs and TPUs step
# the whole bucket at once.
_CPU_STEP_WIDTH = 32


# --------------------------------------------------------------------------- one member's solve


class _Captured(BaseException):
    """Raised by the interceptor to leave the member function at its solver ``run`` call.

    A ``BaseException``, so that a member function's own ``except Exception`` cannot
    swallow it.
    """


class NotASolverRun(TypeError):
    """The member function does not call a solver's ``run`` exactly once."""


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Static description of a member: how to rebuild its call from lane and shared leaves.

    ``fun`` is ``None`` for :func:`batch_run` (the call is ``solver.run(*full)`` with the
    solver as the dynamic argument) and a member function for a sweep (the call is
    ``fun(h, *args, **kwargs)`` with ``full = (h, args, kwargs)``).
    """

    treedef: Any
    batched: tuple
    fun: ById | None = None
    solver: ById | None = None  # a solver that is not a pytree (a wrapper object): static

    def full(self, lane, shared):
        lane_it, shared_it = iter(lane), iter(shared)
        leaves = [next(lane_it) if b else next(shared_it) for b in self.batched]
        return self.treedef.unflatten(leaves)

    def call(self, dyn, full):
        if self.fun is None:
            solver = dyn if self.solver is None else self.solver.value
            return solver.run(*full)
        h, args, kwargs = full
        return self.fun.value(h, *args, **kwargs)


def _capture(spec: _Spec, dyn, full):
    """``(solver, init_params, args, kwargs)`` of the member's solver ``run`` call."""
    box = []

    def hook(solver, init_params, args, kwargs):
        box.append((solver, init_params, tuple(args), dict(kwargs)))
        raise _Captured

    token = _solver.RUN_INTERCEPTOR.set(hook)
    try:
        spec.call(dyn, full)
    except _Captured:
        pass
    finally:
        _solver.RUN_INTERCEPTOR.reset(token)
    if not box:
        raise NotASolverRun("the member function never calls a jaxopt_lab solver's `run`.")
    return box[0]


def _replay(spec: _Spec, dyn, full, result: OptStep):
    """The member's output when its solver ``run`` call returns ``result``."""
    calls = []

    def hook(solver, init_params, args, kwargs):
        calls.append(solver)
        if len(calls) > 1:
            raise NotASolverRun("the member function calls a solver's `run` more than once.")
        return result

    token = _solver.RUN_INTERCEPTOR.set(hook)
    try:
        out = spec.call(dyn, full)
    finally:
        _solver.RUN_INTERCEPTOR.reset(token)
    if not calls:
        raise NotASolverRun("the member function never calls a jaxopt_lab solver's `run`.")
    return out


def _check_loop_solver(solver) -> None:
    for name in ("init_state", "update"):
        if not callable(getattr(solver, name, None)):
            raise TypeError(f"`solver` must have `init_state` and `update` methods; "
                            f"{type(solver).__name__} has no `{name}`.")
    base = _solver.IterativeSolver
    if not isinstance(solver, base):
        raise TypeError(f"`solver` must be a jaxopt_lab IterativeSolver, got {type(solver).__name__}.")
    for name in ("_run_loop", "_run_differentiable"):
        if getattr(type(solver), name) is not getattr(base, name):
            raise NotASolverRun(f"{type(solver).__name__}.run does not iterate `update` "
                                f"(it overrides `{name}`).")


def _lane_init(solver, x0, args, kwargs):
    """The carry ``(prev, params, state)`` of the base run loop before its first step."""
    state = solver.init_state(x0, *args, **kwargs)
    return (x0 if solver._state_at_input else None, x0, state)


def _lane_step(solver, args, kwargs, carry):
    """One guarded step of one lane (the base loop's body)."""
    step = lambda p, s: solver._loop_step(p, s, args, kwargs)
    return _loop.guarded_step(step, solver.verbose, type(solver).__name__, solver._state_at_input)(*carry)


def _lane_result(solver, args, kwargs, carry) -> OptStep:
    """What the base run loop returns for a stopped carry (``_finish_run`` included)."""
    prev, params, state = carry
    if solver._state_at_input:
        params, state = solver._finish_run(prev, params, state, *args, **kwargs)
    return OptStep(params, state)


# --------------------------------------------------------------------------- bucket programs


def _select(mask, new, old):
    def pick(a, b):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(a) - 1))
        return jnp.where(m, a, b)

    return jax.tree_util.tree_map(pick, new, old)


def _take(tree, idx):
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


def _running(carry) -> jax.Array:
    """Which lanes of a ``(prev, params, state)`` carry are still running."""
    return carry[2].status == _RUNNING


def _step_blocks(step: Callable, carry, lanes, block: int, count):
    """``carry`` after one ``step`` of its first ``count`` blocks of ``block`` slots.

    Each block is a vmapped ``step(carry, lane)`` of ``block`` lanes, and a lane that had
    stopped keeps its carry (what a vmapped ``while_loop`` does). ``count`` may be traced.
    """

    def one(j, c):
        cut = lambda x: jax.lax.dynamic_slice_in_dim(x, j * block, block)
        part = jax.tree_util.tree_map(cut, c)
        new = _select(_running(part), jax.vmap(step)(part, jax.tree_util.tree_map(cut, lanes)), part)
        put = lambda x, p: jax.lax.dynamic_update_slice_in_dim(x, p, j * block, 0)
        return jax.tree_util.tree_map(put, c, new)

    return jax.lax.fori_loop(0, count, one, carry)


def _segment(spec: _Spec, block: int, dyn, carry, lanes, shared, ids, fresh, budget, target):
    """One segment over a bucket: initialize fresh lanes, step them in blocks, compact, finish.

    Every step runs a ``fori_loop`` over the first ``active`` blocks of ``block`` slots,
    each block a vmapped ``update`` of ``block`` lanes (the lanes that had stopped keep
    their carry, as in a vmapped ``while_loop``): one compiled step body serves every
    number of running lanes, and on CPU a block's working set stays in cache. Before a
    step, when the running lanes fit in fewer blocks than are active, the slots are
    reordered on the device (running lanes first: an index gather of the carry, the
    lanes and the member ids) and only the blocks holding them are stepped from then on.
    The segment ends after ``budget`` steps, or once at most ``target`` lanes run (0 runs
    the bucket to its end; the host sets more while members wait to refill the slots).
    ``budget`` and ``target`` are traced: one program per bucket size serves every segment.

    Returns ``(carry, lanes, ids, status, written, outputs, work)`` in the new slot
    order: ``ids`` with the lanes that stopped set to -1, ``written`` the member index of
    each such lane (-1 elsewhere), ``outputs`` the member outputs (zeros where nothing is
    written, everywhere when nothing is) and ``work`` = ``[steps, lane-steps]`` (lane-steps:
    the slots stepped, summed over the steps).
    """

    def init_one(lane):
        solver, x0, args, kwargs = _capture(spec, dyn, spec.full(lane, shared))
        return _lane_init(solver, x0, args, kwargs)

    def step_one(c, lane):
        solver, _, args, kwargs = _capture(spec, dyn, spec.full(lane, shared))
        return _lane_step(solver, args, kwargs, c)

    carry = jax.lax.cond(jnp.any(fresh), lambda: _select(fresh, jax.vmap(init_one)(lanes), carry),
                         lambda: carry)
    prev, params, state = carry
    state = state._replace(status=jnp.where(ids >= 0, state.status, _EMPTY).astype(state.status.dtype))
    carry = (prev, params, state)

    def compact(parts):
        c, lanes, ids = parts
        order = jnp.argsort(~_running(c), stable=True)
        return _take(c, order), _take(lanes, order), ids[order]

    def cond(loop):
        k, _, _, c, _, _ = loop
        return (k < budget) & (jnp.sum(_running(c)) > target)

    def body(loop):
        k, active, work, c, lanes, ids = loop
        need = (jnp.sum(_running(c), dtype=jnp.int32) + block - 1) // block
        c, lanes, ids = jax.lax.cond(need < active, compact, lambda parts: parts, (c, lanes, ids))
        active = jnp.minimum(active, need)
        c = _step_blocks(step_one, c, lanes, block, active)
        return k + 1, active, work + active * block, c, lanes, ids

    zero = jnp.asarray(0, jnp.int32)
    loop = (zero, jnp.asarray(ids.shape[0] // block, jnp.int32), zero, carry, lanes, ids)
    k, _, work, carry, lanes, ids = jax.lax.while_loop(cond, body, loop)
    status = carry[2].status

    def out_one(c, lane):
        full = spec.full(lane, shared)
        solver, _, args, kwargs = _capture(spec, dyn, full)
        return _replay(spec, dyn, full, _lane_result(solver, args, kwargs, c))

    def outputs():
        return jax.vmap(out_one)(carry, lanes)

    def zeros():
        shapes = jax.eval_shape(outputs)
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    stopped = (ids >= 0) & (status != _RUNNING)
    out = jax.lax.cond(jnp.any(stopped), outputs, zeros)
    written = jnp.where(stopped, ids, -1)
    return carry, lanes, jnp.where(stopped, -1, ids), status, written, out, jnp.stack([k, work])


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(3, 4))
def _segment_program(spec: _Spec, block: int, dyn, carry, lanes, shared, ids, fresh, budget, target):
    """:func:`_segment` on the default device."""
    return _segment(spec, block, dyn, carry, lanes, shared, ids, fresh, budget, target)


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(4, 5))
def _mesh_segment_program(spec: _Spec, block: int, mesh: Mesh, dyn, carry, lanes, shared, ids, fresh,
                          budget, target):
    """:func:`_segment` on every device of a 1-D ``mesh`` at once, one bucket per device.

    One SPMD program (``shard_map``, no collectives): each device runs the segment of its
    own slots, with its own loop trip counts, so a device stops when its own lanes do.
    Compiled once for all the devices. ``work`` comes back as ``[devices, 2]``.
    """
    lane = P(mesh.axis_names[0])

    def local(dyn, carry, lanes, shared, ids, fresh, budget, target):
        out = _segment(spec, block, dyn, carry, lanes, shared, ids, fresh, budget, target)
        return out[:-1] + (out[-1][None],)

    return jax.shard_map(local, mesh=mesh, in_specs=(P(), lane, lane, P(), lane, lane, P(), P()),
                         out_specs=lane, check_vma=False)(dyn, carry, lanes, shared, ids, fresh, budget,
                                                          target)


def _write_rows(results, outputs, written):
    """``results`` with row ``written[j]`` set to ``outputs[j]`` (slots with -1 write nothing)."""
    n = jax.tree_util.tree_leaves(results)[0].shape[0]
    idx = jnp.where(written >= 0, written, n)  # out of bounds: dropped
    return jax.tree_util.tree_map(lambda r, o: r.at[idx].set(o, mode="drop"), results, outputs)


@functools.partial(jax.jit, donate_argnums=(0,))
def _write(results, outputs, written):
    """:func:`_write_rows` on the default device."""
    return _write_rows(results, outputs, written)


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(1,))
def _mesh_write(mesh: Mesh, results, outputs, written):
    """:func:`_write_rows` on every device: each writes its own rows (pool member numbers)."""
    lane = P(mesh.axis_names[0])
    return jax.shard_map(_write_rows, mesh=mesh, in_specs=lane, out_specs=lane,
                         check_vma=False)(results, outputs, written)


@jax.jit
def _refill(lanes, new_lanes, refill):
    """``lanes`` with the ``refill`` slots replaced by ``new_lanes``'s."""
    return _select(refill, new_lanes, lanes)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _zero_buffers(spec: _Spec, dyn, lanes, shared, capacity: int, sharding: NamedSharding | None = None):
    """Zeros shaped like a bucket's carry, and like ``capacity`` members' outputs (placed
    with ``sharding`` when given: one block of rows per device)."""

    def init_one(lane):
        solver, x0, args, kwargs = _capture(spec, dyn, spec.full(lane, shared))
        return _lane_init(solver, x0, args, kwargs)

    def out_one(c, lane):
        full = spec.full(lane, shared)
        solver, _, args, kwargs = _capture(spec, dyn, full)
        return _replay(spec, dyn, full, _lane_result(solver, args, kwargs, c))

    carry = jax.eval_shape(jax.vmap(init_one), lanes)
    out = jax.eval_shape(jax.vmap(out_one), carry, lanes)
    zeros = lambda t, lead: jax.tree_util.tree_map(lambda s: jnp.zeros(lead + s.shape[1:], s.dtype), t)
    bufs = zeros(carry, (jax.tree_util.tree_leaves(carry)[0].shape[0],)), zeros(out, (capacity,))
    return bufs if sharding is None else jax.lax.with_sharding_constraint(bufs, sharding)


@functools.partial(jax.jit, static_argnums=(2,))
def _gather_rows(leaves, rows, count: int):
    """The first ``count`` rows of ``leaves`` in the order ``rows`` (all on the device)."""
    return [x[:count] if rows is None else x[rows] for x in leaves]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _grow(results, pools: int, capacity: int):
    """``results`` (``pools`` blocks of rows, one per device) with each block padded with
    zero rows to ``capacity`` members."""

    def pad(r):
        r = r.reshape((pools, -1) + r.shape[1:])
        r = jnp.concatenate([r, jnp.zeros(r.shape[:1] + (capacity - r.shape[1],) + r.shape[2:], r.dtype)], 1)
        return r.reshape((-1,) + r.shape[2:])

    return jax.tree_util.tree_map(pad, results)


# --------------------------------------------------------------------------- members and buckets


class _Members:
    """The members' batched leaves on the host: the stacked ones, then the queue's."""

    def __init__(self, stacked: list[np.ndarray], queue_items: Iterable | None, parse: Callable | None):
        self.stacked = stacked
        self.n = int(stacked[0].shape[0]) if stacked else 0
        self.queue = iter(queue_items) if queue_items is not None else None
        self.parse = parse
        self.buffer: collections.deque = collections.deque()  # parsed queue items not started yet
        self.extra: dict[int, list[np.ndarray]] = {}
        self.next_id = 0
        self.num_parsed = 0

    def _next_item(self):
        if self.buffer:
            return self.buffer.popleft()
        if self.queue is None:
            return None
        item = next(self.queue, None)
        if item is None:
            self.queue = None
            return None
        self.num_parsed += 1
        return self.parse(item, self.num_parsed - 1)

    def peek(self) -> list[np.ndarray] | None:
        """The batched leaves of the next member (without starting it)."""
        if self.next_id < self.n:
            return [x[self.next_id] for x in self.stacked]
        item = self._next_item()
        if item is not None:
            self.buffer.appendleft(item)
        return item

    def pull(self, k: int) -> list[int]:
        """Up to ``k`` ids of members not started yet."""
        ids = []
        while len(ids) < k:
            if self.next_id < self.n:
                take = min(k - len(ids), self.n - self.next_id)
                ids.extend(range(self.next_id, self.next_id + take))
                self.next_id += take
                continue
            item = self._next_item()
            if item is None:
                break
            self.extra[self.next_id] = item
            ids.append(self.next_id)
            self.next_id += 1
        return ids

    def rows(self, ids: Sequence[int]) -> list[np.ndarray]:
        """The batched leaves of members ``ids``, stacked (a lane input of ``len(ids)`` slots)."""
        ids = list(ids)
        if all(i < self.n for i in ids):
            return [x[np.asarray(ids, np.int64)] for x in self.stacked]
        return [np.stack([x[i] if i < self.n else self.extra[i][j] for i in ids])
                for j, x in enumerate(self.stacked)]

    def waiting(self) -> bool:
        """Whether members may remain that have not started (an unread queue counts)."""
        return self.next_id < self.n or bool(self.buffer) or self.queue is not None

    def drop(self, ids) -> None:
        for i in ids:
            self.extra.pop(int(i), None)


def _bucket_sizes(buckets, per_device: int) -> tuple[int, ...]:
    if buckets is None:
        return (max(per_device, 1),)
    if isinstance(buckets, int | np.integer) and not isinstance(buckets, bool):
        buckets = (buckets,)
    try:
        sizes = tuple(sorted({int(b) for b in buckets}))
        ok = all(isinstance(b, int | np.integer) and not isinstance(b, bool) for b in buckets)
    except TypeError:
        ok = False
    if not ok or not sizes or sizes[0] < 1:
        raise ValueError(f"`buckets` must be a non-empty sequence of positive ints, got {buckets!r}.")
    return sizes


def _fit(sizes: tuple[int, ...], k: int) -> int:
    """The smallest bucket holding ``k`` lanes (the largest bucket when none does)."""
    for s in sizes:
        if s >= k:
            return s
    return sizes[-1]


class _Pool:
    """The host bookkeeping of one device's bucket of slots (each holds one member or none).

    Members are numbered per pool in the order they start (``members[j]`` is the global
    id of the pool's member ``j``); their outputs are written, on the device, to row ``j``
    of the pool's block of the results buffer.
    """

    def __init__(self, size: int):
        self.members: list[int] = []
        self.ids = np.full(size, -1, np.int32)  # pool member number per slot (-1: empty)
        self.fresh = np.zeros(size, bool)       # slot needs init_state before its next segment


def _target(size: int, waiting: bool) -> np.int32:
    """Running lanes at which a segment ends (it also ends after ``segment_size`` steps):
    0 (run to the end), or while members wait, as soon as an eighth of a bucket's slots (at
    least one) can be refilled."""
    return np.int32(size - max(1, size // 8) if waiting else 0)


def _step_width(step_width: int | None, device) -> int:
    if step_width is not None:
        return step_width
    platform = device.platform if device is not None else jax.default_backend()
    return _CPU_STEP_WIDTH if platform == "cpu" else 1 << 30


class _Layout:
    """Where the slots live: the default device, or one bucket per device of a 1-D mesh
    (every per-slot array is then sharded over the mesh axis, one block per device)."""

    def __init__(self, mesh: Mesh | None):
        self.mesh = mesh
        self.devices = list(mesh.devices.flat) if mesh is not None else [None]
        self.lane = NamedSharding(mesh, P(mesh.axis_names[0])) if mesh is not None else None
        self.whole = NamedSharding(mesh, P()) if mesh is not None else None

    def slots(self, tree):
        """Per-slot (or per-row) arrays, placed one block per device."""
        return jax.device_put(tree) if self.mesh is None else jax.device_put(tree, self.lane)

    def arg(self, tree):
        """A per-slot host array argument: left to the call's own transfer without a mesh
        (cheaper for small host arrays), sharded over the mesh otherwise."""
        return tree if self.mesh is None else jax.device_put(tree, self.lane)

    def shared(self, tree):
        """An argument every device reads whole (replicated over the mesh)."""
        return tree if self.mesh is None else jax.device_put(tree, self.whole)

    def segment(self, spec, block, dyn, *rest):
        if self.mesh is None:
            return _segment_program(spec, block, dyn, *rest)
        return _mesh_segment_program(spec, block, self.mesh, dyn, *rest)

    def write(self, results, outputs, written):
        if self.mesh is None:
            return _write(results, outputs, written)
        return _mesh_write(self.mesh, results, outputs, written)


def _drive(spec: _Spec, dyn, members: _Members, shared: list, mesh: Mesh | None, sizes: tuple[int, ...],
           segment_size: int, step_width: int | None = None):
    """The host loop: segments over every device's bucket, outputs written on the device.

    Every device holds a bucket of the same ``size`` slots; one program call runs a
    segment on all of them (under a mesh, one SPMD program). Returns ``(out_tree,
    leaves)``: the output leaves with a leading member axis, in member order.
    """
    layout = _Layout(mesh)
    n_pools = len(layout.devices)
    shared = layout.shared(_device_leaves(shared))
    dyn = layout.shared(dyn)
    budget = np.int32(segment_size)
    share = -(-members.n // n_pools) if members.n else 0

    # First buckets: the stacked members split evenly over the devices (queue-only: full buckets).
    first = _fit(sizes, share) if members.n else sizes[-1]
    starts = [members.pull(first) for _ in range(n_pools)]
    size = _fit(sizes, max(len(ids) for ids in starts))
    block = min(_step_width(step_width, layout.devices[0]), size)
    size = -(-size // block) * block  # whole blocks; the extra slots start empty
    pools = [_Pool(size) for _ in range(n_pools)]
    anyone = next(ids[0] for ids in starts if ids)
    rows = []
    for p, ids in zip(pools, starts, strict=True):
        p.members = list(ids)
        p.ids[:len(ids)] = np.arange(len(ids))
        p.fresh[:len(ids)] = True
        rows.extend(ids + [anyone] * (size - len(ids)))
    lanes = layout.slots(members.rows(rows))
    capacity = max(share, size)
    carry, results = _zero_buffers(spec, dyn, lanes, shared, n_pools * capacity, layout.lane)

    while any(np.any(p.ids >= 0) for p in pools):
        out = layout.segment(spec, block, dyn, carry, lanes, shared,
                             layout.arg(np.concatenate([p.ids for p in pools])),
                             layout.arg(np.concatenate([p.fresh for p in pools])), budget,
                             _target(size, members.waiting()))
        carry, lanes = out[:2]
        results = layout.write(results, out[5], out[4])
        ids, written = jax.device_get((out[2], out[4]))
        for d, p in enumerate(pools):
            cut = slice(d * size, (d + 1) * size)
            w = written[cut]
            members.drop([p.members[j] for j in w[w >= 0]])
            p.ids, p.fresh = np.array(ids[cut]), np.zeros(size, bool)
        lanes, grown = _refill_pools(pools, members, lanes, layout)
        if grown > capacity:
            capacity = max(2 * capacity, grown)
            results = layout.slots(_grow(results, n_pools, capacity))

    # The results row of every member (pool d's member j is row d * capacity + j), gathered
    # into member order on the device (no copy when they already are in order).
    count = sum(len(p.members) for p in pools)
    rows = np.empty(count, np.int32)
    for d, p in enumerate(pools):
        rows[np.asarray(p.members, np.int64)] = d * capacity + np.arange(len(p.members))
    leaves = jax.tree_util.tree_leaves(results)
    if np.array_equal(rows, np.arange(count)):
        if count != n_pools * capacity:
            leaves = _gather_rows(leaves, None, count)
    else:
        leaves = _gather_rows(leaves, rows, count)
    return jax.tree_util.tree_structure(results), leaves


def _device_leaves(shared: list) -> list:
    # Arrays go to the device once; Python scalars stay weakly typed, as vmap passes them.
    return [x if isinstance(x, int | float | complex | bool) or x is None else jnp.asarray(x)
            for x in shared]


def _refill_pools(pools: list[_Pool], members: _Members, lanes, layout: _Layout):
    """Fill the empty slots of every pool from the members that have not started.

    Returns ``(lanes, most)``: the lanes with the new members' inputs, and the most members
    any pool has had (the results rows it needs).
    """
    size = pools[0].ids.size
    refill = np.zeros(len(pools) * size, bool)
    src: list[int] = []
    for d, p in enumerate(pools):
        free = np.flatnonzero(p.ids < 0)
        new_ids = members.pull(free.size) if free.size else []
        slots = free[:len(new_ids)]
        first = len(p.members)
        p.members.extend(new_ids)
        p.ids[slots] = np.arange(first, first + len(new_ids), dtype=np.int32)
        p.fresh[slots] = True
        refill[d * size + slots] = True
        row = np.full(size, -1, np.int64)
        row[slots] = new_ids
        src.extend(row.tolist())
    most = max(len(p.members) for p in pools)
    if not refill.any():
        return lanes, most
    anyone = next(i for i in src if i >= 0)
    rows = members.rows([i if i >= 0 else anyone for i in src])
    return _refill(lanes, layout.slots(rows), layout.arg(refill)), most


# --------------------------------------------------------------------------- arguments


def _axes_of(in_axes, full: tuple, name: str = "in_axes") -> list:
    """Per-leaf member axes (int or None) of ``full``, from a ``jax.vmap``-style ``in_axes``."""
    if in_axes is None or (isinstance(in_axes, int) and not isinstance(in_axes, bool)):
        entries = [in_axes] * len(full)
    elif isinstance(in_axes, tuple | list):
        if len(in_axes) != len(full):
            raise ValueError(f"`{name}` has {len(in_axes)} entries but there are {len(full)} arguments "
                             f"(init_params and {len(full) - 1} positional args).")
        entries = list(in_axes)
    else:
        raise TypeError(f"`{name}` must be an int, None or a tuple with one entry per argument, "
                        f"got {in_axes!r}.")
    axes = []
    for i, (entry, arg) in enumerate(zip(entries, full, strict=True)):
        n_leaves = len(jax.tree_util.tree_leaves(arg))
        if entry is None or (isinstance(entry, int) and not isinstance(entry, bool)):
            axes.extend([entry] * n_leaves)
            continue
        try:
            per_leaf = jax.tree_util.tree_map(
                lambda a, sub: [a] * len(jax.tree_util.tree_leaves(sub)), entry, arg,
                is_leaf=lambda x: x is None)
        except (ValueError, TypeError) as err:
            raise ValueError(f"`{name}[{i}]` does not match the structure of argument {i}: {err}") from None
        flat = [a for lst in jax.tree_util.tree_leaves(per_leaf, is_leaf=lambda x: isinstance(x, list))
                for a in lst]
        if any(a is not None and (isinstance(a, bool) or not isinstance(a, int)) for a in flat):
            raise TypeError(f"`{name}[{i}]` must hold ints or None, got {entry!r}.")
        axes.extend(flat)
    return axes


def _split(full: tuple, axes: list, name: str = "in_axes"):
    """``(treedef, batched flags, member-axis-first batched leaves (numpy), shared leaves, n)``."""
    leaves, treedef = jax.tree_util.tree_flatten(full)
    if len(axes) != len(leaves):
        raise ValueError(f"`{name}` does not match the arguments' structure.")
    batched, stacked, shared, sizes = [], [], [], set()
    for leaf, ax in zip(leaves, axes, strict=True):
        if ax is None:
            batched.append(False)
            shared.append(leaf)
            continue
        if isinstance(leaf, jax.core.Tracer):
            stacked.append(leaf)
            batched.append(True)
            continue
        arr = np.asarray(leaf)
        if not -arr.ndim <= ax < arr.ndim:
            raise ValueError(f"`{name}` gives axis {ax} for an argument leaf of shape {arr.shape}.")
        arr = np.moveaxis(arr, ax, 0)
        sizes.add(arr.shape[0])
        batched.append(True)
        stacked.append(arr)
    if not stacked:
        raise ValueError(f"`{name}` maps no argument: at least one argument needs a member axis.")
    if len(sizes) > 1:
        raise ValueError(f"`{name}`: the mapped arguments have different member-axis sizes {sorted(sizes)}.")
    return treedef, tuple(batched), stacked, shared, sizes.pop() if sizes else 0


def _queue_parser(full: tuple, axes: list, stacked: list):
    """Turn one queue item ``(init_params, *args)`` into its batched leaves."""
    defs = [jax.tree_util.tree_structure(a) for a in full]
    counts = [d.num_leaves for d in defs]
    starts = list(itertools.accumulate([0, *counts]))

    def parse(item, k):
        if not isinstance(item, tuple | list) or len(item) != len(full):
            raise ValueError(f"`queue` item {k} must be a tuple (init_params, *args) of {len(full)} "
                             f"entries, got {type(item).__name__}.")
        out, j = [], 0
        for i, entry in enumerate(item):
            pos_axes = axes[starts[i]:starts[i + 1]]
            if all(a is None for a in pos_axes):
                continue
            leaves, tdef = jax.tree_util.tree_flatten(entry)
            if tdef != defs[i]:
                raise ValueError(f"`queue` item {k}, entry {i}: structure {tdef} differs from the "
                                 f"batched argument's {defs[i]}.")
            for leaf, a in zip(leaves, pos_axes, strict=True):
                if a is None:
                    continue
                ref = stacked[j]
                arr = np.asarray(leaf, ref.dtype)
                if arr.shape != ref.shape[1:]:
                    raise ValueError(f"`queue` item {k}, entry {i}: a leaf has shape {arr.shape}, "
                                     f"expected {ref.shape[1:]} (one member, no member axis).")
                out.append(arr)
                j += 1
        return out

    return parse


def _check_untraced(tree, who: str) -> None:
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree)):
        raise TypeError(f"{who} cannot be traced or differentiated (it reads each segment's status on the "
                        "host): call it outside jit/grad/vmap; for derivatives use "
                        "jax.vmap(solver.run), whose implicit differentiation is exact.")


def _devices(mesh: Mesh | None, axis_name: str | None = None) -> list:
    if mesh is None:
        return [None]
    if not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    axis = axis_name or mesh.axis_names[0]
    if axis not in mesh.axis_names:
        raise ValueError(f"`axis_name` {axis!r} is not a mesh axis; mesh axes: {mesh.axis_names}.")
    if mesh.devices.ndim != 1:
        raise ValueError(f"`mesh` must be 1-D (members split over one axis), got axes {mesh.axis_names}.")
    devs = list(mesh.devices.flat)
    if any(d.process_index != jax.process_index() for d in devs):
        raise ValueError("`mesh` spans several processes; batch_run drives the devices of one process.")
    return devs


def _assemble(out_tree, leaves, mesh: Mesh | None, total: int):
    if mesh is not None and total % mesh.devices.size == 0:
        sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
        leaves = [x if getattr(x, "sharding", None) == sharding else jax.device_put(x, sharding)
                  for x in leaves]
    else:
        leaves = [x if isinstance(x, jax.Array) else jnp.asarray(x) for x in leaves]
    return jax.tree_util.tree_unflatten(out_tree, leaves)


def _check_int_arg(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    return int(value)


_PROBED: collections.OrderedDict = collections.OrderedDict()


def _signature(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((type(x), np.shape(x), jnp.result_type(x), getattr(x, "weak_type", False))
                          for x in leaves)


def _probe(spec: _Spec, dyn, lane0: list, shared: list) -> None:
    """Trace one member abstractly: a single solver ``run`` whose loop iterates ``update``.

    Remembered per member function and argument shapes, so that a later sweep of the same
    shapes traces nothing new.
    """
    key = (spec, _signature((dyn, lane0, shared)))
    if key in _PROBED:
        _PROBED.move_to_end(key)
        return
    _probe_trace(spec, dyn, lane0, shared)
    _PROBED[key] = True
    while len(_PROBED) > 256:
        _PROBED.popitem(last=False)


def _probe_trace(spec: _Spec, dyn, lane0: list, shared: list) -> None:

    def one(dyn, lane, shared):
        full = spec.full(lane, shared)
        solver, x0, args, kwargs = _capture(spec, dyn, full)
        _check_loop_solver(solver)
        carry = _lane_init(solver, x0, args, kwargs)
        return _replay(spec, dyn, full, _lane_result(solver, args, kwargs, carry))

    jax.eval_shape(one, dyn, lane0, shared)


def _solve(spec, dyn, members: _Members, shared, mesh, axis_name, buckets, segment_size, step_width):
    devices = _devices(mesh, axis_name)
    per_device = -(-members.n // len(devices))
    if members.n == 0 and buckets is None:
        raise ValueError("`buckets` is required when every member comes from `queue`.")
    sizes = _bucket_sizes(buckets, per_device)
    out_tree, leaves = _drive(spec, dyn, members, shared, mesh, sizes, segment_size, step_width)
    return _assemble(out_tree, leaves, mesh, members.next_id)


# --------------------------------------------------------------------------- public


def batch_run(
    solver,
    init_params,
    *args,
    in_axes: int | None | Sequence = 0,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    buckets: Sequence[int] | None = None,
    queue: Iterable | None = None,
    mesh: Mesh | None = None,
    step_width: int | None = None,
) -> OptStep:
    """Many solves of one solver, with finished members dropped from the batch as they stop.

    Returns what ``jax.vmap(solver.run, in_axes)(init_params, *args)`` returns (the
    stacked ``OptStep``: params and the whole state, each member's ``status`` and
    ``iter_num`` included), without making every member wait for the slowest. The
    solves run as compiled segments of at most ``segment_size`` ``update`` steps
    over a bucket of lanes, stepped in blocks of ``step_width`` lanes (a vmapped
    step per block; a lane that has stopped is frozen by a mask). Inside a segment
    the batch is compacted on the device: as soon as the lanes still running fit in
    fewer blocks, they are gathered into the first slots and only those blocks are
    stepped. Stopped lanes are written to a results buffer on the device; between
    segments the host reads the lanes' status and refills free slots from the
    members still waiting (the rest of the batch, then ``queue``). The segment
    program (one compiled step body) is compiled once per bucket size and reused by
    later calls with the same shapes (numeric solver options and data are traced). Each member's result
    equals its ``vmap`` result up to the rounding of a batched computation (same
    ``iter_num`` and ``status``): the lanes run the base ``run`` loop, with its
    non-finite guard, the look-back of solvers whose state describes the step's
    input and their ``_finish_run``.

    Not differentiable: the host reads the status between segments, so ``batch_run``
    raises ``TypeError`` when its inputs are traced (under ``jax.grad``, ``jit`` or
    ``vmap``). For derivatives use ``jax.vmap(solver.run)``, which differentiates each
    member implicitly.

    Args:
      solver: a jaxopt_lab solver with ``init_state`` and ``update`` (its ``run`` may
        adapt arguments first, as OSQP's does). A solver whose ``run`` does not iterate
        ``update`` (e.g. the closed-form ``EqualityConstrainedQP``) is run with
        ``jax.vmap(solver.run)``.
      init_params: initial points (a pytree), with a member axis where ``in_axes`` says.
      *args: positional arguments of ``solver.run`` after ``init_params``.
      in_axes: as in ``jax.vmap``: an int or None for every argument, or a tuple with
        one entry (int, None or a pytree prefix) per argument ``(init_params, *args)``.
        At least one argument must be mapped.
      segment_size: the most ``update`` steps in one compiled segment (each segment
        boundary costs a host round trip; while members wait to start, segments also
        end, on the device, as soon as an eighth of the slots can be refilled).
      buckets: the slot counts a device's bucket may have: the smallest one holding
        the device's share of the members (the largest when none does), rounded up to
        whole blocks of ``step_width``; default: the members per device.
      queue: optional iterable of further members, each a tuple ``(init_params, *args)``
        holding one member's values of the mapped arguments (no member axis; entries
        of unmapped arguments are ignored). They fill the slots of finished lanes
        (multi-start, or sweeps larger than memory); their results follow the batch's
        in the output, in queue order.
      mesh: optional 1-D ``jax.sharding.Mesh``; the members are split over its
        devices, each holding its own bucket; one SPMD program (``shard_map``,
        compiled once for all the devices) runs every device's segment at once, and
        the result is sharded over the mesh axis when the member count is a multiple
        of the device count.
      step_width: lanes stepped at once (a block). Default: 32 on CPU, where a block's
        working set stays in cache (a step of 32-lane blocks costs less than one step
        of the whole bucket) and the running lanes are compacted 32 at a time; the whole
        bucket on GPU and TPU.

    Returns:
      ``OptStep(params, state)`` with a leading member axis on every leaf (batch
      members first, then the queue's).

    Raises:
      ValueError: ``segment_size < 1``, ``step_width < 1``, ``in_axes`` not matching the
        arguments, bad ``buckets`` or ``queue`` items.
      TypeError: ``solver`` without ``init_state``/``update``, or traced inputs.

    References:
      Bradbury et al., "JAX: composable transformations of Python+NumPy programs",
      2018 (``vmap``, the batching rule this replaces for long loops).
    """
    if not callable(getattr(solver, "init_state", None)) or not callable(getattr(solver, "update", None)):
        raise TypeError(f"`solver` must have `init_state` and `update` methods (a jaxopt_lab iterative "
                        f"solver), got {type(solver).__name__}.")
    if not callable(getattr(solver, "run", None)):
        raise TypeError(f"`solver` must have a `run` method, got {type(solver).__name__}.")
    segment_size = _check_int_arg(segment_size, "segment_size")
    if step_width is not None:
        step_width = _check_int_arg(step_width, "step_width")
    full = (init_params, *args)
    _check_untraced((solver, full), "batch_run")
    axes = _axes_of(in_axes, full)
    treedef, batched, stacked, shared, n = _split(full, axes)
    static = jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(solver))
    spec = _Spec(treedef, batched, solver=ById(solver) if static else None)
    dyn = None if static else solver
    parse = _queue_parser(full, axes, stacked) if queue is not None else None
    members = _Members(stacked, queue, parse)
    lane0 = members.peek()
    if lane0 is None:
        raise ValueError("batch_run got no members: the mapped arguments are empty and so is `queue`.")
    try:
        _probe(spec, dyn, lane0, shared)
    except NotASolverRun as err:
        if "overrides" not in str(err):
            raise TypeError(f"batch_run: {err}") from None
        # The solver's run does not iterate update: plain vmap gives the same results.
        if queue is not None:
            raise TypeError(f"batch_run: {err}; `queue` is not supported for it.") from None
        return jax.jit(jax.vmap(solver.run, in_axes=tuple(_position_axes(in_axes, full))))(*full)
    # The checks run() makes before tracing, on the first member (concrete values).
    x_solver, x0, x_args, x_kwargs = _capture(spec, dyn, spec.full(lane0, shared))
    x_solver._check_run_args(x0, x_args, x_kwargs)
    if n:
        _check_finite_members(init_params, axes[:len(jax.tree_util.tree_leaves(init_params))], stacked)
    return _solve(spec, dyn, members, shared, mesh, None, buckets, segment_size, step_width)


def _position_axes(in_axes, full):
    if in_axes is None or isinstance(in_axes, int):
        return [in_axes] * len(full)
    return list(in_axes)


def _check_finite_members(init_params, axes, stacked) -> None:
    j = 0
    for a in axes:
        if a is None:
            continue
        x = stacked[j]
        j += 1
        if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1))
            raise ValueError(f"`init_params` has non-finite values for members {bad[:10].tolist()}.")


def sweep_solver_runs(fun: Callable, hparams, args: tuple, kwargs: dict, mesh: Mesh | None = None,
                      chunk_size: int | None = None, axis_name: str | None = None):
    """:func:`jaxopt_lab.sweep.run`'s batched path, or ``None`` when ``fun`` is not one solver run.

    A member function that calls one jaxopt_lab solver's ``run`` (with any computation
    before and after it) is run by the segment driver of :func:`batch_run`: the
    members are the lanes, ``args``/``kwargs`` are shared.

    Args:
      fun: the member function ``fun(h, *args, **kwargs)``.
      hparams: the members' hyperparameters (leading member axis on every leaf).
      args, kwargs: the shared arguments.
      mesh: optional 1-D mesh (members split over its devices, one bucket each).
      chunk_size: optional cap on the lanes run at once (over all devices).
      axis_name: the mesh axis of the members.

    Returns:
      ``fun``'s outputs stacked over the members, or ``None``.
    """
    full = (hparams, tuple(args), dict(kwargs))
    leaves, treedef = jax.tree_util.tree_flatten(full)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return None
    if mesh is not None and (not isinstance(mesh, Mesh) or mesh.devices.ndim != 1):
        return None  # several mesh axes: the plain sharded program
    n_h = len(jax.tree_util.tree_leaves(hparams))
    batched = tuple([True] * n_h + [False] * (len(leaves) - n_h))
    stacked = [np.asarray(x) for x in leaves[:n_h]]
    shared = leaves[n_h:]
    if not stacked or any(x.ndim == 0 for x in stacked) or len({x.shape[0] for x in stacked}) != 1:
        return None
    spec = _Spec(treedef, batched, ById(fun))
    try:
        _probe(spec, None, [x[0] for x in stacked], shared)
    except Exception:  # noqa: BLE001
        # Not one solver run the driver can take apart (no solver, two solves, a solve
        # inside an inner jit ...): the plain program runs it, and raises any real error.
        return None
    members = _Members(stacked, None, None)
    devices = _devices(mesh, axis_name)
    per_device = -(-members.n // len(devices))
    if chunk_size is not None:
        per_device = min(per_device, max(chunk_size // len(devices), 1))
    sizes = _bucket_sizes(None, per_device)
    out_tree, out = _drive(spec, None, members, shared, mesh, sizes, DEFAULT_SEGMENT_SIZE)
    return _assemble(out_tree, out, mesh, members.n)
