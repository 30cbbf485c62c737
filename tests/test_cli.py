"""The `jaxopt-lab` command and the README's quick start."""

import json
import os
import re
import subprocess
import sys

import pytest

from jaxopt_lab import __version__, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out and "sweep" in out


def test_demo_rejects_bad_steps():
    with pytest.raises(ValueError, match="steps"):
        cli.main(["demo", "--steps", "0", "--out", os.devnull + "_unused"])


def test_readme_quick_start_runs():
    with open(os.path.join(ROOT, "README.md")) as fh:
        text = fh.read()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S).group(1)
    code += "\nassert int(sol.state.status) == jaxopt.Status.CONVERGED\n"
    code += "assert dw_rev.shape == dw_fwd.shape == (5,)\n"
    code += "import numpy as np; np.testing.assert_allclose(dw_rev, dw_fwd, rtol=1e-5)\n"
    code += "assert int(tols.state.iter_num[0]) < int(tols.state.iter_num[1])\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "jaxopt_lab.cli", "demo", "--out", str(tmp_path),
                        "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "hyperparameter_path.png").stat().st_size > 10_000
    assert all(p["inner_status"] == "CONVERGED" for p in result["path"])
    # The learned strength is at least as good as the best of the 64-point sweep (up to 1e-3).
    assert result["learned"]["val_loss"] <= result["sweep_best"]["val_loss"] + 1e-3
    assert result["learned"]["test_acc"] > 0.9
    assert "lambda" in r.stdout and "inner status" in r.stdout
