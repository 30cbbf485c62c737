"""Execute every notebook in ``notebooks/`` (jupytext percent format) with a Jupyter kernel.

A notebook fails its test when any cell raises (each notebook asserts its own numbers).
Notebooks that take more than ~20 s on two CPU cores are marked ``slow``; notebook 01
stays in the default suite.
"""

from __future__ import annotations

import os
import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
# Notebooks cheap enough for the default suite; every other one is marked slow.
FAST = {"01_quick_start.py", "06_sweeps.py"}


def _params():
    out = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        marks = [] if path.name in FAST else [pytest.mark.slow]
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


def execute(path: pathlib.Path, timeout: int = 600):
    """Run all cells of a jupytext notebook in a fresh kernel; return the executed notebook."""
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent.parent)}})
    client.execute()
    return nb


def test_notebooks_are_numbered_and_present():
    names = [p.name for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))]
    assert "01_quick_start.py" in names and "02_migrating_from_jaxopt.py" in names
    numbers = [int(n[:2]) for n in names]
    assert numbers == sorted(set(numbers)), names


@pytest.mark.parametrize("path", _params())
def test_notebook_executes(path):
    nb = execute(path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # Every notebook shows at least one real figure.
    images = [o for c in code_cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} produced no figure"
