"""HiGHS (highspy) on first-layer and whole-network masking problems (encoders/milp.py)."""

from __future__ import annotations

import threading

import numpy as np

from smugir.solvers.base import OnProgress, Problem, Solution
from smugir.solvers.milp import milp_search


def highs(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
          stop: threading.Event | None = None, start: np.ndarray | None = None, **options) -> list[Solution]:
    """HiGHS, single-threaded; `start` is a feasible mask it starts from."""
    from smugir.encoders.milp import MilpModel, version

    return milp_search(problem, timeout, solutions, MilpModel, version(), on_progress, stop, start)
