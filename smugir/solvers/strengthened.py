"""The exact layer around a first-layer backend, for one solution: presolve (smugir/presolve.py),
an incumbent from the LP relaxation and local search, reduced-cost fixing against it
(smugir/incumbent.py), and the backend only searches for a strictly better mask (or, if it takes a
start, the presolved problem from the incumbent). "optimal" is only said with a proof: a bound
from a relaxation (the backend's, the LP's safe Lagrangian bound, or presolve's reductions, each
of which keeps an optimal mask) that reaches the objective of a mask that passes the strict
float64 check."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import scipy.sparse

from smugir.problem import MaskProblem
from smugir.solvers.base import Backend, OnProgress, Solution, Tracker, bound_reaches, checked, stopped, time_left

INCUMBENT_SECONDS = 0.25  # local search budget before the exact search


def strengthen(backend: Backend, takes_start: bool) -> Backend:
    """`backend` inside the exact layer; `takes_start`: given the incumbent as a start instead of an
    objective cutoff row (HiGHS does better so, by measurement)."""

    def run(problem: MaskProblem, timeout: float | None, solutions: int = 1, on_progress: OnProgress | None = None,
            stop: threading.Event | None = None, **options) -> list[Solution]:
        return [strengthened(problem, backend, takes_start, timeout, on_progress, stop, options)]

    return run


def strengthened(problem: MaskProblem, backend: Backend, takes_start: bool, timeout: float | None,
                 on_progress: OnProgress | None, stop: threading.Event | None, options: dict[str, Any]) -> Solution:
    """One optimal (or the best found) mask of `problem`. A mask that fails the original problem
    (presolve's float sums misjudged a tie) sends the whole problem to the backend unreduced."""
    from smugir.incumbent import incumbent, reduced_cost_fixing, relaxation
    from smugir.presolve import presolve

    clock = time.monotonic()
    deadline = None if timeout is None else clock + timeout
    pre = presolve(problem)
    details: dict[str, Any] = {"presolve": {**pre.removed, "units_left": int(pre.free.size), "rows_left": pre.problem.n_constraints}}
    tracker = Tracker("smugir", on_progress)

    def finished(status: str, mask: np.ndarray | None, bound: float | None, solver: str, **more) -> Solution:
        objective = None if mask is None else problem.objective(mask)
        if status == "optimal":
            bound = objective
        seconds = time.monotonic() - clock
        solution = checked(problem, Solution(status, mask, objective, bound, solver, seconds, {**details, **more}))
        if solution.mask is None and mask is not None and not stopped(stop):  # a reduction misjudged a tie: solve unreduced
            return backend(problem, time_left(deadline), 1, on_progress=on_progress, stop=stop, **options)[0]
        tracker.report(solution.objective, solution.bound)
        return solution

    if pre.infeasible:
        return finished("infeasible", None, None, "smugir presolve")
    reduced = pre.problem
    if reduced.n_units == 0 or reduced.n_constraints == 0:
        return finished("optimal", pre.expand(np.zeros(reduced.n_units, dtype=bool)), None, "smugir presolve")
    lp = relaxation(reduced, None if deadline is None else 0.3 * (deadline - time.monotonic()))
    start = incumbent(reduced, lp, seconds=INCUMBENT_SECONDS if timeout is None else min(INCUMBENT_SECONDS, 0.05 * timeout)) if lp is not None else None
    search, offset, fix_one, keep = reduced, pre.fixed_weight, np.zeros(reduced.n_units, dtype=bool), np.arange(reduced.n_units)
    if lp is not None:
        details["lp_bound"] = lp.bound + pre.fixed_weight
        tracker.report(None, lp.bound + pre.fixed_weight)
    cutoff = start is not None and not takes_start
    if start is not None:
        value = reduced.objective(start)
        details["start_objective"] = value + pre.fixed_weight
        tracker.report(value + pre.fixed_weight, None)
        fixing = reduced_cost_fixing(reduced, lp, value)
        details["reduced_cost_fixed"] = int(fixing.zero.sum() + fixing.one.sum())
        if fixing.proven:
            return finished("optimal", pre.expand(start), None, "smugir incumbent + LP bound")
    if cutoff:
        keep = np.flatnonzero(~(fixing.zero | fixing.one))
        fix_one = fixing.one
        search = better_than(reduced, value, keep, fix_one)
        offset += float(reduced.weights[fix_one].sum())

    def searched(mask: np.ndarray) -> np.ndarray:
        inner = fix_one.copy()
        inner[keep] = mask
        return pre.expand(inner)

    inner_tracker = Tracker("", lambda p: tracker.report(p.incumbent, p.bound), offset)
    extra = {"start": start} if start is not None and not cutoff else {}
    result = backend(search, time_left(deadline), 1, on_progress=lambda p: inner_tracker.report(p.incumbent, p.bound), stop=stop, **options, **extra)[0]
    solver = result.solver
    more = {"backend": dict(result.details)}
    lp_bound = None if lp is None else lp.bound + pre.fixed_weight
    if not cutoff:
        mask = None if result.mask is None else searched(result.mask)
        bound = best_bound(lp_bound, None if result.bound is None else result.bound + offset)
        status = result.status
        if start is not None and (mask is None or problem.objective(mask) > reduced.objective(start) + pre.fixed_weight):
            mask, status = pre.expand(start), "feasible"
            if bound is not None and bound_reaches(bound, problem.objective(mask), problem.weights):
                status = "optimal"
        return finished(status, mask, bound, solver, **more)
    incumbent_value = reduced.objective(start) + pre.fixed_weight
    if result.status == "infeasible":  # nothing strictly better exists: the incumbent is optimal
        return finished("optimal", pre.expand(start), None, f"{solver} (no better mask than the incumbent)", **more)
    search_bound = None if result.bound is None else min(result.bound + offset, incumbent_value)
    bound = best_bound(lp_bound, search_bound)
    if result.mask is not None and result.status in ("optimal", "feasible"):
        return finished(result.status, searched(result.mask), bound, solver, **more)
    status = "optimal" if bound is not None and bound_reaches(bound, incumbent_value, problem.weights) else "feasible"
    return finished(status, pre.expand(start), bound, solver, **more)


def best_bound(*bounds: float | None) -> float | None:
    valid = [b for b in bounds if b is not None]
    return max(valid) if valid else None


def better_than(problem: MaskProblem, value: float, keep: np.ndarray, fix_one: np.ndarray) -> MaskProblem:
    """`problem` restricted to masks with objective < value, over the units `keep` (the units in
    `fix_one` kept, all others dropped): rows minus the fixed units' part, plus -w.m > -(value - fixed)."""
    matrix = scipy.sparse.csr_array(problem.coefficients, dtype=np.float64)
    bounds = problem.bounds - matrix @ fix_one.astype(np.float64)
    weights = problem.weights[keep]
    cutoff = scipy.sparse.csr_array(-weights.reshape(1, -1))
    rows = scipy.sparse.vstack([matrix[:, keep], cutoff], format="csr")
    right = np.concatenate([bounds, [-(value - float(problem.weights[fix_one].sum()))]])
    coefficients = rows.toarray() if isinstance(problem.coefficients, np.ndarray) else rows
    return MaskProblem(coefficients, right, weights, dict(problem.metadata))
