"""OR-tools CP-SAT on the integer roundings of a first-layer problem (encoders/cpsat.py, which runs
the search in a child process)."""

from __future__ import annotations

import os
import threading

from smugir.solvers.base import OnProgress, Problem, Solution
from smugir.solvers.rounded import rounded_search


def cpsat(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
          stop: threading.Event | None = None, workers: int | None = None, **options) -> list[Solution]:
    """CP-SAT with `workers` threads (default all cores)."""
    from smugir.encoders.cpsat import solve_cpsat, version

    workers = int(workers or os.cpu_count() or 1)

    def engine(problem, relaxed, timeout, report, stop, blocked):
        return solve_cpsat(problem, relaxed, timeout, workers, report, stop, blocked)

    return rounded_search(problem, timeout, solutions, engine, version(), on_progress, stop, {"workers": workers})


def prewarm() -> None:
    """Start CP-SAT's child process now, while presolve, the incumbent and HiGHS's head start run."""
    from smugir.encoders.cpsat import prewarm as start

    start()
