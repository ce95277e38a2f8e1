"""The MILP backends' search over the 0-1 programs of encoders/milp.py (relaxation first, strict
margins only for ties, the network start), on any engine with MilpModel's interface (HiGHS, SCIP)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from smugir.problem import NetworkMaskProblem
from smugir.solvers.base import OnProgress, Problem, Solution, Tracker, bound_reaches, checked, stopped, time_left


def milp_search(problem: Problem, timeout: float | None, solutions: int, engine: Callable[[Problem, float], Any], name: str,
                on_progress: OnProgress | None, stop: threading.Event | None, start: np.ndarray | None) -> list[Solution]:
    """The engine, first on the relaxation (`>=` for `>`): when its optimal mask passes the exact
    strict check, it is optimal for the strict problem too, proven in one solve. Only a mask that
    ties a bound within the engine's tolerance sends it to models with a strict margin, and then
    the relaxation's bound is what is proven. `start` is a feasible mask to start from."""
    from smugir.encoders.milp import STRICT_MARGIN

    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    margins = (0.0, STRICT_MARGIN, STRICT_MARGIN * 100, STRICT_MARGIN * 10_000)
    if isinstance(problem, NetworkMaskProblem):
        start = irreducible_mask(replace(problem, margin=problem.margin + STRICT_MARGIN))
    while len(found) < solutions:
        relaxed_bound = None
        for margin in margins:
            model = engine(problem, margin)
            for mask in blocked:
                model.block(mask)
            if start is not None and not blocked:
                model.start_from(start)
            tracker = Tracker(name, on_progress)
            # a margin model's bound is no bound on the problem: only its incumbents are reported
            report = tracker.report if margin == 0.0 else (lambda incumbent, bound: tracker.report(incumbent, None))
            result = model.solve(time_left(deadline), report if on_progress is not None else None, stop)
            if margin == 0.0:
                relaxed_bound = result.bound
            if result.mask is None or problem.is_satisfied(result.mask) or stopped(stop):
                break
        status, bound = result.status, result.bound
        if margin > 0:  # the margin model is stricter than the problem: only the relaxation's bound holds
            bound = relaxed_bound
            if status == "optimal" and (bound is None or not bound_reaches(bound, result.objective, problem.weights)):
                status = "feasible"
            elif status == "infeasible":  # masks with a slack below the margin may still exist
                status = "unknown"
        details = {"gap": result.gap, "strict_margin": margin}
        solution = checked(problem, Solution(status, result.mask, result.objective, bound, name, result.seconds, details))
        found.append(solution)
        if solution.mask is None or solution.status != "optimal" or stopped(stop):
            break
        blocked.append(solution.mask)
    return found


def irreducible_mask(problem: NetworkMaskProblem) -> np.ndarray | None:
    """A first mask for the whole-network MILP: drop units one at a time, least input change first,
    while the exact float64 check still holds. Irreducible, not minimal; None if even all units fail."""
    mask = np.ones(problem.n_units, dtype=bool)
    if not problem.is_satisfied(mask):
        return None
    change = np.bincount(problem.unit_of, problem.delta**2, minlength=problem.n_units)
    for unit in np.argsort(change, kind="stable"):
        mask[unit] = False
        if not problem.is_satisfied(mask):
            mask[unit] = True
    return mask
