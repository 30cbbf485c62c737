"""Static checks in the test suite: ``ruff`` on the code and ``mypy`` on the typed modules.

``mypy`` checks the modules listed under ``[tool.mypy] files`` in ``pyproject.toml`` (the
solver core and the MGH problems; the rest of the package is not yet type-clean). It runs in
the default suite (``make test``): with mypy's incremental cache (``.mypy_cache``, kept
between runs) it takes about 2 s, the first run about 20 s of CPU.
``jaxopt_lab/py.typed`` must exist and be declared as package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else shutil.which(name)


def test_py_typed_is_shipped():
    assert os.path.exists(os.path.join(ROOT, "jaxopt_lab", "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        config = tomllib.load(fh)
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["jaxopt_lab"]


def test_ruff_clean():
    ruff = _tool("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    out = subprocess.run([ruff, "check", "jaxopt_lab", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_clean_on_typed_modules():
    mypy = _tool("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    out = subprocess.run([mypy, "--cache-dir", os.path.join(ROOT, ".mypy_cache")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Success" in out.stdout, out.stdout[-2000:]


def test_mypy_catches_a_type_error(tmp_path):
    """The type checker is live: a module with a wrong return type fails."""
    mypy = _tool("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    out = subprocess.run([mypy, "--no-incremental", "--config-file", os.devnull, str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "Incompatible return value type" in out.stdout, out.stdout
