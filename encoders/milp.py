"""Masking problems as 0-1 integer programs for HiGHS (highspy).

A MILP solver has no strict inequalities and works with tolerances, so `a.m > b` becomes
`a.m >= b + margin` on rows scaled to unit size (rows of integers become `a.m >= floor(b) + 1`,
exactly: `MaskProblem.closed_bounds`). With margin 0 the model is a relaxation of the
problem (its bound is a proven bound); a positive margin, well above HiGHS's feasibility
tolerance, is a restriction. The caller (smugir/solvers/highs.py) uses both and checks every mask exactly.
The whole-network problem uses the standard big-M ReLU encoding with bounds from interval
arithmetic over m in [0, 1].
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import highspy
import numpy as np

from smugir.problem import MaskProblem, NetworkMaskProblem

STRICT_MARGIN = 1e-5  # on rows scaled so that max(|a_i|, |b_i|) = 1


def version() -> str:
    return f"highs {highspy.Highs().version()}"


@dataclass
class MilpResult:
    status: str  # optimal | feasible | infeasible | unknown
    mask: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float


class MilpModel:
    """A HiGHS model of a masking problem; `block` adds a no-good cut so the next solve differs."""

    def __init__(self, problem: MaskProblem | NetworkMaskProblem, margin: float = STRICT_MARGIN):
        self.problem = problem
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("threads", 1)
        self.n_units = problem.n_units
        if isinstance(problem, MaskProblem):
            self._encode_mask(problem, margin)
        else:
            self._encode_network(problem, margin)

    def _encode_mask(self, problem: MaskProblem, margin: float) -> None:
        """All rows in one call, straight from the problem's CSR arrays (no dense row is ever made)."""
        columns = self._add_columns(problem.weights, np.zeros(self.n_units), np.ones(self.n_units), integer=True)
        a = problem.coefficients
        scale = problem.row_scale()
        scale = np.where(scale > 0, scale, 1.0)  # a row 0 > b keeps its bound (1e-300 made it 1e300: "infinite", dropped)
        values = a.data / np.repeat(scale, np.diff(a.indptr))
        closed, integral = problem.closed_bounds()
        lower = closed / scale + np.where(integral, 0.0, margin)
        upper = np.full(problem.n_constraints, highspy.kHighsInf)
        starts = a.indptr[:-1].astype(np.int32)
        self.highs.addRows(problem.n_constraints, lower, upper, a.nnz, starts, columns[a.indices].astype(np.int32), values)

    def _add_columns(self, cost, lower, upper, integer: bool) -> np.ndarray:
        start = self.highs.getNumCol()
        n = len(cost)
        self.highs.addCols(n, np.asarray(cost, float), np.asarray(lower, float), np.asarray(upper, float), 0, np.array([], np.int32), np.array([], np.int32), np.array([], float))
        columns = np.arange(start, start + n)
        if integer and n:
            kind = np.full(n, int(highspy.HighsVarType.kInteger), dtype=np.uint8)
            self.highs.changeColsIntegrality(n, columns.astype(np.int32), kind)
        return columns

    def _row(self, coefficients: np.ndarray, lower: float, upper: float) -> None:
        nz = np.flatnonzero(coefficients)
        self.highs.addRow(float(lower), float(upper), len(nz), nz.astype(np.int32), coefficients[nz])

    def _encode_network(self, problem: NetworkMaskProblem, margin: float) -> None:
        """Affine expressions (coefficients over all columns, constant) layer by layer; big-M ReLU."""
        inf = highspy.kHighsInf
        self._add_columns(problem.weights, np.zeros(self.n_units), np.ones(self.n_units), integer=True)
        self._hidden_columns: list[tuple[np.ndarray, np.ndarray]] = []
        n_cols_final = self.n_units + 2 * sum(b.size for _, b in problem.layers[:-1])
        # First layer: z = W (base + delta * m[unit_of]) + b, as coefficients over the mask columns.
        w0, b0 = problem.layers[0]
        per_unit = np.zeros((b0.size, n_cols_final))
        np.add.at(per_unit.T, problem.unit_of, (w0 * problem.delta).T)
        expr, const = per_unit, w0 @ problem.base + b0
        lo_h = np.zeros(n_cols_final)
        hi_h = np.zeros(n_cols_final)
        hi_h[: self.n_units] = 1.0
        for k, (w, b) in enumerate(problem.layers):
            if k > 0:
                expr, const = w @ expr, w @ const + b
            if k == len(problem.layers) - 1:
                break
            low = const + np.minimum(expr * hi_h, expr * lo_h).sum(axis=1)
            high = const + np.maximum(expr * hi_h, expr * lo_h).sum(axis=1)
            width = b.size
            h_cols = self._add_columns(np.zeros(width), np.zeros(width), np.maximum(high, 0), integer=False)
            a_cols = self._add_columns(np.zeros(width), np.zeros(width), np.ones(width), integer=True)
            self._hidden_columns.append((h_cols, a_cols))
            next_expr = np.zeros((width, n_cols_final))
            next_const = np.zeros(width)
            for i in range(width):
                if high[i] <= 0:
                    self.highs.changeColBounds(int(h_cols[i]), 0.0, 0.0)
                    continue
                h = np.zeros(n_cols_final)
                h[h_cols[i]] = 1.0
                if low[i] >= 0:  # always active: h = z
                    self._row(h - expr[i], const[i], const[i])
                else:  # h >= z, h <= z - low (1 - a), h <= high a
                    self._row(h - expr[i], const[i], inf)
                    row = h - expr[i]
                    row[a_cols[i]] = -low[i]
                    self._row(row, -inf, const[i] - low[i])
                    row = h.copy()
                    row[a_cols[i]] = -high[i]
                    self._row(row, -inf, 0.0)
                next_expr[i] = h
                lo_h[h_cols[i]] = max(low[i], 0.0)
                hi_h[h_cols[i]] = max(high[i], 0.0)
            expr, const = next_expr, next_const
        for j in range(expr.shape[0]):
            if j != problem.label:
                self._row(expr[problem.label] - expr[j], problem.margin + margin + const[j] - const[problem.label], inf)

    def start_from(self, mask: np.ndarray) -> None:
        """Give HiGHS a first solution: the mask (and, for whole networks, every hidden neuron's
        value and phase: HiGHS's own heuristics often find no mask at all within a time limit on
        MNIST-sized nets, and a timeout should still return a mask)."""
        solution = highspy.HighsSolution()
        solution.col_value = self.column_values(mask).tolist()
        solution.value_valid = True
        self.highs.setSolution(solution)

    def column_values(self, mask: np.ndarray) -> np.ndarray:
        """Every column's value for this mask (hidden neurons' values and phases for whole networks)."""
        values = np.zeros(self.highs.getNumCol())
        values[: self.n_units] = mask
        if isinstance(self.problem, NetworkMaskProblem):
            h = self.problem.inputs(mask)
            for (w, b), (h_cols, a_cols) in zip(self.problem.layers, self._hidden_columns):
                z = w @ h + b
                h = np.maximum(z, 0.0)
                values[h_cols], values[a_cols] = h, z > 0
        return values

    def block(self, mask: np.ndarray) -> None:
        """Exclude this exact set of kept units: sum_{u not kept} m_u - sum_{u kept} m_u >= 1 - |kept|."""
        mask = np.asarray(mask, dtype=bool)
        coefficients = np.where(mask, -1.0, 1.0)
        self.highs.addRow(1.0 - mask.sum(), highspy.kHighsInf, self.n_units, np.arange(self.n_units, dtype=np.int32), coefficients)

    def solve(
        self,
        timeout: float | None,
        on_progress: Callable[[float | None, float | None], None] | None = None,
        stop: threading.Event | None = None,
    ) -> MilpResult:
        """Run HiGHS; `on_progress(incumbent, bound)` when either improves; `stop` interrupts it."""
        self.highs.setOptionValue("time_limit", float(timeout) if timeout else highspy.kHighsInf)
        if on_progress is not None or stop is not None:
            self._watch(on_progress, stop)
        start = time.perf_counter()
        self.highs.run()
        seconds = time.perf_counter() - start
        status = self.highs.getModelStatus()
        info = self.highs.getInfo()
        has_solution = info.primal_solution_status == 2
        mask = None
        objective = None
        if has_solution:
            values = np.asarray(self.highs.getSolution().col_value[: self.n_units])
            mask = values > 0.5
            objective = float(self.problem.weights @ mask)
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
        gap = float(info.mip_gap) if has_solution and np.isfinite(info.mip_gap) else None
        if status == highspy.HighsModelStatus.kOptimal:
            return MilpResult("optimal", mask, objective, objective, 0.0, seconds)
        if status == highspy.HighsModelStatus.kInfeasible:
            return MilpResult("infeasible", None, None, None, None, seconds)
        return MilpResult("feasible" if has_solution else "unknown", mask, objective, bound, gap, seconds)

    def _watch(self, on_progress, stop) -> None:
        """HiGHS's MIP interrupt callback, called often during the search: report changes, obey `stop`."""
        last: list = [None, None, 0.0]  # incumbent, bound, time reported

        def finite(value: float) -> float | None:
            return float(value) if np.isfinite(value) and abs(value) < highspy.kHighsInf else None

        def interrupt(event) -> None:
            if stop is not None and stop.is_set():
                event.interrupt()
            if on_progress is not None:  # a new incumbent at once, bound moves at most 5 times a second
                incumbent, bound = finite(event.data_out.mip_primal_bound), finite(event.data_out.mip_dual_bound)
                now = time.monotonic()
                if incumbent != last[0] or (bound != last[1] and now - last[2] > 0.2):
                    last[:] = incumbent, bound, now
                    on_progress(incumbent, bound)

        self.highs.cbMipInterrupt.subscribe(interrupt)
