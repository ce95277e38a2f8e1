"""Masking problems for SCIP (pyscipopt), on exactly the 0-1 program HiGHS solves.

The model is read from `MilpModel`'s HiGHS LP (columns, bounds, rows, integrality), so both MILP
backends solve one formulation: with margin 0 a relaxation of the strict problem, with a positive
margin a restriction (smugir.encoders.milp). The caller (smugir/solvers/highs.py) drives both
alike and checks every mask exactly.
"""

from __future__ import annotations

import threading
import time
from importlib.metadata import version as package_version
from typing import Callable

import numpy as np

from smugir.encoders.milp import MilpModel, MilpResult
from smugir.problem import MaskProblem, NetworkMaskProblem

INFINITY = 1e20  # HiGHS's and SCIP's infinity is larger; anything past this is no bound
REPORT_EVERY = 0.2  # seconds between bound reports (a new incumbent is reported at once)
GRACE = 0.5  # seconds past its time limit after which a SCIP search is interrupted


def version() -> str:
    import pyscipopt

    return f"scip {pyscipopt.Model().version()} (pyscipopt {package_version('pyscipopt')})"


class ScipModel:
    """A SCIP model of a masking problem, with MilpModel's interface (`block`, `start_from`, `solve`)."""

    def __init__(self, problem: MaskProblem | NetworkMaskProblem, margin: float):
        import pyscipopt

        self.milp = MilpModel(problem, margin)
        self.n_units = problem.n_units
        self.weights = problem.weights
        lp = self.milp.highs.getLp()
        self.scip = pyscipopt.Model()
        self.scip.hideOutput()
        integer = np.asarray(lp.integrality_, dtype=int) if len(lp.integrality_) else np.zeros(lp.num_col_, dtype=int)
        self.columns = [
            self.scip.addVar(name=f"c{j}", vtype="B" if integer[j] and lower == 0 and upper == 1 else ("I" if integer[j] else "C"),
                             lb=lower, ub=upper if upper < INFINITY else None, obj=cost)
            for j, (cost, lower, upper) in enumerate(zip(lp.col_cost_, lp.col_lower_, lp.col_upper_))
        ]
        matrix = lp.a_matrix_  # column-wise (HiGHS's default) or row-wise
        starts, index, value = np.asarray(matrix.start_), np.asarray(matrix.index_), np.asarray(matrix.value_)
        rows: list[list[tuple[int, float]]] = [[] for _ in range(lp.num_row_)]
        by_column = int(matrix.format_) == 1
        for outer in range(len(starts) - 1):
            for k in range(starts[outer], starts[outer + 1]):
                column, row = (outer, index[k]) if by_column else (index[k], outer)
                rows[row].append((int(column), float(value[k])))
        for row, (lower, upper) in enumerate(zip(lp.row_lower_, lp.row_upper_)):
            self._row(rows[row], lower, upper)

    def _row(self, terms: list[tuple[int, float]], lower: float, upper: float) -> None:
        import pyscipopt

        expression = pyscipopt.quicksum(value * self.columns[column] for column, value in terms)
        if lower == upper:
            self.scip.addCons(expression == lower)
            return
        if lower > -INFINITY:
            self.scip.addCons(expression >= lower)
        if upper < INFINITY:
            self.scip.addCons(expression <= upper)

    def block(self, mask: np.ndarray) -> None:
        """Exclude this exact set of kept units (the row MilpModel.block adds)."""
        mask = np.asarray(mask, dtype=bool)
        self._row([(u, -1.0 if mask[u] else 1.0) for u in range(self.n_units)], 1.0 - mask.sum(), INFINITY)

    def start_from(self, mask: np.ndarray) -> None:
        solution = self.scip.createSol()
        for column, value in zip(self.columns, self.milp.column_values(mask)):
            self.scip.setSolVal(solution, column, float(value))
        self.scip.addSol(solution, free=True)

    def solve(self, timeout: float | None, on_progress: Callable[[float | None, float | None], None] | None = None,
              stop: threading.Event | None = None) -> MilpResult:
        """Run SCIP within `timeout`; `on_progress(incumbent, bound)` when either improves; `stop` interrupts it."""
        deadline = None
        if timeout is not None:
            self.scip.setParam("limits/time", float(timeout))
            deadline = time.monotonic() + float(timeout) + GRACE
        self.scip.includeEventhdlr(_watch(on_progress, stop, deadline), "smugir", "progress, stop and the deadline")
        start = time.perf_counter()
        self.scip.optimizeNogil()  # other threads (the portfolio, the live line) run meanwhile
        seconds = time.perf_counter() - start
        status = self.scip.getStatus()
        mask = objective = None
        if self.scip.getNSols() > 0:
            best = self.scip.getBestSol()
            mask = np.array([self.scip.getSolVal(best, c) > 0.5 for c in self.columns[: self.n_units]], dtype=bool)
            objective = float(self.weights @ mask)
        if status == "optimal" and mask is not None:
            return MilpResult("optimal", mask, objective, objective, 0.0, seconds)
        if status == "infeasible":
            return MilpResult("infeasible", None, None, None, None, seconds)
        bound = self.scip.getDualbound()
        bound = float(bound) if abs(bound) < INFINITY else None
        gap = None if objective is None or bound is None else max(objective - bound, 0.0) / max(abs(objective), 1.0)
        return MilpResult("feasible" if mask is not None else "unknown", mask, objective, bound, gap, seconds)


def _watch(on_progress, stop, deadline: float | None):
    """An event handler: new incumbents at once, the bound at most every REPORT_EVERY s, `stop`
    obeyed, and the search interrupted past `deadline` (SCIP's own time limit is checked seldom
    in presolve on a busy machine)."""
    import pyscipopt

    kinds = pyscipopt.SCIP_EVENTTYPE
    events = kinds.BESTSOLFOUND | kinds.NODESOLVED | kinds.LPSOLVED | kinds.PRESOLVEROUND

    class Watch(pyscipopt.Eventhdlr):
        last: list = [None, None, 0.0]

        def eventinit(self):
            self.model.catchEvent(events, self)

        def eventexit(self):
            self.model.dropEvent(events, self)

        def eventexec(self, event):
            if (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() > deadline):
                self.model.interruptSolve()
            if on_progress is None:
                return
            incumbent = self.model.getPrimalbound() if self.model.getNSols() else None
            bound = self.model.getDualbound()
            incumbent = None if incumbent is None or abs(incumbent) >= INFINITY else float(incumbent)
            bound = None if abs(bound) >= INFINITY else float(bound)
            now = time.monotonic()
            if incumbent != self.last[0] or (bound != self.last[1] and now - self.last[2] > REPORT_EVERY):
                self.last = [incumbent, bound, now]
                on_progress(incumbent, bound)

    return Watch()
