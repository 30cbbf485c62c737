"""The ``jaxopt_lab.sweep`` package: public names kept, old import paths kept, imports only go down."""

import ast
import dataclasses
import importlib
import inspect
import pathlib

import jax
import pytest

import jaxopt_lab
from jaxopt_lab import sweep, sweep_cli
from jaxopt_lab.sweep import cli as sweep_cli_module
from jaxopt_lab.sweep import config

PACKAGE = pathlib.Path(jaxopt_lab.__file__).parent / "sweep"
# The public names of ``jaxopt_lab.sweep`` and ``jaxopt_lab.sweep_cli`` before the package split.
SWEEP_NAMES = {"grid", "member_status", "mesh_for", "num_members", "random", "run", "run_steps"}
CLI_NAMES = {"ConfigError", "checkpoint_dir", "config_hash", "load_config", "main", "run_config",
             "validate_config"}
# A module may import only the modules listed before it.
ORDER = ["spaces", "placement", "fingerprint", "checkpoint", "batch", "runner", "options", "config",
         "outputs", "cli"]


def test_public_names_unchanged():
    assert set(sweep.__all__) == SWEEP_NAMES
    for name in SWEEP_NAMES:
        obj = getattr(sweep, name)
        assert inspect.isfunction(obj) and obj.__module__.startswith("jaxopt_lab.sweep."), name
    assert jaxopt_lab.sweep is sweep
    assert sweep.run.__module__ == "jaxopt_lab.sweep.runner"


def test_no_submodule_shares_a_name_with_a_public_function():
    # ``jaxopt_lab.sweep.run`` is the function; the module that defines it is ``runner``.
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert not modules & set(sweep.__all__), modules & set(sweep.__all__)
    assert importlib.import_module("jaxopt_lab.sweep.runner").run is sweep.run


def test_sweep_cli_is_a_compatible_reexport():
    assert CLI_NAMES <= set(sweep_cli.__all__)
    for name in sweep_cli.__all__:
        assert getattr(sweep_cli, name) is getattr(sweep_cli_module, name), name
    assert "compatibility" in sweep_cli.__doc__
    from jaxopt_lab import cli

    assert cli.build_parser().parse_args(["sweep", "x.toml"]).config == "x.toml"


def test_every_module_has_a_docstring_and_imports_only_downward():
    names = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert set(names) <= set(ORDER), names
    for name in names:
        mod = importlib.import_module(f"jaxopt_lab.sweep.{name}")
        assert (mod.__doc__ or "").strip(), name
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxopt_lab.sweep."):
                dep = node.module.split(".")[2]
                assert ORDER.index(dep) < ORDER.index(name), f"{name} imports {dep}"


def _raw(**sweep_table):
    return {"problem": {"name": "logreg", "options": {"n_samples": 40, "n_features": 4}},
            "solver": {"name": "LBFGS", "options": {"maxiter": 5}},
            "grid": {"l2": [0.1, 1.0]}, "sweep": {"checkpoint": False, **sweep_table}}


def test_config_is_a_frozen_dataclass():
    cfg = config.validate_config(_raw(chunk_size=2))
    assert isinstance(cfg, config.SweepConfig) and dataclasses.is_dataclass(cfg)
    assert cfg.chunk_size == 2 and cfg.grid == {"l2": [0.1, 1.0]} and cfg.kind == "solver"
    assert cfg["chunk_size"] == 2  # item access, as when the config was a dict
    with pytest.raises(KeyError):
        cfg["not_a_field"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.chunk_size = 4


def test_config_errors_are_value_errors_naming_the_key_and_x64_stays_global():
    before = jax.config.jax_enable_x64
    with pytest.raises(ValueError, match=r"`sweep\.chunk_size`"):
        config.validate_config(_raw(chunk_size=0, x64=not before))
    assert jax.config.jax_enable_x64 == before
    cfg = config.validate_config(_raw(x64=not before))
    assert cfg.x64 == (not before) and jax.config.jax_enable_x64 == before
