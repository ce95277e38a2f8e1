"""Masking problems for Exact (pip `exact`), a pseudo-Boolean solver with arbitrary-precision
integers, on the integer roundings of encoders/cpsat.py (`integer_rows`, the rows the OPB files
hold): relaxed (its bound proven for the exact problem) or restricted (its masks all exact).
The caller (smugir/solvers/rounded.py) drives both and checks every mask exactly.

Exact keeps Python's lock while it searches, so `stop` is obeyed only between its search phases;
its own `timeout` option ends the search on time (it then raises, and the best solution is kept).
"""

from __future__ import annotations

import threading
import time
from importlib.metadata import version as package_version
from typing import Callable

import numpy as np

from smugir.encoders.cpsat import CpSatResult, integer_rows, integer_weights
from smugir.problem import MaskProblem


def version() -> str:
    return f"exact {package_version('exact')}"


def solve_exact(
    problem: MaskProblem,
    relaxed: bool,
    timeout: float | None,
    on_solution: Callable[[float | None, float | None], None] | None = None,
    stop: threading.Event | None = None,
    blocked: tuple[np.ndarray, ...] = (),
) -> CpSatResult:
    """One Exact run: solution-improving search with its core-guided lower bounds (its default
    hybrid); `on_solution(incumbent, bound)` after each phase; each mask in `blocked` excluded."""
    import exact

    rows, right = integer_rows(problem, relaxed)
    weights = integer_weights(problem.weights)
    names = [f"x{u + 1}" for u in range(problem.n_units)]
    solver = exact.Exact([("timeout", f"{max(timeout, 0.01):.3f}")] if timeout is not None else [])
    for name in names:
        solver.addVariable(name)
    solver.setObjective([(int(w), names[u]) for u, w in enumerate(weights) if w])
    for i in range(right.size):
        span = slice(int(rows.indptr[i]), int(rows.indptr[i + 1]))
        terms = [(int(c), names[u]) for u, c in zip(rows.indices[span], rows.data[span])]
        solver.addConstraint(terms, True, int(right[i]))
    for mask in blocked:  # sum_{not kept} m - sum_{kept} m >= 1 - |kept|
        mask = np.asarray(mask, dtype=bool)
        solver.addConstraint([(-1 if keep else 1, name) for name, keep in zip(names, mask)], True, int(1 - mask.sum()))
    clock = time.perf_counter()
    mask, state = None, "UNKNOWN"
    try:
        while not (stop is not None and stop.is_set()):
            state = solver.runOnce()
            if state == "SAT":
                mask = np.array(solver.getLastSolutionFor(names), dtype=bool)
                solver.boundObjByLastSol()
            elif state in ("UNSAT", "INCONSISTENT"):
                break
            if on_solution is not None:
                on_solution(float(problem.weights @ mask) if mask is not None else None, float(solver.getDualBound()))
    except RuntimeError:  # Exact's timeout
        state = "TIMEOUT"
    seconds = time.perf_counter() - clock
    objective = None if mask is None else float(problem.weights @ mask)
    if state in ("UNSAT", "INCONSISTENT"):
        return CpSatResult("optimal", mask, objective, objective, seconds) if mask is not None else CpSatResult("infeasible", None, None, None, seconds)
    bound = float(solver.getDualBound())
    return CpSatResult("feasible" if mask is not None else "unknown", mask, objective, bound, seconds)
