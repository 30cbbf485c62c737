"""Documentation checks: every public name has a usable docstring; the site builds strictly.

Public names are everything in ``jaxopt_lab.__all__`` and, for each public submodule
(no path component starting with ``_``), the names in its ``__all__`` or, without one,
the functions and classes it defines whose names do not start with ``_``.

A function needs a docstring with an ``Args:`` section (when it takes parameters) and
a ``Returns:`` (or ``Yields:``) section (unless annotated ``-> None``); a class needs
``Args:`` or ``Attributes:``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import types

import pytest

import jaxopt_lab

ROOT = pathlib.Path(__file__).resolve().parents[1]

_SECTION = re.compile(r"^\s*(\w+(?: \w+)?):\s*$", re.MULTILINE)
_ARGS = {"Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments"}
_RETURNS = {"Returns", "Return", "Yields"}
_ATTRIBUTES = {"Attributes"}


def public_modules() -> list[types.ModuleType]:
    """The package and every submodule whose dotted path has no ``_``-prefixed part."""
    mods = [jaxopt_lab]
    for info in pkgutil.walk_packages(jaxopt_lab.__path__, "jaxopt_lab."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        mods.append(importlib.import_module(info.name))
    return mods


def public_names(module: types.ModuleType) -> list[tuple[str, object]]:
    """(qualified name, object) for the documented surface of one module."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n, obj in vars(module).items()
                 if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                 and getattr(obj, "__module__", None) == module.__name__]
    out = []
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue  # covered as a module of its own
        if not (inspect.isfunction(obj) or inspect.isclass(obj) or callable(obj)):
            continue  # data (tuples, dicts, constants) carries no docstring of its own
        out.append((f"{module.__name__}.{name}", obj))
    return out


def all_public_objects() -> dict[str, object]:
    """Every public object once, keyed by where it is defined (re-exports collapse)."""
    seen: dict[str, object] = {}
    for module in public_modules():
        for qualname, obj in public_names(module):
            home = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', qualname)}"
            key = home if home.startswith("jaxopt_lab") else qualname
            seen.setdefault(key, obj)
    return seen


def _takes_parameters(obj) -> bool:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return True
    return any(name not in ("self", "cls") for name in sig.parameters)


def _returns_none(obj) -> bool:
    try:
        ann = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return False
    return ann is None or ann == "None"


def docstring_problems(obj) -> list[str]:
    """What is missing from ``obj``'s docstring (empty when it is fine)."""
    doc = inspect.getdoc(obj) if inspect.isclass(obj) else obj.__doc__
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")  # not inherited from a base class
    if not doc or not doc.strip():
        return ["no docstring"]
    sections = set(_SECTION.findall(inspect.cleandoc(doc)))
    missing = []
    if inspect.isclass(obj):
        fields = getattr(obj, "_fields", None)
        if fields == () or (fields is None and not _takes_parameters(obj)):
            return []
        if not sections & (_ARGS | _ATTRIBUTES):
            missing.append("Args/Attributes")
        return missing
    if _takes_parameters(obj) and not sections & _ARGS:
        missing.append("Args")
    if not _returns_none(obj) and not sections & _RETURNS:
        missing.append("Returns")
    return missing


def undocumented() -> dict[str, list[str]]:
    """Public names whose docstrings lack a required section, with what is missing."""
    out = {}
    for name, obj in sorted(all_public_objects().items()):
        problems = docstring_problems(obj)
        if problems:
            out[name] = problems
    return out


# --- the checker itself can fail --------------------------------------------------------

def _good(x: int, y: int = 2) -> int:
    """Add.

    Args:
      x: first.
      y: second.

    Returns:
      The sum.
    """
    return x + y


def _no_returns(x):
    """Add one.

    Args:
      x: a number.
    """
    return x + 1


def _no_args(x):
    """Add one.

    Returns:
      x + 1.
    """
    return x + 1


class _GoodState:
    """A state.

    Attributes:
      count: steps taken.
    """

    def __init__(self, count):
        self.count = count


class _BareClass:
    """A class with no sections."""

    def __init__(self, a):
        self.a = a


def test_checker_flags_missing_sections():
    assert docstring_problems(_good) == []
    assert docstring_problems(_no_returns) == ["Returns"]
    assert docstring_problems(_no_args) == ["Args"]
    assert docstring_problems(lambda x: x) == ["no docstring"]
    assert docstring_problems(_GoodState) == []
    assert docstring_problems(_BareClass) == ["Args/Attributes"]


def test_public_surface_is_collected():
    objs = all_public_objects()
    names = {n.rsplit(".", 1)[-1] for n in objs}
    # A few names from different layers; the walk must find them all.
    for expected in ("LBFGS", "Status", "custom_root", "solve_cg", "hvp", "BilevelProblem",
                     "hypergradient", "rge"):
        assert expected in names, expected
    assert len(objs) > 100


# Public names in other engineers' modules that were still undocumented when the docs
# issue closed. The test xfails (non-strict) while only these are missing, listing them;
# any new undocumented name fails it. Remove names from here as they get docstrings.
_KNOWN_UNDOCUMENTED: frozenset[str] = frozenset()


def test_every_public_name_has_args_and_returns():
    bad = undocumented()
    report = "\n".join(f"  {name}: missing {', '.join(what)}" for name, what in bad.items())
    new = sorted(set(bad) - _KNOWN_UNDOCUMENTED)
    assert not new, f"{len(new)} public names lack docstring sections:\n{report}"
    if bad:
        pytest.xfail(f"{len(bad)} known undocumented public names:\n{report}")


def test_api_reference_covers_every_public_module():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        gen = importlib.import_module("gen_ref_pages")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    pages = {mod for mod, _ in gen.reference_pages()}
    assert {m.__name__ for m in public_modules()} <= pages


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_mkdocs_build_strict(tmp_path):
    """``mkdocs build --strict`` (broken links, missing references, warnings fail it)."""
    mkdocs = shutil.which("mkdocs", path=str(pathlib.Path(sys.executable).parent)) or "mkdocs"
    # Notebooks are executed by tests/test_notebooks.py; here the build renders them unexecuted.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", DOCS_EXECUTE_NOTEBOOKS="false",
               NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "reference" / "jaxopt_lab" / "solvers" / "lbfgs" / "index.html").exists()
