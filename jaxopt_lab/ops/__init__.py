"""Operators used by solvers and users: proximal operators, projections, losses, objectives,
isotonic regression and perturbed optimizers (each a module, also importable as
``jaxopt_lab.prox``, ``jaxopt_lab.projection`` ... as in jaxopt)."""
