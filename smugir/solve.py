"""One call, `solve`, in front of the solver backends (smugir/solvers/, one module each, named in
smugir/solvers/registry.py), and the `Solution` every backend returns.

Backends: `portfolio` (the default: HiGHS and CP-SAT raced in threads, the first proof wins),
`highs` and `scip` (MILP), `cpsat` and `exact` (on integer roundings, see encoders/cpsat.py),
`z3` (pySMT + z3, cardinality-bound search), `pysmt:NAME` (the same search on any installed
pySMT solver) and `z3-optimize` (z3's own Optimize on the same formula).

For a first-layer problem and one solution, all but the SMT backends run inside the exact layer
(smugir/solvers/strengthened.py): presolve, an incumbent, reduced-cost fixing, and the backend
only searches for a strictly better mask. Every mask is checked again, exactly, on the original
problem, and "optimal" is only said with a proof: a bound from a relaxation (HiGHS with `>=`,
CP-SAT's relaxed rounding, the LP's safe Lagrangian bound, or presolve's reductions, each of
which keeps an optimal mask) that reaches the objective of a mask that passes the strict float64
check.

Every solve has a time budget (`DEFAULT_TIMEOUT`, None for unlimited) and reports its progress as
`SolveProgress` (incumbent, bound, gap) through `on_progress`.
"""

from __future__ import annotations

from smugir.errors import SolverError
from smugir.problem import MaskProblem
from smugir.solvers.base import STATUSES, OnProgress, Problem, Solution, SolveProgress, gap
from smugir.solvers.registry import BACKENDS, STARTS_FROM_INCUMBENT, STRENGTHENED, backend, portfolio
from smugir.solvers.strengthened import strengthen

__all__ = ["BACKENDS", "DEFAULT_SOLVER", "DEFAULT_TIMEOUT", "MAX_TIMEOUT", "STATUSES", "STRENGTHENED",
           "OnProgress", "Problem", "Solution", "SolveProgress", "gap", "solve"]

DEFAULT_SOLVER = "portfolio"
DEFAULT_TIMEOUT = 60.0  # seconds; None (CLI: --timeout 0 or none) for no limit
MAX_TIMEOUT = 1e7  # seconds (116 days): beyond it the clocks and waits of the OS overflow; None is no limit


def solve(
    problem: Problem,
    solver: str = DEFAULT_SOLVER,
    timeout: float | None = DEFAULT_TIMEOUT,
    solutions: int = 1,
    on_progress: OnProgress | None = None,
    **options,
) -> list[Solution]:
    """Minimise the mask within `timeout` seconds (None: no limit); with `solutions=N`, up to N
    distinct masks (each minimal among the rest). `on_progress` gets a `SolveProgress` whenever the
    incumbent or the bound improves. `presolve=False` skips the exact layer (see the module docstring)."""
    run = backend(solver)
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise SolverError(f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds (or None for no limit), got {timeout}")
    if int(solutions) < 1:
        raise SolverError(f"solutions must be >= 1, got {solutions}")
    if solver in ("cpsat", "portfolio") and isinstance(problem, MaskProblem):
        from smugir.solvers.cpsat import prewarm

        prewarm()  # CP-SAT's process starts now, while presolve, the incumbent and HiGHS's head start run
    strengthened = options.pop("presolve", True) and solver in STRENGTHENED and isinstance(problem, MaskProblem) and int(solutions) == 1
    if strengthened and solver == "portfolio":
        return portfolio(problem, timeout, 1, on_progress, strengthened=True, **options)
    if strengthened:
        run = strengthen(run, solver in STARTS_FROM_INCUMBENT)
    return run(problem, timeout, int(solutions), on_progress=on_progress, **options)
