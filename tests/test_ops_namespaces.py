"""``jaxopt_lab.projection`` and ``jaxopt_lab.prox``: jaxopt's namespaces, kept across the ops/ split.

The projections that run an iterative solver moved to ``ops/projection_solvers.py``; the
closed forms stayed in ``ops/projection.py``, which re-exports the others.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

import pytest

import jaxopt_lab
from jaxopt_lab.ops import projection, projection_solvers

OPS = pathlib.Path(jaxopt_lab.__file__).parent / "ops"

# The public functions of the two modules before the split.
PROJECTION_NAMES = {
    "is_empty_set", "kl_projection_birkhoff", "kl_projection_transport", "projection_affine_set",
    "projection_birkhoff", "projection_box", "projection_box_section", "projection_halfspace",
    "projection_hypercube", "projection_hyperplane", "projection_l1_ball", "projection_l1_sphere",
    "projection_l2_ball", "projection_l2_sphere", "projection_linf_ball", "projection_non_negative",
    "projection_polyhedron", "projection_simplex", "projection_sparse_simplex", "projection_transport",
}
PROX_NAMES = {
    "make_prox_from_projection", "prox_box", "prox_elastic_net", "prox_group_lasso", "prox_lasso",
    "prox_non_negative_lasso", "prox_non_negative_ridge", "prox_none", "prox_nuclear_norm", "prox_ridge",
}
# Ours beyond jaxopt 0.8.5, each with the reason it is here.
EXTRAS = {
    "projection": {"is_empty_set": "empty-set test on traced hyperparameters"},
    "prox": {"prox_box": "indicator of a box", "prox_nuclear_norm": "singular-value soft threshold"},
}
SOLVER_BASED = {"kl_projection_birkhoff", "kl_projection_transport", "projection_birkhoff",
                "projection_polyhedron", "projection_transport"}


def _functions(module) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_") and inspect.isfunction(getattr(module, n))}


@pytest.mark.parametrize("name,names", [("projection", PROJECTION_NAMES), ("prox", PROX_NAMES)])
def test_public_names_unchanged_and_cover_jaxopt(name, names):
    ours = importlib.import_module(f"jaxopt_lab.{name}")
    assert ours is getattr(jaxopt_lab, name) is getattr(jaxopt_lab.ops, name)
    assert set(ours.__all__) == names
    assert names <= _functions(ours)  # nothing public lost
    ref = importlib.import_module(f"jaxopt.{name}")
    theirs = {n for n in _functions(ref) if getattr(ref, n).__module__.startswith("jaxopt")}
    assert theirs == names - set(EXTRAS[name]), (theirs ^ (names - set(EXTRAS[name])))
    for n in names:
        assert (getattr(ours, n).__doc__ or "").strip(), n


def test_solver_based_projections_live_apart_and_are_reexported():
    assert set(projection_solvers.__all__) == SOLVER_BASED
    for n in SOLVER_BASED:
        assert getattr(projection, n) is getattr(projection_solvers, n)
        assert getattr(projection, n).__module__ == "jaxopt_lab.ops.projection_solvers"
    for n in PROJECTION_NAMES - SOLVER_BASED:
        assert getattr(projection, n).__module__ == "jaxopt_lab.ops.projection", n


def _imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_closed_forms_run_no_solver_and_ops_imports_only_core_and_linalg():
    closed = (OPS / "projection.py").read_text()
    assert "custom_root" not in closed and "while_loop" not in closed
    assert not any(m.startswith("jaxopt_lab.linalg") for m in _imports(OPS / "projection.py"))
    for path in OPS.glob("*.py"):
        for m in _imports(path):
            if m.startswith("jaxopt_lab."):
                assert m.split(".")[1] in ("core", "linalg", "ops"), f"{path.name} imports {m}"
    # The solver-based module does not import the closed-form one (which imports it).
    assert not any(m.startswith("jaxopt_lab.ops.projection") and "solvers" not in m
                   for m in _imports(OPS / "projection_solvers.py"))
