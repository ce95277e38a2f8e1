"""Solver backends behind one call, `solve`, and the `Solution` every backend returns.

Backends (one registry line each): `portfolio` (the default: HiGHS and CP-SAT raced in threads,
the first proof wins), `highs` (MILP), `cpsat` (ortools CP-SAT on integer roundings, see
encoders/cpsat.py), `z3` (pySMT + z3, cardinality-bound search), `pysmt:NAME` (the same search on
any installed pySMT solver) and `z3-optimize` (z3's own Optimize on the same formula).

For a first-layer problem and one solution, highs, cpsat and portfolio run inside the exact layer
(`_strengthened`): presolve (smugir/presolve.py), an incumbent from the LP relaxation and local
search, reduced-cost fixing against it (smugir/incumbent.py), and the backend only searches for a
strictly better mask. Every mask is checked again here, exactly, on the original problem, and
"optimal" is only said with a proof: a bound from a relaxation (HiGHS with `>=`, CP-SAT's relaxed
rounding, the LP's safe Lagrangian bound, or presolve's reductions, each of which keeps an
optimal mask) that reaches the objective of a mask that passes the strict float64 check.

Every solve has a time budget (`DEFAULT_TIMEOUT`, None for unlimited) and reports its progress as
`SolveProgress` (incumbent, bound, gap) through `on_progress`.
"""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import scipy.sparse

from smugir.errors import SolverError
from smugir.problem import MaskProblem, NetworkMaskProblem

Problem = MaskProblem | NetworkMaskProblem
STATUSES = ("optimal", "feasible", "infeasible", "unknown")
DEFAULT_SOLVER = "portfolio"
DEFAULT_TIMEOUT = 60.0  # seconds; None (CLI: --timeout 0 or none) for no limit
MAX_TIMEOUT = 1e7  # seconds (116 days): beyond it the clocks and waits of the OS overflow; None is no limit
PORTFOLIO = ("highs", "cpsat")
HEAD_START = 0.5  # seconds HiGHS runs alone in the portfolio: easy problems are proven by HiGHS alone, so which of two
# equal optimal masks they get does not depend on a race (batch and eval results equal the serial run's)
LATE = 0.5  # seconds past the time limit after which the portfolio stops its members
INCUMBENT_SECONDS = 0.25  # local search budget before the exact search


@dataclass(frozen=True)
class Solution:
    status: str  # optimal (proven) | feasible (incumbent + bound) | infeasible | unknown
    mask: np.ndarray | None  # (n_units,) bool
    objective: float | None
    bound: float | None  # best proven lower bound on the optimum
    solver: str
    seconds: float
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)


@dataclass(frozen=True)
class SolveProgress:
    """A snapshot of a running solve: the best mask's objective so far and the best proven bound."""

    solver: str
    seconds: float
    incumbent: float | None
    bound: float | None

    @property
    def gap(self) -> float | None:
        return gap(self.incumbent, self.bound)


OnProgress = Callable[[SolveProgress], None]


def gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap (objective - bound) / objective, HiGHS's definition; 0 when proven, None when unknown."""
    if objective is None or bound is None:
        return None
    return max(objective - bound, 0.0) / max(abs(objective), 1.0)


class _Tracker:
    """Merges progress reports (several backends, several phases) into one monotone snapshot."""

    def __init__(self, solver: str, on_progress: OnProgress | None, offset: float = 0.0):
        self.solver, self.on_progress, self.offset = solver, on_progress, offset
        self.clock = time.monotonic()
        self.incumbent: float | None = None
        self.bound: float | None = None
        self.lock = threading.Lock()

    def report(self, incumbent: float | None, bound: float | None) -> None:
        with self.lock:
            if incumbent is not None and (self.incumbent is None or incumbent + self.offset < self.incumbent):
                self.incumbent = incumbent + self.offset
            if bound is not None and (self.bound is None or bound + self.offset > self.bound):
                self.bound = bound + self.offset
            if self.incumbent is not None and self.bound is not None:
                self.bound = min(self.bound, self.incumbent)
            snapshot = SolveProgress(self.solver, time.monotonic() - self.clock, self.incumbent, self.bound)
        if self.on_progress is not None:
            self.on_progress(snapshot)


def _checked(problem: Problem, solution: Solution) -> Solution:
    """Never pass on a mask that fails the exact problem; say what happened instead."""
    if solution.mask is None or problem.is_satisfied(solution.mask):
        return solution
    details = {**solution.details, "rejected": "the solver's mask fails the exact float64 constraints"}
    return Solution("unknown", None, None, solution.bound, solution.solver, solution.seconds, details)


def _highs(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
           stop: threading.Event | None = None, start: np.ndarray | None = None, **options) -> list[Solution]:
    """HiGHS, first on the relaxation (`>=` for `>`): when its optimal mask passes the exact strict
    check, it is optimal for the strict problem too, proven in one solve. Only a mask that ties a
    bound within HiGHS's tolerance sends it to models with a strict margin, and then the
    relaxation's bound is what is proven."""
    from smugir.encoders.milp import STRICT_MARGIN, MilpModel, version

    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    margins = (0.0, STRICT_MARGIN, STRICT_MARGIN * 100, STRICT_MARGIN * 10_000)
    if isinstance(problem, NetworkMaskProblem):
        start = _irreducible_mask(replace(problem, margin=problem.margin + STRICT_MARGIN))
    while len(found) < solutions:
        relaxed_bound = None
        for margin in margins:
            model = MilpModel(problem, margin)
            for mask in blocked:
                model.block(mask)
            if start is not None and not blocked:
                model.start_from(start)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
            tracker = _Tracker(version(), on_progress)
            # a margin model's bound is no bound on the problem: only its incumbents are reported
            report = tracker.report if margin == 0.0 else (lambda incumbent, bound: tracker.report(incumbent, None))
            result = model.solve(left, report if on_progress is not None else None, stop)
            if margin == 0.0:
                relaxed_bound = result.bound
            if result.mask is None or problem.is_satisfied(result.mask) or (stop is not None and stop.is_set()):
                break
        status, bound = result.status, result.bound
        if margin > 0:  # the margin model is stricter than the problem: only the relaxation's bound holds
            bound = relaxed_bound
            if status == "optimal" and (bound is None or not _bound_reaches(bound, result.objective, problem.weights)):
                status = "feasible"
            elif status == "infeasible":  # masks with a slack below the margin may still exist
                status = "unknown"
        details = {"gap": result.gap, "strict_margin": margin}
        solution = _checked(problem, Solution(status, result.mask, result.objective, bound, version(), result.seconds, details))
        found.append(solution)
        if solution.mask is None or solution.status != "optimal" or (stop is not None and stop.is_set()):
            break
        blocked.append(solution.mask)
    return found


def _cpsat(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
           stop: threading.Event | None = None, workers: int | None = None, **options) -> list[Solution]:
    """CP-SAT on the relaxed rounding (its bound is proven, its optimum proven when the mask passes
    the exact check); a mask that fails it sends the search to the restricted rounding, whose
    masks are all exact, and then "optimal" needs its objective to reach the relaxed bound."""
    from smugir.encoders.cpsat import solve_cpsat, version

    if isinstance(problem, NetworkMaskProblem):
        raise SolverError("cpsat solves first-layer masking problems; use highs or z3 for --method network")
    workers = int(workers or os.cpu_count() or 1)
    deadline = None if timeout is None else time.monotonic() + timeout
    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    while len(found) < solutions:
        tracker = _Tracker(version(), on_progress)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
        result = solve_cpsat(problem, True, left, workers, tracker.report, stop, tuple(blocked))
        rounding = "relaxed"
        status, mask, bound = result.status, result.mask, result.bound
        if mask is not None and not problem.is_satisfied(mask) and not (stop is not None and stop.is_set()):
            left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
            restricted = solve_cpsat(problem, False, left, workers, lambda incumbent, _: tracker.report(incumbent, None), stop, tuple(blocked))
            rounding = "restricted"
            mask = restricted.mask
            if restricted.status == "infeasible" or mask is None:
                status = "unknown"
            elif bound is not None and _bound_reaches(bound, restricted.objective, problem.weights):
                status = "optimal"
            else:
                status = "feasible"
        objective = None if mask is None else problem.objective(mask)
        if status == "optimal":
            bound = objective
        solution = _checked(problem, Solution(status, mask, objective, bound, version(), result.seconds, {"rounding": rounding, "workers": workers}))
        found.append(solution)
        if solution.mask is None or solution.status != "optimal" or (stop is not None and stop.is_set()):
            break
        blocked.append(solution.mask)
    return found


def _portfolio(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
               stop: threading.Event | None = None, strengthened: bool = False, **options) -> list[Solution]:
    """Race PORTFOLIO's backends in threads (HiGHS releases the GIL, CP-SAT runs in its own process),
    the later ones after HEAD_START: the first proof (optimal or infeasible) stops the others;
    without one, the best mask with the best bound of any member (each is proven for the same
    problem, so the largest holds)."""
    members = PORTFOLIO if isinstance(problem, MaskProblem) else ("highs",)
    stop_all = stop or threading.Event()
    tracker = _Tracker("portfolio", on_progress)
    results: dict[str, list[Solution] | BaseException] = {}
    finished = threading.Semaphore(0)
    share = max(1, (os.cpu_count() or 2) - 1)

    def run(name: str) -> None:
        def report(progress: SolveProgress) -> None:
            tracker.report(progress.incumbent, progress.bound)

        extra = {"workers": share} if name == "cpsat" else {}
        if name != members[0] and stop_all.wait(HEAD_START):
            finished.release()
            return
        try:
            if strengthened:
                results[name] = [_strengthened(problem, name, timeout, report, {**options, "stop": stop_all, **extra})]
            else:
                results[name] = BACKENDS[name](problem, timeout, solutions, on_progress=report, stop=stop_all, **options, **extra)
            if _proven(results[name], solutions):
                stop_all.set()
        except BaseException as exc:  # noqa: BLE001 (reported below if no member succeeds)
            results[name] = exc
        finally:
            finished.release()

    threads = [threading.Thread(target=run, args=(name,), name=f"smugir-{name}", daemon=True) for name in members]
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
    proofs = [r for r in answers.values() if _proven(r, solutions)]
    if proofs:
        winner = min(proofs, key=lambda r: sum(s.seconds for s in r))
    else:
        winner = min(answers.values(), key=lambda r: (-sum(s.mask is not None for s in r), r[0].objective is None, r[0].objective or 0.0))
        bounds = [r[0].bound for r in answers.values() if r[0].bound is not None]
        first = winner[0]
        if bounds and first.mask is not None:
            bound = max(bounds)
            status = "optimal" if _bound_reaches(bound, first.objective, problem.weights) else first.status
            winner = [replace(first, status=status, bound=first.objective if status == "optimal" else bound), *winner[1:]]
    return [replace(s, solver=f"portfolio: {s.solver}") for s in winner]


def _proven(found: list[Solution], solutions: int) -> bool:
    """Every mask asked for is proven optimal, or the search proved that no (further) mask exists."""
    return all(s.status in ("optimal", "infeasible") for s in found) and (len(found) >= solutions or found[-1].status == "infeasible")


def _bound_reaches(bound: float, objective: float, weights: np.ndarray) -> bool:
    """Whether a lower bound proves `objective` optimal (integer weights: rounding the bound up)."""
    if np.all(weights == np.round(weights)):
        return float(np.ceil(bound - 1e-6)) >= objective
    return bound >= objective - 1e-9


def _irreducible_mask(problem: NetworkMaskProblem) -> np.ndarray | None:
    """A first mask for the whole-network MILP: drop units one at a time, least input change first,
    while the exact float64 check still holds. Irreducible, not minimal; None if even all units fail."""
    mask = np.ones(problem.n_units, dtype=bool)
    if not problem.is_satisfied(mask):
        return None
    change = np.bincount(problem.unit_of, problem.delta**2, minlength=problem.n_units)
    for unit in np.argsort(change, kind="stable"):
        mask[unit] = False
        if not problem.is_satisfied(mask):
            mask[unit] = True
    return mask


def _pysmt_search(name: str) -> Callable[..., list[Solution]]:
    def run(problem: Problem, timeout: float | None, solutions: int, **options) -> list[Solution]:
        from smugir.encoders.pysmt import encode, encode_network, minimise

        mode = options.get("numeric_mode", "scaled")
        digits = int(options.get("digits", 9))
        deadline = None if timeout is None else time.monotonic() + timeout
        found: list[Solution] = []
        for _ in range(solutions):
            encoding = encode_network(problem) if isinstance(problem, NetworkMaskProblem) else encode(problem, mode, digits)
            solver = _pysmt_solver(encoding, name)
            blocks = [encoding.blocking_clause(f.mask) for f in found]
            start = time.perf_counter()
            try:
                result = minimise(encoding, solver, problem.weights, deadline, blocks)
            finally:
                solver.exit()
            details = {"calls": result.calls, "bounds_tried": result.bounds_tried, "numeric_mode": "exact" if isinstance(problem, NetworkMaskProblem) else mode}
            if mode == "scaled" and not isinstance(problem, NetworkMaskProblem):
                details["digits"] = digits
            solution = _checked(problem, Solution(result.status, result.mask, result.objective, result.bound, _pysmt_version(name), time.perf_counter() - start, details))
            found.append(solution)
            if solution.status != "optimal":
                break
        return found

    return run


def _pysmt_solver(encoding, name: str):
    factory = encoding.environment.factory
    available = sorted(factory.all_solvers())
    if name not in available:
        raise SolverError(f"pySMT solver {name!r} is not installed; available here: {', '.join(available) or 'none'}")
    return factory.Solver(name=name, logic=encoding.logic)


def _pysmt_version(name: str) -> str:
    if name == "z3":
        import z3

        return f"pysmt:z3 (z3 {z3.get_version_string()})"
    return f"pysmt:{name}"


def _z3_optimize(problem: Problem, timeout: float | None, solutions: int, **options) -> list[Solution]:
    import z3

    from smugir.encoders.pysmt import encode, encode_network

    found: list[Solution] = []
    for _ in range(solutions):
        encoding = encode_network(problem) if isinstance(problem, NetworkMaskProblem) else encode(problem, options.get("numeric_mode", "scaled"))
        solver = _pysmt_solver(encoding, "z3")
        convert = solver.converter.convert
        optimize = z3.Optimize()
        if timeout is not None:
            optimize.set("timeout", max(1, int(timeout * 1000)))
        optimize.add(convert(encoding.constraints))
        for previous in found:
            optimize.add(convert(encoding.blocking_clause(previous.mask)))
        symbols = [convert(m) for m in encoding.symbols]
        handle = optimize.minimize(convert(encoding.objective_term()))
        start = time.perf_counter()
        answer = optimize.check()
        seconds = time.perf_counter() - start
        mask = None
        if answer != z3.unsat:
            try:
                model = optimize.model()
                mask = np.array([z3.is_true(model.eval(m, model_completion=True)) for m in symbols], dtype=bool)
            except z3.Z3Exception:
                mask = None
        lower = handle.lower()
        bound = float(Fraction(str(lower))) if z3.is_rational_value(lower) or z3.is_int_value(lower) else None
        if answer == z3.sat:
            status, bound = "optimal", float(problem.weights @ mask)
        elif answer == z3.unsat:
            status = "infeasible"
        else:
            status = "feasible" if mask is not None and problem.is_satisfied(mask) else "unknown"
        objective = float(problem.weights @ mask) if mask is not None else None
        solution = _checked(problem, Solution(status, mask, objective, bound, f"z3-optimize (z3 {z3.get_version_string()})", seconds, {}))
        solver.exit()
        found.append(solution)
        if solution.status != "optimal":
            break
    return found


BACKENDS: dict[str, Callable[..., list[Solution]]] = {
    "portfolio": _portfolio,
    "highs": _highs,
    "cpsat": _cpsat,
    "z3": _pysmt_search("z3"),
    "z3-optimize": _z3_optimize,
}
STRENGTHENED = ("portfolio", "highs", "cpsat")  # backends run inside the exact layer (presolve, incumbent, fixing)
STARTS_FROM_INCUMBENT = ("highs",)  # given the incumbent as a start instead of an objective cutoff row


def solve(
    problem: Problem,
    solver: str = DEFAULT_SOLVER,
    timeout: float | None = DEFAULT_TIMEOUT,
    solutions: int = 1,
    on_progress: OnProgress | None = None,
    **options,
) -> list[Solution]:
    """Minimise the mask within `timeout` seconds (None: no limit); with `solutions=N`, up to N
    distinct masks (each minimal among the rest). `on_progress` gets a `SolveProgress` whenever the
    incumbent or the bound improves. `presolve=False` skips the exact layer (see the module docstring)."""
    if solver.startswith("pysmt:"):
        backend = _pysmt_search(solver.split(":", 1)[1])
    elif solver in BACKENDS:
        backend = BACKENDS[solver]
    else:
        raise SolverError(f"unknown solver {solver!r}; accepted: {', '.join(BACKENDS)}, pysmt:NAME")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise SolverError(f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds (or None for no limit), got {timeout}")
    if int(solutions) < 1:
        raise SolverError(f"solutions must be >= 1, got {solutions}")
    if solver in ("cpsat", "portfolio") and isinstance(problem, MaskProblem):
        from smugir.encoders.cpsat import prewarm

        prewarm()  # CP-SAT's process starts now, while presolve, the incumbent and HiGHS's head start run
    strengthen = options.pop("presolve", True) and solver in STRENGTHENED and isinstance(problem, MaskProblem) and int(solutions) == 1
    if strengthen and solver == "portfolio":
        return _portfolio(problem, timeout, 1, on_progress, strengthened=True, **options)
    if strengthen:
        return [_strengthened(problem, solver, timeout, on_progress, options)]
    return backend(problem, timeout, int(solutions), on_progress=on_progress, **options)


def _strengthened(problem: MaskProblem, name: str, timeout: float | None, on_progress: OnProgress | None, options) -> Solution:
    """Presolve and an incumbent; then CP-SAT searches for "a strictly better mask" with
    reduced-cost fixing, HiGHS (which does better without an objective cutoff row, by measurement)
    the presolved problem from the incumbent. See the module docstring for why each status is
    proven. A mask that fails the original problem (presolve's float sums misjudged a tie) sends
    the whole problem to the backend unreduced."""
    from smugir.incumbent import incumbent, reduced_cost_fixing, relaxation
    from smugir.presolve import presolve

    backend = BACKENDS[name]
    clock = time.monotonic()
    deadline = None if timeout is None else clock + timeout
    pre = presolve(problem)
    details: dict[str, Any] = {"presolve": {**pre.removed, "units_left": int(pre.free.size), "rows_left": pre.problem.n_constraints}}
    tracker = _Tracker("smugir", on_progress)

    def finished(status: str, mask: np.ndarray | None, bound: float | None, solver: str, **more) -> Solution:
        objective = None if mask is None else problem.objective(mask)
        if status == "optimal":
            bound = objective
        seconds = time.monotonic() - clock
        solution = _checked(problem, Solution(status, mask, objective, bound, solver, seconds, {**details, **more}))
        stopped = options.get("stop") is not None and options["stop"].is_set()
        if solution.mask is None and mask is not None and not stopped:  # a reduction misjudged a tie: solve unreduced
            left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
            return backend(problem, left, 1, on_progress=on_progress, **options)[0]
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
    cutoff = start is not None and name not in STARTS_FROM_INCUMBENT
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
        search = _better_than(reduced, value, keep, fix_one)
        offset += float(reduced.weights[fix_one].sum())

    def searched(mask: np.ndarray) -> np.ndarray:
        inner = fix_one.copy()
        inner[keep] = mask
        return pre.expand(inner)

    left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
    inner_tracker = _Tracker("", lambda p: tracker.report(p.incumbent, p.bound), offset)
    extra = {"start": start} if start is not None and not cutoff else {}
    result = backend(search, left, 1, on_progress=lambda p: inner_tracker.report(p.incumbent, p.bound), **options, **extra)[0]
    solver = result.solver
    more = {"backend": dict(result.details)}
    lp_bound = None if lp is None else lp.bound + pre.fixed_weight
    if not cutoff:
        mask = None if result.mask is None else searched(result.mask)
        bound = _best_bound(lp_bound, None if result.bound is None else result.bound + offset)
        status = result.status
        if start is not None and (mask is None or problem.objective(mask) > reduced.objective(start) + pre.fixed_weight):
            mask, status = pre.expand(start), "feasible"
            if bound is not None and _bound_reaches(bound, problem.objective(mask), problem.weights):
                status = "optimal"
        return finished(status, mask, bound, solver, **more)
    incumbent_value = reduced.objective(start) + pre.fixed_weight
    if result.status == "infeasible":  # nothing strictly better exists: the incumbent is optimal
        return finished("optimal", pre.expand(start), None, f"{solver} (no better mask than the incumbent)", **more)
    search_bound = None if result.bound is None else min(result.bound + offset, incumbent_value)
    bound = _best_bound(lp_bound, search_bound)
    if result.mask is not None and result.status in ("optimal", "feasible"):
        return finished(result.status, searched(result.mask), bound, solver, **more)
    status = "optimal" if bound is not None and _bound_reaches(bound, incumbent_value, problem.weights) else "feasible"
    return finished(status, pre.expand(start), bound, solver, **more)


def _best_bound(*bounds: float | None) -> float | None:
    valid = [b for b in bounds if b is not None]
    return max(valid) if valid else None


def _better_than(problem: MaskProblem, value: float, keep: np.ndarray, fix_one: np.ndarray) -> MaskProblem:
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
