"""The ``jaxopt-lab sweep`` command, kept here for compatibility: it lives in :mod:`jaxopt_lab.sweep.cli`.

``from jaxopt_lab import sweep_cli`` keeps working; new code imports
:mod:`jaxopt_lab.sweep.cli` (and :mod:`jaxopt_lab.sweep.config` for the config).
"""

from jaxopt_lab.sweep.cli import *  # noqa: F403
from jaxopt_lab.sweep.cli import (
    ConfigError,
    SweepConfig,
    checkpoint_dir,
    config_hash,
    load_config,
    main,
    run_config,
    validate_config,
)

__all__ = ["ConfigError", "SweepConfig", "checkpoint_dir", "config_hash", "load_config", "main", "run_config",
           "validate_config"]
