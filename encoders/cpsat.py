"""Masking problems for CP-SAT (ortools), which needs integer coefficients.

Each row a.m > b is scaled by a power of two s (exact in float64: only the exponent changes) so
that its largest number is about 2^30, then rounded in one of two directions:
- relaxed:    sum ceil(s a_u) m_u >= floor(s b) + 1. Every exact solution satisfies it, because
  sum ceil(s a_u) m_u >= s a.m > s b and the left side is an integer. CP-SAT's bound on this
  model is a proven bound on the exact problem, and an optimum of it that passes the exact check
  is an exact optimum.
- restricted: sum floor(s a_u) m_u >= floor(s b) + 1. Every solution of it is exact, because
  s a.m >= sum floor(s a_u) m_u > s b.
The caller (smugir/solvers/cpsat.py) solves the relaxed model first and the restricted one only when the
relaxed optimum fails the exact check (a row met within 2^-30 of its bound).
"""

from __future__ import annotations

import atexit
import itertools
import json
import pickle
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Callable

import numpy as np
import scipy.sparse

from smugir.errors import SolverError
from smugir.isolation import child_environment, python_module_command
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


ERROR_BYTES = 4096  # the end of the child's stderr kept for an error message


class _Child:
    """A CP-SAT process (`smugir.encoders.cpsat_child`) and the lines it prints, read by a thread;
    its stderr is drained by another (a full pipe would block it: PYTHONVERBOSE=1 writes 100s of KB)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(python_module_command("smugir.encoders.cpsat_child"), env=child_environment(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.stderr_tail = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def _drain(self) -> None:
        while chunk := self.process.stderr.read1(1 << 16):  # in chunks: a line may have no end
            self.stderr_tail = (self.stderr_tail + chunk)[-ERROR_BYTES:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, kind: bytes, body: bytes) -> None:
        self.process.stdin.write(kind + len(body).to_bytes(8, "little") + body)
        self.process.stdin.flush()

    def ask_to_stop(self, solve_id: int) -> None:
        try:
            self.send(b"S", str(solve_id).encode("ascii"))
        except (BrokenPipeError, OSError, ValueError):
            pass

    def error(self) -> str:
        """The child's last stderr line (once it ended), else its exit code."""
        if not self.alive():
            self.drain.join(timeout=GRACE)
        lines = self.stderr_tail.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines and not self.alive() else str(self.process.returncode)

    def close(self, kill: bool = False) -> None:
        """End the process: closing stdin ends an idle one; `kill` (or no exit within GRACE) kills it."""
        if kill:
            self.process.kill()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.drain.join(timeout=GRACE)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


_idle: list[_Child] = []  # warm processes, ready for the next solve
_idle_lock = threading.Lock()
_solve_ids = itertools.count(1)
MAX_IDLE = 2


def prewarm() -> None:
    """Start a CP-SAT process now, so that its start-up (about a second) overlaps other work."""
    with _idle_lock:
        if not any(child.alive() for child in _idle):
            _idle.append(_Child())


def _take() -> _Child:
    with _idle_lock:
        while _idle:
            child = _idle.pop()
            if child.alive():
                return child
            child.close()
    return _Child()


def _give_back(child: _Child) -> None:
    with _idle_lock:
        if child.alive() and len(_idle) < MAX_IDLE:
            _idle.append(child)
            return
    child.close()


@atexit.register
def shutdown() -> None:
    """End every warm process (they also die with this one, by PR_SET_PDEATHSIG)."""
    with _idle_lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.close()


def solve_cpsat(
    problem: MaskProblem,
    relaxed: bool,
    timeout: float | None,
    workers: int = 1,
    on_solution: Callable[[float, float], None] | None = None,
    stop: threading.Event | None = None,
    blocked: tuple[np.ndarray, ...] = (),
) -> CpSatResult:
    """One CP-SAT run in a warm child process (see `smugir.encoders.cpsat_child`: ortools bundles a
    HiGHS that clashes with highspy's in one process); `on_solution(incumbent, bound)` on every
    improving solution; `stop` ends it early; each mask in `blocked` is excluded by a no-good clause.
    No search outlives the call: the process is asked to stop, and killed if it does not answer
    within GRACE seconds; a process that answered goes back to the pool for the next solve."""
    rows, right = integer_rows(problem, relaxed)
    weights = integer_weights(problem.weights)
    clock = time.perf_counter()
    deadline = None if timeout is None else time.time() + timeout  # wall clock: a cold child's start-up counts
    solve_id = next(_solve_ids)
    payload = pickle.dumps((solve_id, rows.data.tolist(), rows.indices.tolist(), rows.indptr.tolist(), right.tolist(),
                            weights.tolist(), deadline, int(workers), [np.asarray(b, bool).tolist() for b in blocked]))
    child = _take()
    limit = None if timeout is None else clock + timeout + 0.5
    answer, asked = None, None
    try:
        child.send(b"M", payload)
        while answer is None:
            now = time.perf_counter()
            if asked is None and ((stop is not None and stop.is_set()) or (limit is not None and now > limit)):
                child.ask_to_stop(solve_id)  # another solver has the answer, or time is up
                asked = now
            if asked is not None and now > asked + GRACE:
                break
            try:
                message = json.loads(child.lines.get(timeout=0.05))
            except queue.Empty:
                if not child.alive() and child.lines.empty() and not child.reader.is_alive():
                    raise SolverError(f"the CP-SAT process ended without an answer: {child.error()}") from None
                continue
            if message.get("id") != solve_id:
                continue  # a line of an earlier solve
            if message["kind"] == "solution":
                if on_solution is not None and asked is None:
                    on_solution(message["objective"], message["bound"])
            else:
                answer = message
    except (BrokenPipeError, OSError) as exc:
        child.close(kill=True)
        raise SolverError(f"the CP-SAT process could not be reached: {exc}") from None
    if answer is None:
        child.close(kill=True)
    else:
        _give_back(child)
    seconds = time.perf_counter() - clock
    if answer is None or (stop is not None and stop.is_set()):
        return CpSatResult("unknown", None, None, None, seconds)
    mask = None if answer["mask"] is None else np.asarray(answer["mask"], dtype=bool)
    objective = None if mask is None else float(problem.weights @ mask)
    if answer["status"] == "optimal":
        return CpSatResult("optimal", mask, objective, objective, seconds)
    if answer["status"] == "feasible":
        return CpSatResult("feasible", mask, objective, answer["bound"], seconds)
    return CpSatResult(answer["status"], None, None, None, seconds)


