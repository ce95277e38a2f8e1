"""The pseudo-Boolean backends' search: an engine that solves 0-1 programs with integer rows (CP-SAT,
Exact) on the two integer roundings of a first-layer problem (encoders/cpsat.py `integer_rows`)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from smugir.errors import SolverError
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.solvers.base import OnProgress, Problem, Solution, Tracker, bound_reaches, checked, stopped, time_left

# engine(problem, relaxed, timeout, on_solution(incumbent, bound), stop, blocked masks) -> CpSatResult
Engine = Callable[[MaskProblem, bool, "float | None", Callable, "threading.Event | None", tuple], Any]


def rounded_search(problem: Problem, timeout: float | None, solutions: int, engine: Engine, name: str,
                   on_progress: OnProgress | None, stop: threading.Event | None, details: dict[str, Any]) -> list[Solution]:
    """The engine on the relaxed rounding (its bound is proven, its optimum proven when the mask
    passes the exact check); a mask that fails it sends the search to the restricted rounding,
    whose masks are all exact, and then "optimal" needs its objective to reach the relaxed bound."""
    if isinstance(problem, NetworkMaskProblem):
        raise SolverError(f"{name.split()[0]} solves first-layer masking problems; use highs or z3 for --method network")
    deadline = None if timeout is None else time.monotonic() + timeout
    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    while len(found) < solutions:
        tracker = Tracker(name, on_progress)
        result = engine(problem, True, time_left(deadline), tracker.report, stop, tuple(blocked))
        rounding = "relaxed"
        status, mask, bound = result.status, result.mask, result.bound
        if mask is not None and not problem.is_satisfied(mask) and not stopped(stop):
            restricted = engine(problem, False, time_left(deadline), lambda incumbent, _: tracker.report(incumbent, None), stop, tuple(blocked))
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
        solution = checked(problem, Solution(status, mask, objective, bound, name, result.seconds, {"rounding": rounding, **details}))
        found.append(solution)
        if solution.mask is None or solution.status != "optimal" or stopped(stop):
            break
        blocked.append(solution.mask)
    return found
