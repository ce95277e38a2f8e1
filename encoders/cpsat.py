"""Masking problems for CP-SAT (ortools), which needs integer coefficients.

Each row a.m > b is scaled by a power of two s (exact in float64: only the exponent changes) so
that its largest number is about 2^30, then rounded in one of two directions:
- relaxed:    sum ceil(s a_u) m_u >= floor(s b) + 1. Every exact solution satisfies it, because
  sum ceil(s a_u) m_u >= s a.m > s b and the left side is an integer. CP-SAT's bound on this
  model is a proven bound on the exact problem, and an optimum of it that passes the exact check
  is an exact optimum.
- restricted: sum floor(s a_u) m_u >= floor(s b) + 1. Every solution of it is exact, because
  s a.m >= sum floor(s a_u) m_u > s b.
The caller (`smugir.solve`) solves the relaxed model first and the restricted one only when the
relaxed optimum fails the exact check (a row met within 2^-30 of its bound).
"""

from __future__ import annotations

import json
import pickle
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Callable

import numpy as np
import scipy.sparse

from smugir.errors import SolverError
from smugir.problem import MaskProblem

SCALE_BITS = 30  # the largest number of a row becomes about 2^30; sums of 10^5 of them fit int64
GRACE = 1.0  # seconds past its time limit (+0.5 s) before a CP-SAT process that does not answer is killed


def version() -> str:
    return f"cpsat (ortools {package_version('ortools')})"


def integer_rows(problem: MaskProblem, relaxed: bool) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """(integer coefficients as CSR, integer right-hand sides) of the relaxed or restricted model."""
    rows = scipy.sparse.csr_array(problem.coefficients, dtype=np.float64)
    bounds = problem.bounds
    largest = np.maximum(np.abs(bounds), np.zeros(bounds.size))
    if rows.nnz:
        row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        np.maximum.at(largest, row_of, np.abs(rows.data))
    else:
        row_of = np.zeros(0, dtype=np.int64)
    exponent = np.where(largest > 0, SCALE_BITS - np.frexp(largest)[1], 0)
    data = np.ldexp(rows.data, exponent[row_of])
    data = np.ceil(data) if relaxed else np.floor(data)
    right = np.floor(np.ldexp(bounds, exponent)) + 1
    scaled = scipy.sparse.csr_array((data.astype(np.int64), rows.indices, rows.indptr), shape=rows.shape)
    return scaled, right.astype(np.int64)


def integer_weights(weights: np.ndarray) -> np.ndarray:
    if not np.all(weights == np.round(weights)) or np.any(np.abs(weights) > 2**40):
        raise SolverError("cpsat needs integer unit weights (pixel, window and segment counts are)")
    return weights.astype(np.int64)


@dataclass
class CpSatResult:
    status: str  # optimal | feasible | infeasible | unknown (for the model solved, see the module docstring)
    mask: np.ndarray | None
    objective: float | None
    bound: float | None
    seconds: float


def solve_cpsat(
    problem: MaskProblem,
    relaxed: bool,
    timeout: float | None,
    workers: int = 1,
    on_solution: Callable[[float, float], None] | None = None,
    stop: threading.Event | None = None,
    blocked: tuple[np.ndarray, ...] = (),
) -> CpSatResult:
    """One CP-SAT run in its own process (`python -m smugir.encoders.cpsat`: ortools bundles a HiGHS
    that clashes with highspy's in one process); `on_solution(incumbent, bound)` on every improving
    solution; `stop` ends it early; each mask in `blocked` is excluded by a no-good clause. The
    process never outlives the call: it is asked to stop, then killed after GRACE seconds."""
    rows, right = integer_rows(problem, relaxed)
    weights = integer_weights(problem.weights)
    clock = time.perf_counter()
    deadline = None if timeout is None else time.time() + timeout  # wall clock: the child's start-up counts
    payload = pickle.dumps((rows.data, rows.indices, rows.indptr, right, weights, deadline, int(workers), [np.asarray(b, bool) for b in blocked]))
    process = subprocess.Popen([sys.executable, "-m", "smugir.encoders.cpsat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] and None, daemon=True)
    limit = None if timeout is None else clock + timeout + 0.5
    answer = None
    try:
        process.stdin.write(len(payload).to_bytes(8, "little") + payload)
        process.stdin.flush()
        reader.start()
        while answer is None:
            if stop is not None and stop.is_set():
                break  # another solver has the answer: the process is killed below
            if limit is not None and time.perf_counter() > limit:
                _ask_to_stop(process)
            if limit is not None and time.perf_counter() > limit + GRACE:
                break
            try:
                message = json.loads(lines.get(timeout=0.05))
            except queue.Empty:
                if process.poll() is not None and lines.empty() and not reader.is_alive():
                    error = process.stderr.read().decode(errors="replace").strip().splitlines()
                    raise SolverError(f"the CP-SAT process ended without an answer: {error[-1] if error else process.returncode}") from None
                continue
            if message["kind"] == "solution":
                if on_solution is not None:
                    on_solution(message["objective"], message["bound"])
            else:
                answer = message
    finally:
        if answer is None:
            process.kill()
        try:
            process.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    seconds = time.perf_counter() - clock
    if answer is None:
        return CpSatResult("unknown", None, None, None, seconds)
    mask = None if answer["mask"] is None else np.asarray(answer["mask"], dtype=bool)
    objective = None if mask is None else float(problem.weights @ mask)
    if answer["status"] == "optimal":
        return CpSatResult("optimal", mask, objective, objective, seconds)
    if answer["status"] == "feasible":
        return CpSatResult("feasible", mask, objective, answer["bound"], seconds)
    return CpSatResult(answer["status"], None, None, None, seconds)


def _ask_to_stop(process: subprocess.Popen) -> None:
    try:
        process.stdin.write(b"stop\n")
        process.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _main() -> None:
    """The child process: read the model, solve it, print JSON lines (solutions, then the answer);
    a line on stdin stops the search."""
    from ortools.sat.python import cp_model

    size = int.from_bytes(sys.stdin.buffer.read(8), "little")
    data, indices, indptr, right, weights, deadline, workers, blocked = pickle.loads(sys.stdin.buffer.read(size))
    model = cp_model.CpModel()
    m = [model.NewBoolVar(f"m{u}") for u in range(weights.size)]
    for i in range(right.size):
        start, end = indptr[i], indptr[i + 1]
        model.Add(sum(int(c) * m[int(u)] for u, c in zip(indices[start:end], data[start:end]) if c != 0) >= int(right[i]))
    for mask in blocked:
        model.AddBoolOr([v.Not() if keep else v for v, keep in zip(m, mask)])
    model.Minimize(sum(int(w) * v for w, v in zip(weights, m) if w != 0))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = max(1, workers)
    if deadline is not None:
        solver.parameters.max_time_in_seconds = max(deadline - time.time(), 0.01)

    def say(**message) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    class Reporter(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            say(kind="solution", objective=float(self.ObjectiveValue()), bound=float(self.BestObjectiveBound()))

    def watch() -> None:
        sys.stdin.buffer.readline()
        solver.StopSearch()

    threading.Thread(target=watch, daemon=True).start()
    status = solver.Solve(model, Reporter())
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        name = "optimal" if status == cp_model.OPTIMAL else "feasible"
        say(kind="done", status=name, mask=[bool(solver.BooleanValue(v)) for v in m], bound=float(solver.BestObjectiveBound()))
    else:
        say(kind="done", status="infeasible" if status == cp_model.INFEASIBLE else "unknown", mask=None, bound=None)


if __name__ == "__main__":
    _main()
