"""Hyperparameter sweeps: one compiled program over many members, chunked, sharded, resumable.

A sweep evaluates ``fun(member_hparams, *args, **kwargs)`` for every member of
``hparams`` (a pytree of arrays with a leading member axis) as ``jit(vmap(fun))``.
Numeric hyperparameters are traced, so a new grid of the same shape reuses the
compiled program (solvers keep float options as traced leaves, see
:mod:`jaxopt_lab.core.solver`).

Cost model. Under ``vmap`` a data-dependent ``lax.while_loop`` (every solver's
``run``) executes its body for the whole batch until the *slowest* lane of the
batch stops; finished lanes are frozen by masks, so their results and status are
exact, but they still pay for every extra iteration. The batch is one chunk on one
device, or one chunk's slice on each device of a mesh (each device runs its slice
with ``shard_map``, so a device stops when its own slowest lane stops). Wall time
is therefore about ``sum over chunks of max_iters(chunk slice) * cost(batched
iteration)``: sort or group members by expected difficulty (e.g. by
regularization strength) to make lanes of one chunk finish together, and use
``chunk_size`` to bound memory (and the number of lanes that wait). Against a
Python loop of jitted runs (one dispatch per member) a sweep wins when per-member
work is small, and gains little once each run is compute-bound (see
``benchmarks/results/sweep.md``). Keep solvers' ``implicit_diff=True`` (the
default) in a sweep: ``implicit_diff=False`` unrolls ``run`` into a masked scan of
``maxiter`` steps.

Modules: :mod:`~jaxopt_lab.sweep.spaces` (:func:`grid`, :func:`random`),
:mod:`~jaxopt_lab.sweep.placement` (:func:`mesh_for`, sharding, chunking),
:mod:`~jaxopt_lab.sweep.fingerprint` and :mod:`~jaxopt_lab.sweep.checkpoint`
(resumable sweeps), :mod:`~jaxopt_lab.sweep.runner` (:func:`run`, :func:`run_steps`),
and the ``jaxopt-lab sweep CONFIG.toml`` command in :mod:`~jaxopt_lab.sweep.config`
and :mod:`~jaxopt_lab.sweep.cli`.
"""

from jaxopt_lab.sweep.placement import mesh_for
from jaxopt_lab.sweep.runner import member_status, run, run_steps
from jaxopt_lab.sweep.spaces import grid, num_members, random

__all__ = ["grid", "mesh_for", "random", "run", "run_steps", "member_status", "num_members"]
