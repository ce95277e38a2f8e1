"""z3's own Optimize (MaxSMT / OMT) on the pySMT formula of a masking problem."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from smugir.problem import NetworkMaskProblem
from smugir.solvers.base import Problem, Solution, checked


def z3_optimize(problem: Problem, timeout: float | None, solutions: int, on_progress=None, stop=None, **options) -> list[Solution]:
    """z3 Optimize with its timeout; `sat` is its optimum, `unsat` infeasibility, and on a timeout
    its last model is kept only when it passes the exact check."""
    import z3

    from smugir.encoders.pysmt import encode, encode_network

    found: list[Solution] = []
    for _ in range(solutions):
        encoding = encode_network(problem) if isinstance(problem, NetworkMaskProblem) else encode(problem, options.get("numeric_mode", "scaled"))
        solver = encoding.solver("z3")
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
        solution = checked(problem, Solution(status, mask, objective, bound, f"z3-optimize (z3 {z3.get_version_string()})", seconds, {}))
        solver.exit()
        found.append(solution)
        if solution.status != "optimal":
            break
    return found
