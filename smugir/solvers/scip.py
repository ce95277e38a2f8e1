"""SCIP (pyscipopt) on the 0-1 programs HiGHS solves (encoders/scip.py)."""

from __future__ import annotations

import threading

import numpy as np

from smugir.solvers.base import OnProgress, Problem, Solution
from smugir.solvers.milp import milp_search


def scip(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
         stop: threading.Event | None = None, start: np.ndarray | None = None, **options) -> list[Solution]:
    """SCIP, single-threaded; `start` is a feasible mask it starts from."""
    from smugir.encoders.scip import ScipModel, version

    return milp_search(problem, timeout, solutions, ScipModel, version(), on_progress, stop, start)
