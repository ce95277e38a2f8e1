"""Several backends raced in threads on one problem; the first proof wins."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Mapping

from smugir.solvers.base import Backend, OnProgress, Problem, Solution, SolveProgress, Tracker, bound_reaches, proven

HEAD_START = 0.5  # seconds the first member runs alone: easy problems are proven by it alone, so which of two
# equal optimal masks they get does not depend on a race (batch and eval results equal the serial run's)
LATE = 0.5  # seconds past the time limit after which the portfolio stops its members


def race(problem: Problem, timeout: float | None, solutions: int, members: Mapping[str, Backend],
         on_progress: OnProgress | None = None, stop: threading.Event | None = None, **options) -> list[Solution]:
    """Race `members` in threads (HiGHS releases the GIL, CP-SAT runs in its own process), all but
    the first after HEAD_START, each given `workers` (default cores - 1): the first proof (optimal or
    infeasible) stops the others; without one, the best mask with the best bound of any member
    (each is proven for the same problem, so the largest holds)."""
    names = list(members)
    stop_all = stop or threading.Event()
    tracker = Tracker("portfolio", on_progress)
    results: dict[str, list[Solution] | BaseException] = {}
    finished = threading.Semaphore(0)
    share = int(options.pop("workers", None) or max(1, (os.cpu_count() or 2) - 1))

    def run(name: str) -> None:
        def report(progress: SolveProgress) -> None:
            tracker.report(progress.incumbent, progress.bound)

        if name != names[0] and stop_all.wait(HEAD_START):
            finished.release()
            return
        try:
            results[name] = members[name](problem, timeout, solutions, on_progress=report, stop=stop_all, workers=share, **options)
            if proven(results[name], solutions):
                stop_all.set()
        except BaseException as exc:  # noqa: BLE001 (reported below if no member succeeds)
            results[name] = exc
        finally:
            finished.release()

    threads = [threading.Thread(target=run, args=(name,), name=f"smugir-{name}", daemon=True) for name in names]
    for thread in threads:
        thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout + LATE
    try:
        for _ in threads:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not finished.acquire(timeout=left) or stop_all.is_set():
                break  # out of time (members still running are stopped below), or a proof
    finally:
        stop_all.set()
        for thread in threads:
            thread.join()
    answers = {name: r for name, r in results.items() if not isinstance(r, BaseException)}
    if not answers:
        raise next(iter(results.values()))
    proofs = [r for r in answers.values() if proven(r, solutions)]
    if proofs:
        winner = min(proofs, key=lambda r: sum(s.seconds for s in r))
    else:
        winner = min(answers.values(), key=lambda r: (-sum(s.mask is not None for s in r), r[0].objective is None, r[0].objective or 0.0))
        bounds = [r[0].bound for r in answers.values() if r[0].bound is not None]
        first = winner[0]
        if bounds and first.mask is not None:
            bound = max(bounds)
            status = "optimal" if bound_reaches(bound, first.objective, problem.weights) else first.status
            winner = [replace(first, status=status, bound=first.objective if status == "optimal" else bound), *winner[1:]]
    return [replace(s, solver=f"portfolio: {s.solver}") for s in winner]
