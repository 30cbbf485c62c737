"""Matrix-free linear algebra: pytree-aware linear solvers (:mod:`.linear_solve`) and
implicit differentiation of solutions (:mod:`.implicit_diff`), also importable as
``jaxopt_lab.linear_solve`` and ``jaxopt_lab.implicit_diff`` as in jaxopt."""
