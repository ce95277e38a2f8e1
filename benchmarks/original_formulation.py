"""The original SMUG code's solver formulation, for comparison: z3 Int 0/1 mask variables with
float coefficients in the constraints, and z3.Optimize minimising the sum, under a timeout."""

from __future__ import annotations

import time

import z3

from smugir.problem import MaskProblem


def solve_original(problem: MaskProblem, timeout: float) -> tuple[str, float | None, float]:
    """(status, objective, seconds) the way the original code posed the problem."""
    optimize = z3.Optimize()
    optimize.set("timeout", int(timeout * 1000))
    mask = [z3.Int(f"m_{u}") for u in range(problem.n_units)]
    for m in mask:
        optimize.add(z3.Or(m == 0, m == 1))
    for units, values, bound in problem.rows():
        optimize.add(z3.Sum([a * mask[u] for u, a in zip(units.tolist(), values.tolist())]) > bound)
    optimize.minimize(z3.Sum(mask))
    start = time.perf_counter()
    answer = optimize.check()
    seconds = time.perf_counter() - start
    if answer == z3.sat:
        model = optimize.model()
        return "optimal", float(sum(model.eval(m).as_long() for m in mask)), seconds
    return ("infeasible" if answer == z3.unsat else "unknown"), None, seconds
