"""Exact (pip `exact`), a pseudo-Boolean solver, on the integer roundings of a first-layer problem
(encoders/exact.py)."""

from __future__ import annotations

import threading

from smugir.solvers.base import OnProgress, Problem, Solution
from smugir.solvers.rounded import rounded_search


def exact(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
          stop: threading.Event | None = None, **options) -> list[Solution]:
    """Exact, single-threaded, in this process."""
    from smugir.encoders.exact import solve_exact, version

    return rounded_search(problem, timeout, solutions, solve_exact, version(), on_progress, stop, {})
