"""The interface every solver backend implements: a `Backend` call that returns `Solution`s and
reports `SolveProgress`, and the helpers that keep every backend's answers honest (`checked`,
`bound_reaches`, `Tracker`). Every backend module imports this one; nothing here imports a backend."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from smugir.problem import MaskProblem, NetworkMaskProblem

Problem = MaskProblem | NetworkMaskProblem
STATUSES = ("optimal", "feasible", "infeasible", "unknown")


@dataclass(frozen=True)
class Solution:
    status: str  # optimal (proven) | feasible (incumbent + bound) | infeasible | unknown
    mask: np.ndarray | None  # (n_units,) bool
    objective: float | None
    bound: float | None  # best proven lower bound on the optimum
    solver: str
    seconds: float
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)


@dataclass(frozen=True)
class SolveProgress:
    """A snapshot of a running solve: the best mask's objective so far and the best proven bound."""

    solver: str
    seconds: float
    incumbent: float | None
    bound: float | None

    @property
    def gap(self) -> float | None:
        return gap(self.incumbent, self.bound)


OnProgress = Callable[[SolveProgress], None]


class Backend(Protocol):
    """Up to `solutions` distinct masks, each minimal among the rest, within `timeout` seconds (None:
    no limit); stops early when `stop` is set; every mask passed through `checked`."""

    def __call__(self, problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
                 stop: threading.Event | None = None, **options: Any) -> list[Solution]: ...


def gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap (objective - bound) / objective, HiGHS's definition; 0 when proven, None when unknown."""
    if objective is None or bound is None:
        return None
    return max(objective - bound, 0.0) / max(abs(objective), 1.0)


class Tracker:
    """Merges progress reports (several backends, several phases) into one monotone snapshot."""

    def __init__(self, solver: str, on_progress: OnProgress | None, offset: float = 0.0):
        self.solver, self.on_progress, self.offset = solver, on_progress, offset
        self.clock = time.monotonic()
        self.incumbent: float | None = None
        self.bound: float | None = None
        self.lock = threading.Lock()

    def report(self, incumbent: float | None, bound: float | None) -> None:
        with self.lock:
            if incumbent is not None and (self.incumbent is None or incumbent + self.offset < self.incumbent):
                self.incumbent = incumbent + self.offset
            if bound is not None and (self.bound is None or bound + self.offset > self.bound):
                self.bound = bound + self.offset
            if self.incumbent is not None and self.bound is not None:
                self.bound = min(self.bound, self.incumbent)
            snapshot = SolveProgress(self.solver, time.monotonic() - self.clock, self.incumbent, self.bound)
        if self.on_progress is not None:
            self.on_progress(snapshot)


def checked(problem: Problem, solution: Solution) -> Solution:
    """Never pass on a mask that fails the exact problem; say what happened instead."""
    if solution.mask is None or problem.is_satisfied(solution.mask):
        return solution
    details = {**solution.details, "rejected": "the solver's mask fails the exact float64 constraints"}
    return Solution("unknown", None, None, solution.bound, solution.solver, solution.seconds, details)


def proven(found: list[Solution], solutions: int) -> bool:
    """Every mask asked for is proven optimal, or the search proved that no (further) mask exists."""
    return all(s.status in ("optimal", "infeasible") for s in found) and (len(found) >= solutions or found[-1].status == "infeasible")


def bound_reaches(bound: float, objective: float, weights: np.ndarray) -> bool:
    """Whether a lower bound proves `objective` optimal (integer weights: rounding the bound up)."""
    if np.all(weights == np.round(weights)):
        return float(np.ceil(bound - 1e-6)) >= objective
    return bound >= objective - 1e-9


def stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def time_left(deadline: float | None) -> float | None:
    """Seconds to `deadline` (a time.monotonic() value; None: no limit), at least 10 ms."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.01)
