"""Imports only go downward: the layer rules of the package, read from the source with ``ast``.

The floors, bottom up (see the "Layers" section of the design notes):

- ``core/types.py``, ``core/tree_util.py``, ``core/checks.py``, ``core/control.py``: import
  nothing of the package above them (only each other);
- ``linalg/``: those four core modules only;
- ``core/loop.py``, ``core/solver.py``, ``core/adjoint.py`` (and ``core/__init__``): core and linalg;
- ``ops/``: core and linalg;
- ``curvature/``, ``zeroth_order/``, ``transforms/``: the floors below, each other's public modules
  (curvature below zeroth-order below transforms), never ``core.solver``;
- ``solvers/<family>/``: core, linalg, ops, the oracles, its own folder and ``solvers/linesearch``
  (the shared floor of the line searches, which imports no family); never bilevel, transforms,
  sweep, never the ``solvers`` aggregator. Families are siblings: one imports another only along an
  edge of ``FAMILY_EDGES`` (a family built on top of another one's public solvers), never into
  its private ``_x.py``;
- ``bilevel/``: everything below, solvers included; ``problems/`` (test problems) up to bilevel;
- ``sweep/``: everything below it; the jobs (``cli.py``, ``demo.py``) and the compatibility facade
  (``jaxopt_lab/__init__``, ``base.py``, ``sweep_cli.py``) anything.

A module takes underscore names and underscore modules only from its own package (the facade,
which re-exports public names wherever they are defined, excepted). And the module
graph (every ``import`` statement, function-level ones included, ``if TYPE_CHECKING:`` blocks
excluded) has no cycle. An edge goes to the module an import names: ``from pkg import mod`` is an
edge to ``pkg.mod``, ``from pkg import name`` an edge to ``pkg`` (its ``__init__``); the parent
packages Python imports on the way are not edges (every module would otherwise depend on the
top-level ``__init__``, which imports everything).

Violations in code that is still being moved are listed in ``KNOWN_EXCEPTIONS`` with the issue
that removes them; an entry that no longer occurs fails the test, so the table only shrinks.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "jaxopt_lab"
ROOT = "jaxopt_lab"

# (importing module, imported module) -> why it is still there. Issue 16 is the restructure.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    # The sweep CLI resolves user-given solver / transform names and the version string in the
    # top-level namespace (the facade above it); it could use jaxopt_lab.solvers/.transforms.
    ("jaxopt_lab.sweep.cli", "jaxopt_lab"): "issue 16: version string from the facade",
    ("jaxopt_lab.sweep.options", "jaxopt_lab"): "issue 16: solver/transform names looked up in the facade",
    ("jaxopt_lab.sweep.outputs", "jaxopt_lab"): "issue 16: version string from the facade",
}

# Layer of each top-level subpackage / module (a new one must be placed here).
_LAYER_OF_HEAD = {
    "linalg": "linalg", "ops": "ops", "curvature": "curvature", "zeroth_order": "zeroth_order",
    "transforms": "transforms", "solvers": "solvers", "bilevel": "bilevel", "problems": "problems",
    "sweep": "sweep", "cli": "jobs", "demo": "jobs", "base": "facade", "sweep_cli": "facade",
}
_CORE_FLOOR = {f"{ROOT}.core.types", f"{ROOT}.core.tree_util", f"{ROOT}.core.checks", f"{ROOT}.core.control"}

# Solver families that may import another family's public modules, and why. Every other import
# between two folders of ``solvers/`` is sideways (``linesearch`` is the floor every family uses).
FAMILY_EDGES: dict[tuple[str, str], str] = {
    # The augmented Lagrangian and ADMM solve their unconstrained subproblems with an inner
    # solver, L-BFGS by default: constrained solvers are built on top of the unconstrained ones.
    ("constrained", "quasi_newton"): "default inner solver of the constrained solvers",
}
SHARED_FAMILIES = {"linesearch"}

_BELOW_ORACLES = {"core_floor", "linalg", "core", "ops"}
_LIBRARY = _BELOW_ORACLES | {"curvature", "zeroth_order", "transforms", "solvers", "bilevel"}
ALLOWED: dict[str, set[str]] = {
    "core_floor": {"core_floor"},
    "linalg": {"core_floor", "linalg"},
    "core": {"core_floor", "linalg", "core"},
    "ops": {"core_floor", "linalg", "core", "ops"},
    "curvature": _BELOW_ORACLES | {"curvature"},
    "zeroth_order": _BELOW_ORACLES | {"curvature", "zeroth_order"},
    "transforms": _BELOW_ORACLES | {"curvature", "zeroth_order", "transforms"},
    "solvers": _BELOW_ORACLES | {"curvature", "zeroth_order", "solvers"},
    "bilevel": _LIBRARY,
    "problems": _LIBRARY | {"problems"},
    "sweep": _LIBRARY | {"problems", "sweep"},
    "jobs": _LIBRARY | {"problems", "sweep", "jobs", "facade"},
    "facade": _LIBRARY | {"problems", "sweep", "jobs", "facade"},
}
# Modules some layers must not import even though their floor is allowed.
FORBIDDEN_MODULES = {
    "curvature": {f"{ROOT}.core.solver"},
    "zeroth_order": {f"{ROOT}.core.solver"},
    "transforms": {f"{ROOT}.core.solver"},
}


@dataclasses.dataclass(frozen=True)
class Import:
    """One imported module: ``names`` taken from it (empty for ``import m``), where, and whether
    it sits under ``if TYPE_CHECKING:``."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int
    type_checking: bool


def module_name(path: pathlib.Path) -> str:
    """Dotted module name of a file of the package (``__init__`` -> the package)."""
    parts = (ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: pathlib.Path, modules) -> list[Import]:
    """The package's modules imported by ``name`` (every statement, function-level ones too)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]
    out: list[Import] = []

    def visit(node, type_checking):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, type_checking)
            else:
                visit_stmt(child, type_checking)

    def visit_stmt(stmt, type_checking):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    out.append(Import(name, alias.name, (), stmt.lineno, type_checking))
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                base = package.split(".")[: len(package.split(".")) - (stmt.level - 1)]
                origin = ".".join(base + ([stmt.module] if stmt.module else []))
            else:
                origin = stmt.module or ""
            if origin == ROOT or origin.startswith(ROOT + "."):
                plain = []
                for alias in stmt.names:
                    sub = f"{origin}.{alias.name}"
                    if sub in modules:
                        out.append(Import(name, sub, (), stmt.lineno, type_checking))
                    else:
                        plain.append(alias.name)
                if plain:
                    out.append(Import(name, origin, tuple(plain), stmt.lineno, type_checking))
        visit(stmt, type_checking)

    visit(ast.parse(path.read_text(), str(path)), False)
    return out


def layer(module: str) -> str | None:
    """The layer of a module of the package (``None``: not placed yet)."""
    if module == ROOT:
        return "facade"
    if module in _CORE_FLOOR:
        return "core_floor"
    head = module.split(".")[1]
    return "core" if head == "core" else _LAYER_OF_HEAD.get(head)


def _package(module: str, modules) -> str:
    path = modules.get(module)
    return module if path is not None and path.name == "__init__.py" else module.rsplit(".", 1)[0]


def violation(imp: Import, modules) -> str | None:
    """Why ``imp`` breaks a layer rule, or ``None``."""
    src, dst = imp.source, imp.target
    if dst not in modules:
        return f"imports {dst}, which is no module of the package (an alias path: import its new home)"
    src_layer, dst_layer = layer(src), layer(dst)
    if dst_layer not in ALLOWED[src_layer]:
        return f"{src_layer} imports {dst_layer} ({dst}), a layer it may not import"
    if dst in FORBIDDEN_MODULES.get(src_layer, ()):
        return f"{src_layer} imports {dst}"
    src_pkg, dst_pkg = _package(src, modules), _package(dst, modules)
    # The facade re-exports public names wherever they live, private modules included.
    if dst.rsplit(".", 1)[-1].startswith("_") and dst_pkg != src_pkg and src_layer != "facade":
        return f"imports {dst}, a private module of another package"
    private = [n for n in imp.names if n.startswith("_") and not n.endswith("__")]
    if private and dst_pkg != src_pkg and dst != src_pkg:
        return f"imports private names {private} of {dst} (another package)"
    if src_layer == "solvers" and dst_layer == "solvers":
        src_family = src.split(".")[2] if src.count(".") >= 2 else None
        dst_family = dst.split(".")[2] if dst.count(".") >= 2 else None
        if src_family is not None and dst_family is None:
            return f"a solver family imports the solvers aggregator ({dst})"
        if src_family == "linesearch" and dst_family not in (None, "linesearch"):
            return f"the line searches (shared by every family) import the {dst_family} family"
        if (src_family is not None and dst_family not in (None, src_family)
                and dst_family not in SHARED_FAMILIES and (src_family, dst_family) not in FAMILY_EDGES):
            return (f"solver family {src_family} imports family {dst_family} sideways ({dst}): share the "
                    "code one floor down (core, linalg, ops) or list the edge in FAMILY_EDGES")
    return None


def _all_imports():
    modules = _modules()
    return modules, [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def violations() -> dict[tuple[str, str], list[str]]:
    """``(source, target) -> [reason (line)]`` for every import breaking a rule."""
    modules, imports = _all_imports()
    out: dict[tuple[str, str], list[str]] = {}
    for imp in imports:
        why = violation(imp, modules)
        if why:
            where = modules[imp.source].relative_to(PACKAGE_DIR.parent)
            out.setdefault((imp.source, imp.target), []).append(f"{why} ({where}:{imp.line})")
    return out


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in _modules() if layer(m) is None)
    assert not unplaced, f"{unplaced}: place the new package in _LAYER_OF_HEAD of tests/test_layers.py"


def test_imports_follow_the_layers():
    found = violations()
    new = {k: v for k, v in found.items() if k not in KNOWN_EXCEPTIONS}
    assert not new, "imports against the layer rules:\n" + "\n".join(
        f"  {s} -> {t}: {'; '.join(why)}" for (s, t), why in sorted(new.items()))


def test_known_exceptions_still_occur():
    found = violations()
    stale = sorted(k for k in KNOWN_EXCEPTIONS if k not in found)
    assert not stale, f"fixed, remove from KNOWN_EXCEPTIONS in tests/test_layers.py: {stale}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-loop): Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v):
        # Iterative DFS (the graph is small, but recursion depth should not depend on it).
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in edges.get(node, ()):
                        out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def module_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``TYPE_CHECKING`` imports left out)."""
    modules, imports = _all_imports()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if not imp.type_checking and imp.target in modules and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    return edges


def test_module_graph_has_no_cycle():
    cycles = _cycles(module_graph())
    assert not cycles, f"import cycles between modules: {cycles}"


# ----------------------------------------------------------------- the checker itself


def _check(source, target, names=()):
    return violation(Import(source, target, tuple(names), 1, False), _modules())


@pytest.mark.parametrize("source,target,names", [
    ("jaxopt_lab.core.types", "jaxopt_lab.core.solver", ()),
    ("jaxopt_lab.ops.prox", "jaxopt_lab.solvers.quasi_newton.lbfgs", ()),
    ("jaxopt_lab.transforms.sophia", "jaxopt_lab.core.solver", ()),
    ("jaxopt_lab.curvature.products", "jaxopt_lab.bilevel.problem", ()),
    ("jaxopt_lab.solvers.quasi_newton.lbfgs", "jaxopt_lab.transforms.sophia", ()),
    ("jaxopt_lab.linalg.linear_solve", "jaxopt_lab.core.loop", ()),
    ("jaxopt_lab.solvers.quasi_newton.lbfgs", "jaxopt_lab.solvers.first_order._step", ()),
    ("jaxopt_lab.solvers.quasi_newton.lbfgs", "jaxopt_lab.solvers", ()),
    ("jaxopt_lab.solvers.linesearch.functions", "jaxopt_lab.solvers.quasi_newton.lbfgs", ()),
    ("jaxopt_lab.bilevel.maid", "jaxopt_lab.sweep.placement", ()),
    ("jaxopt_lab.bilevel.maid", "jaxopt_lab.core.solver", ("_Static",)),
    ("jaxopt_lab.sweep.placement", "jaxopt_lab.cli", ()),
    ("jaxopt_lab.ops.prox", "jaxopt_lab.solvers.lbfgs", ()),  # an alias path, not a file
    # Upward: the floors below the solvers, and the solvers into what is built on them.
    ("jaxopt_lab.core.solver", "jaxopt_lab.solvers.quasi_newton.lbfgs", ()),
    ("jaxopt_lab.linalg.implicit_diff", "jaxopt_lab.solvers.qp.eq_qp", ()),
    ("jaxopt_lab.ops.projection_solvers", "jaxopt_lab.solvers.linesearch.functions", ()),
    ("jaxopt_lab.solvers.newton.newton_cg", "jaxopt_lab.bilevel.hypergradient", ()),
    ("jaxopt_lab.solvers.qp.osqp", "jaxopt_lab.sweep.batch", ()),
    # Sideways: one solver family into another (public modules too).
    ("jaxopt_lab.solvers.newton.newton_cg", "jaxopt_lab.solvers.quasi_newton.lbfgs", ()),
    ("jaxopt_lab.solvers.newton.newton_cg", "jaxopt_lab.solvers.quasi_newton", ()),
    ("jaxopt_lab.solvers.least_squares.gauss_newton", "jaxopt_lab.solvers.newton._step", ()),
    ("jaxopt_lab.solvers.quasi_newton.lbfgs", "jaxopt_lab.solvers.constrained.admm", ()),
    ("jaxopt_lab.solvers.constrained.admm", "jaxopt_lab.solvers.quasi_newton._step", ()),
])
def test_checker_flags_a_bad_import(source, target, names):
    assert _check(source, target, names) is not None


@pytest.mark.parametrize("source,target", [
    ("jaxopt_lab.core.loop", "jaxopt_lab.linalg.implicit_diff"),
    ("jaxopt_lab.ops.projection", "jaxopt_lab.linalg.linear_solve"),
    ("jaxopt_lab.solvers.quasi_newton.lbfgs", "jaxopt_lab.solvers.linesearch.functions"),
    ("jaxopt_lab.solvers.first_order.block_cd", "jaxopt_lab.solvers.first_order._step"),
    ("jaxopt_lab.bilevel.hypergradient", "jaxopt_lab.solvers.quasi_newton.lbfgs"),
    ("jaxopt_lab.sweep.placement", "jaxopt_lab.solvers.quasi_newton.lbfgs"),
    ("jaxopt_lab.solvers.newton.newton_cg", "jaxopt_lab.solvers.linesearch.functions"),
    ("jaxopt_lab.solvers.newton.adaptive_regularized_newton", "jaxopt_lab.solvers.newton.regularized_newton"),
    ("jaxopt_lab.solvers.constrained.admm", "jaxopt_lab.solvers.quasi_newton.lbfgs"),  # FAMILY_EDGES
])
def test_checker_accepts_a_downward_import(source, target):
    assert _check(source, target) is None


def test_family_edges_still_occur():
    """An edge of ``FAMILY_EDGES`` that no import uses any more is removed (the table only shrinks)."""
    _, imports = _all_imports()
    used = {(imp.source.split(".")[2], imp.target.split(".")[2]) for imp in imports
            if imp.source.count(".") >= 2 and imp.target.count(".") >= 2
            and layer(imp.source) == layer(imp.target) == "solvers"}
    stale = sorted(edge for edge in FAMILY_EDGES if edge not in used)
    assert not stale, f"no import uses these edges any more, remove them from FAMILY_EDGES: {stale}"


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_not_edges(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from jaxopt_lab.core import solver\nimport jaxopt_lab.core.types\n")
    found = imports_of("jaxopt_lab.ops.mod", path, _modules())
    assert [(i.target, i.type_checking) for i in found] == [("jaxopt_lab.core.solver", True),
                                                            ("jaxopt_lab.core.types", False)]
