"""Cardinality-bound search (encoders/pysmt.py) on any installed pySMT solver: `z3`, `pysmt:NAME`."""

from __future__ import annotations

import time
from typing import Any

from smugir.problem import NetworkMaskProblem
from smugir.solvers.base import Backend, Problem, Solution, checked


def smt_search(name: str) -> Backend:
    """The backend that minimises with pySMT solver `name` (exact QF_LRA or scaled QF_LIA formulas)."""

    def run(problem: Problem, timeout: float | None, solutions: int, on_progress=None, stop=None, **options) -> list[Solution]:
        from smugir.encoders.pysmt import encode, encode_network, minimise

        mode = options.get("numeric_mode", "scaled")
        digits = int(options.get("digits", 9))
        deadline = None if timeout is None else time.monotonic() + timeout
        network = isinstance(problem, NetworkMaskProblem)
        found: list[Solution] = []
        for _ in range(solutions):
            encoding = encode_network(problem) if network else encode(problem, mode, digits)
            solver = encoding.solver(name)
            blocks = [encoding.blocking_clause(f.mask) for f in found]
            start = time.perf_counter()
            try:
                result = minimise(encoding, solver, problem.weights, deadline, blocks)
            finally:
                solver.exit()
            details: dict[str, Any] = {"calls": result.calls, "bounds_tried": result.bounds_tried, "numeric_mode": "exact" if network else mode}
            if result.unknown_reasons:
                details["unknown_reasons"] = result.unknown_reasons
            if mode == "scaled" and not network:
                details["digits"] = digits
            solution = checked(problem, Solution(result.status, result.mask, result.objective, result.bound, version(name), time.perf_counter() - start, details))
            found.append(solution)
            if solution.status != "optimal":
                break
        return found

    return run


def version(name: str) -> str:
    if name == "z3":
        import z3

        return f"pysmt:z3 (z3 {z3.get_version_string()})"
    return f"pysmt:{name}"
