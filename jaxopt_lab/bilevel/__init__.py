"""Bilevel optimization: a problem API, hypergradients with diagnostics, algorithms."""

from jaxopt_lab.bilevel.borep import BOREP, BOREPState
from jaxopt_lab.bilevel.bsvrb import BSVRB, BSVRBState
from jaxopt_lab.bilevel.hypergradient import (
    HypergradDiagnostics,
    adjoint_solve,
    hypergradient,
    hyperobjective,
)
from jaxopt_lab.bilevel.implicit_bilevel import ImplicitBilevel, ImplicitBilevelState
from jaxopt_lab.bilevel.lvhba import LVHBA, LVHBAState
from jaxopt_lab.bilevel.maid import MAID, MAIDState
from jaxopt_lab.bilevel.penalty import PenaltyBilevel, PenaltyBilevelState
from jaxopt_lab.bilevel.problem import BilevelParams, BilevelProblem
from jaxopt_lab.bilevel.stochastic_penalty import StochasticPenaltyBilevel, StochasticPenaltyBilevelState

__all__ = [
    "BOREP",
    "BOREPState",
    "BSVRB",
    "BSVRBState",
    "BilevelParams",
    "BilevelProblem",
    "HypergradDiagnostics",
    "ImplicitBilevel",
    "ImplicitBilevelState",
    "LVHBA",
    "LVHBAState",
    "MAID",
    "MAIDState",
    "PenaltyBilevel",
    "PenaltyBilevelState",
    "StochasticPenaltyBilevel",
    "StochasticPenaltyBilevelState",
    "adjoint_solve",
    "hypergradient",
    "hyperobjective",
]
