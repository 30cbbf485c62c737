"""Hyperparameter sweeps: one compiled program over many members, chunked, sharded, resumable."""

from jaxopt_lab.sweep.run import grid, member_status, mesh_for, num_members, random, run, run_steps

__all__ = ["grid", "mesh_for", "random", "run", "run_steps", "member_status", "num_members"]
