"""Datasets and test problems used by tests, benchmarks, notebooks and the CLI."""

from jaxopt_lab.problems import bilevel, mgh  # noqa: F401
from jaxopt_lab.problems.digits import (  # noqa: F401
    ClassificationData,
    accuracy,
    load_digits,
    multinomial_logreg_loss,
)
from jaxopt_lab.problems.logreg import SweepProblem, logreg, mlp  # noqa: F401
