"""Datasets and test problems used by tests, benchmarks, notebooks and the CLI.

:mod:`~jaxopt_lab.problems.bilevel_problems` holds bilevel test problems (instances of
:class:`jaxopt_lab.bilevel.BilevelProblem`, the problem spec in ``bilevel/problem.py``);
``jaxopt_lab.problems.bilevel`` is its earlier name, kept as an alias.
"""

import sys as _sys

from jaxopt_lab.problems import bilevel_problems, mgh  # noqa: F401
from jaxopt_lab.problems.digits import (  # noqa: F401
    ClassificationData,
    accuracy,
    load_digits,
    multinomial_logreg_loss,
)
from jaxopt_lab.problems.logreg import SweepProblem, logreg, mlp  # noqa: F401

bilevel = bilevel_problems
_sys.modules.setdefault(f"{__name__}.bilevel", bilevel_problems)
