"""OR-tools CP-SAT on the integer roundings of a first-layer problem (encoders/cpsat.py, which runs
the search in a child process)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from smugir.errors import SolverError
from smugir.problem import NetworkMaskProblem
from smugir.solvers.base import OnProgress, Problem, Solution, Tracker, bound_reaches, checked, stopped, time_left


def cpsat(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
          stop: threading.Event | None = None, workers: int | None = None, **options) -> list[Solution]:
    """CP-SAT on the relaxed rounding (its bound is proven, its optimum proven when the mask passes
    the exact check); a mask that fails it sends the search to the restricted rounding, whose
    masks are all exact, and then "optimal" needs its objective to reach the relaxed bound."""
    from smugir.encoders.cpsat import solve_cpsat, version

    if isinstance(problem, NetworkMaskProblem):
        raise SolverError("cpsat solves first-layer masking problems; use highs or z3 for --method network")
    workers = int(workers or os.cpu_count() or 1)
    deadline = None if timeout is None else time.monotonic() + timeout
    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    while len(found) < solutions:
        tracker = Tracker(version(), on_progress)
        result = solve_cpsat(problem, True, time_left(deadline), workers, tracker.report, stop, tuple(blocked))
        rounding = "relaxed"
        status, mask, bound = result.status, result.mask, result.bound
        if mask is not None and not problem.is_satisfied(mask) and not stopped(stop):
            restricted = solve_cpsat(problem, False, time_left(deadline), workers,
                                     lambda incumbent, _: tracker.report(incumbent, None), stop, tuple(blocked))
            rounding = "restricted"
            mask = restricted.mask
            if restricted.status == "infeasible" or mask is None:
                status = "unknown"
            elif bound is not None and bound_reaches(bound, restricted.objective, problem.weights):
                status = "optimal"
            else:
                status = "feasible"
        objective = None if mask is None else problem.objective(mask)
        if status == "optimal":
            bound = objective
        solution = checked(problem, Solution(status, mask, objective, bound, version(), result.seconds, {"rounding": rounding, "workers": workers}))
        found.append(solution)
        if solution.mask is None or solution.status != "optimal" or stopped(stop):
            break
        blocked.append(solution.mask)
    return found


def prewarm() -> None:
    """Start CP-SAT's child process now, while presolve, the incumbent and HiGHS's head start run."""
    from smugir.encoders.cpsat import prewarm as start

    start()
