"""Solver backends behind one call, `solve`, and the `Solution` every backend returns.

Backends (one registry line each): `highs` (MILP, the default: fastest by measurement, see
benchmarks/bench_backends.py), `z3` (pySMT + z3, cardinality-bound search), `pysmt:NAME` (the same
search on any installed pySMT solver) and `z3-optimize` (z3's own Optimize on the same formula).
Every mask a backend returns is checked again here, exactly, before it is reported.
"""

from __future__ import annotations

import time
from fractions import Fraction
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from smugir.errors import SolverError
from smugir.problem import MaskProblem, NetworkMaskProblem

Problem = MaskProblem | NetworkMaskProblem
STATUSES = ("optimal", "feasible", "infeasible", "unknown")
DEFAULT_SOLVER = "highs"


@dataclass(frozen=True)
class Solution:
    status: str  # optimal (proven) | feasible (incumbent + bound) | infeasible | unknown
    mask: np.ndarray | None  # (n_units,) bool
    objective: float | None
    bound: float | None  # best proven lower bound on the optimum
    solver: str
    seconds: float
    details: Mapping[str, Any] = field(default_factory=dict)


def _checked(problem: Problem, solution: Solution) -> Solution:
    """Never pass on a mask that fails the exact problem; say what happened instead."""
    if solution.mask is None or problem.is_satisfied(solution.mask):
        return solution
    details = {**solution.details, "rejected": "the solver's mask fails the exact float64 constraints"}
    return Solution("unknown", None, None, solution.bound, solution.solver, solution.seconds, details)


def _highs(problem: Problem, timeout: float | None, solutions: int, **options) -> list[Solution]:
    """HiGHS, first on the relaxation (`>=` for `>`): when its optimal mask passes the exact strict
    check, it is optimal for the strict problem too, proven in one solve. Only a mask that ties a
    bound within HiGHS's tolerance sends it to models with a strict margin, and then the
    relaxation's bound is what is proven."""
    from smugir.encoders.milp import STRICT_MARGIN, MilpModel, version

    found: list[Solution] = []
    blocked: list[np.ndarray] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    margins = (0.0, STRICT_MARGIN, STRICT_MARGIN * 100, STRICT_MARGIN * 10_000)
    start = None
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
            result = model.solve(left)
            if margin == 0.0:
                relaxed_bound = result.bound
            if result.mask is None or problem.is_satisfied(result.mask):
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
        if solution.mask is None or solution.status != "optimal":
            break
        blocked.append(solution.mask)
    return found


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
    "highs": _highs,
    "z3": _pysmt_search("z3"),
    "z3-optimize": _z3_optimize,
}


def solve(problem: Problem, solver: str = DEFAULT_SOLVER, timeout: float | None = None, solutions: int = 1, **options) -> list[Solution]:
    """Minimise the mask; with `solutions=N`, up to N distinct masks (each minimal among the rest)."""
    if solver.startswith("pysmt:"):
        backend = _pysmt_search(solver.split(":", 1)[1])
    elif solver in BACKENDS:
        backend = BACKENDS[solver]
    else:
        raise SolverError(f"unknown solver {solver!r}; accepted: {', '.join(BACKENDS)}, pysmt:NAME")
    if timeout is not None and timeout <= 0:
        raise SolverError(f"timeout must be > 0 seconds, got {timeout}")
    if int(solutions) < 1:
        raise SolverError(f"solutions must be >= 1, got {solutions}")
    return backend(problem, timeout, int(solutions), **options)
