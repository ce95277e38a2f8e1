"""The CP-SAT process (`python -m smugir.encoders.cpsat_child`): solves the models its parent sends,
one after another, until its stdin closes.

ortools bundles a HiGHS that clashes with highspy's in one process, so CP-SAT runs here. Importing
ortools' cp_model takes about a second (it imports pandas), more than many masking problems take
to solve, so the parent keeps this process warm between solves (`smugir.encoders.cpsat`). It reads
only the standard library and ortools, and dies with its parent (PR_SET_PDEATHSIG).

Messages from the parent: one byte of kind, 8 bytes of length (little-endian), then the body.
- b"M": a pickled (solve id, data, indices, indptr, right, weights, deadline, workers, blocked) of
  plain Python lists and numbers: the integer CSR rows `sum data m >= right`, minimise weights.m;
- b"S": the solve id (ASCII) to stop: that search ends at once (a stop for a solve that has not
  started yet makes it end at once too).
Replies are JSON lines carrying the solve id: "solution" (incumbent, bound) while searching, then
one "done" (status, mask, bound).
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import sys
import threading
import time


def _read_messages(stream, jobs: queue.Queue, stops: set, lock: threading.Lock, current: dict) -> None:
    while True:
        head = stream.read(9)
        if len(head) < 9:
            break
        body = stream.read(int.from_bytes(head[1:], "little"))
        if head[:1] == b"M":
            jobs.put(pickle.loads(body))
        elif head[:1] == b"S":
            with lock:
                stops.add(int(body))
                if current.get("id") == int(body):
                    current["solver"].StopSearch()
    with lock:  # the parent is gone: stop whatever runs, and end
        if current.get("solver") is not None:
            current["solver"].StopSearch()
    jobs.put(None)


def _say(**message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _solve(job: tuple, cp_model, stops: set, lock: threading.Lock, current: dict) -> None:
    solve_id, data, indices, indptr, right, weights, deadline, workers, blocked = job
    model = cp_model.CpModel()
    m = [model.NewBoolVar(f"m{u}") for u in range(len(weights))]
    for i, bound in enumerate(right):
        start, end = indptr[i], indptr[i + 1]
        model.Add(sum(c * m[u] for u, c in zip(indices[start:end], data[start:end]) if c != 0) >= bound)
    for mask in blocked:
        model.AddBoolOr([v.Not() if keep else v for v, keep in zip(m, mask)])
    model.Minimize(sum(w * v for w, v in zip(weights, m) if w != 0))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = max(1, workers)
    if deadline is not None:
        solver.parameters.max_time_in_seconds = max(deadline - time.time(), 0.01)

    class Reporter(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            _say(id=solve_id, kind="solution", objective=float(self.ObjectiveValue()), bound=float(self.BestObjectiveBound()))

    with lock:
        if solve_id in stops:
            _say(id=solve_id, kind="done", status="unknown", mask=None, bound=None)
            return
        current.update(id=solve_id, solver=solver)
    try:
        status = solver.Solve(model, Reporter())
    finally:
        with lock:
            current.update(id=None, solver=None)
            stops.discard(solve_id)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        name = "optimal" if status == cp_model.OPTIMAL else "feasible"
        _say(id=solve_id, kind="done", status=name, mask=[bool(solver.BooleanValue(v)) for v in m], bound=float(solver.BestObjectiveBound()))
    else:
        _say(id=solve_id, kind="done", status="infeasible" if status == cp_model.INFEASIBLE else "unknown", mask=None, bound=None)


def main() -> None:
    from smugir.executor import die_with

    die_with(os.getppid())
    from ortools.sat.python import cp_model

    jobs: queue.Queue = queue.Queue()
    stops: set = set()
    lock = threading.Lock()
    current: dict = {}
    threading.Thread(target=_read_messages, args=(sys.stdin.buffer, jobs, stops, lock, current), daemon=True).start()
    while (job := jobs.get()) is not None:
        _solve(job, cp_model, stops, lock, current)


if __name__ == "__main__":
    main()
