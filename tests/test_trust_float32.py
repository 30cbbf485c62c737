"""float32 as a first-class default (issue 15, item 7).

``tests/conftest.py`` turns x64 on in this process, so every float32 check here runs
in a subprocess with ``JAX_ENABLE_X64=0``: a user's default precision.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_float32(code: str, timeout: int = 600) -> dict:
    """Run ``code`` in a fresh interpreter without x64; it prints one JSON line last."""
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ bilevel defaults

HYPERGRAD_F32 = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp
    from jaxopt_lab import bilevel
    from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel

    assert not jax.config.jax_enable_x64
    inst = quadratic_bilevel()
    x = jnp.linspace(-1.0, 1.0, 5)
    ref = inst.extra(x, inst.data)
    res = {"x_dtype": str(x.dtype), "ref": ref.tolist(), "runs": {}}
    for name, kw in [("cg", {}), ("gmres", {"adjoint_solver": "gmres"}),
                     ("forward", {"mode": "forward"}), ("gd", {"inner_solver": "gd"})]:
        h, d = bilevel.hypergradient(inst.problem, x, inst.y0, inst.data, **kw)
        res["runs"][name] = dict(h=h.tolist(), dtype=str(h.dtype), status=int(d.inner_status),
                                 residual=float(d.inner_residual), warning=bool(d.warning))
    h, d = bilevel.hypergradient(inst.problem, x, inst.y0, inst.data, method="penalty", sigma=1e-3)
    res["penalty"] = dict(h=h.tolist(), status=int(d.inner_status))
    phi = lambda xx: bilevel.hyperobjective(inst.problem, xx, inst.y0, inst.data)
    res["hyperobjective_grad"] = jax.grad(phi)(x).tolist()
    print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def hypergrad_f32():
    return run_float32(HYPERGRAD_F32)


@pytest.mark.parametrize("name", ["cg", "gmres", "forward", "gd"])
def test_float32_hypergradient_converges_and_matches_closed_form(hypergrad_f32, name):
    from jaxopt_lab import Status

    out = hypergrad_f32
    assert out["x_dtype"] == "float32"
    run = out["runs"][name]
    ref = np.asarray(out["ref"])
    assert run["dtype"] == "float32"
    # The default inner tolerance is reachable in float32 (it was 1e-10: MAX_ITER / LINESEARCH_FAILED).
    assert run["status"] == Status.CONVERGED, run
    assert not run["warning"]
    # eps**(2/3) * scale ~ 6e-5 on the inner gradient; A's smallest eigenvalue is 1.
    assert run["residual"] < 1e-4
    np.testing.assert_allclose(run["h"], ref, rtol=0, atol=2e-4 * np.max(np.abs(ref)))


def test_float32_hyperobjective_and_penalty(hypergrad_f32):
    from jaxopt_lab import Status

    ref = np.asarray(hypergrad_f32["ref"])
    np.testing.assert_allclose(hypergrad_f32["hyperobjective_grad"], ref, atol=2e-4 * np.max(np.abs(ref)))
    pen = hypergrad_f32["penalty"]
    assert pen["status"] == Status.CONVERGED
    # O(sigma) bias (constant ~1, see test_bilevel) plus float32 rounding divided by sigma.
    assert np.linalg.norm(np.asarray(pen["h"]) - ref) < 5e-3


def test_float64_defaults_keep_their_accuracy():
    """Under x64 (this process) the derived tolerances are at least as tight as 1e-10."""
    import jax.numpy as jnp

    from jaxopt_lab import Status, bilevel
    from jaxopt_lab.problems.bilevel_problems import quadratic_bilevel

    inst = quadratic_bilevel()
    x = jnp.linspace(-1.0, 1.0, 5)
    h, d = bilevel.hypergradient(inst.problem, x, inst.y0, inst.data)
    assert h.dtype == jnp.float64 and int(d.inner_status) == Status.CONVERGED
    assert float(d.inner_residual) < 1e-10
    np.testing.assert_allclose(h, inst.extra(x, inst.data), atol=1e-9, rtol=0)


# ------------------------------------------------------------------ README quick start


def readme_quick_start() -> str:
    """The python block under ``## Quick start`` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Quick start has no python block"
    return match.group(1)


QUICK_START_CHECKS = textwrap.dedent("""
    import json
    assert not jax.config.jax_enable_x64
    res = dict(
        dtype=str(sol.params.dtype), status=int(sol.state.status), error=float(sol.state.error),
        tol=float(solver.tol), params=sol.params.tolist(),
        grad0=float(jnp.linalg.norm(jax.grad(ridge)(jnp.zeros(5), 0.1, X, y))), X=X.tolist(), y=y.tolist(),
        dw_rev=dw_rev.tolist(), dw_fwd=dw_fwd.tolist(),
        sweep_status=sweep.state.status.tolist(), sweep_params=sweep.params.tolist(),
        tols_status=tols.state.status.tolist(), tols_error=tols.state.error.tolist(),
    )
    print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def quick_start_f32():
    return run_float32(readme_quick_start() + QUICK_START_CHECKS)


def _ridge_closed_form(X, y, lam):
    n, d = X.shape
    A = X.T @ X / n + lam * np.eye(d)
    w = np.linalg.solve(A, X.T @ y / n)
    return w, -np.linalg.solve(A, w)


def test_readme_quick_start_float32_statuses(quick_start_f32):
    from jaxopt_lab import Status

    out = quick_start_f32
    assert out["dtype"] == "float32"
    assert out["status"] == Status.CONVERGED and out["error"] <= out["tol"]
    # The tolerance is reachable in float32: well above the gradient's rounding floor
    # (~eps * ||grad f(w0)||, the size of its terms). With tol=1e-8 (~0.17 eps * scale)
    # the statuses depended on XLA's threading: LINESEARCH_FAILED lanes or not.
    assert out["tol"] >= 10 * np.finfo(np.float32).eps * out["grad0"]
    # Every lane of the regularization sweep and of the traced-tolerance batch converges
    # (tol=1e-8 sat at float32's rounding floor: lanes ended LINESEARCH_FAILED).
    assert out["sweep_status"] == [Status.CONVERGED] * 32
    assert out["tols_status"] == [Status.CONVERGED] * 2
    assert out["tols_error"][0] <= 1e-3 and out["tols_error"][1] <= 1e-6


def test_readme_quick_start_float32_derivatives(quick_start_f32):
    out = quick_start_f32
    X, y = np.asarray(out["X"], np.float64), np.asarray(out["y"], np.float64)
    w, dw = _ridge_closed_form(X, y, 0.1)
    np.testing.assert_allclose(out["params"], w, atol=1e-5 * np.max(np.abs(w)))
    # dw/dlam = -(X^T X / n + lam I)^{-1} w to float32 accuracy, in both modes.
    for key in ("dw_rev", "dw_fwd"):
        np.testing.assert_allclose(out[key], dw, rtol=0, atol=1e-4 * np.max(np.abs(dw)))
    for lam, w_lane in zip(np.logspace(-3, 1, 32), out["sweep_params"], strict=True):
        w_ref, _ = _ridge_closed_form(X, y, lam)
        np.testing.assert_allclose(w_lane, w_ref, atol=1e-4 * max(1.0, np.max(np.abs(w_ref))))


# ------------------------------------------------------------------ notebooks 01, 02, 05

FLOAT32_NOTEBOOKS = ["01_quick_start.py", "02_migrating_from_jaxopt.py", "05_second_order.py"]


@pytest.mark.parametrize("name", FLOAT32_NOTEBOOKS)
def test_notebook_does_not_switch_on_x64(name):
    """Users run in float32: the quick-start notebooks must not rely on float64."""
    source = (ROOT / "notebooks" / name).read_text()
    assert "jax_enable_x64" not in source and "jnp.float64" not in source


X64_OFF_CHECK = """\
import jax as _jax
import jax.numpy as _jnp
assert not _jax.config.jax_enable_x64
assert _jnp.zeros(()).dtype == _jnp.float32
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOAT32_NOTEBOOKS)
def test_notebook_runs_in_float32(name, monkeypatch):
    """The notebook in a Jupyter kernel with JAX_ENABLE_X64=0, plus a last cell checking
    that the kernel is still in float32. Each notebook asserts its own numbers
    (statuses CONVERGED where the text says so, closed forms to float32 accuracy)."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")

    monkeypatch.setenv("JAX_ENABLE_X64", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(ROOT / "notebooks" / name)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(X64_OFF_CHECK))
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs)
    assert printed and not re.search(r"\bnan\b", printed.lower())
