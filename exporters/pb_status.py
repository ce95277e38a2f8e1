"""The optimum an OPB or WCNF file may carry: what smugir can prove about *that file's* integer rows.

The file's rows are one rounding of the exact problem (`smugir.exporters.opb`), so its optimum can
differ from the exact one, and it is proven for the file itself:
- restricted: its solutions are exact masks, so its optimum is at least the exact optimum; when
  the exact optimal mask also satisfies the restricted rows (checked in integer arithmetic), the
  two are equal, proven without another solve.
- otherwise CP-SAT solves the file's own integer model (its native input: CP-SAT is exact on
  integers); an optimal mask is checked against the rows in integer arithmetic, and its value
  against the exact optimum (relaxed <= exact <= restricted): a contradiction is an error, never
  a row of instances.csv.
The answer is the optimum as text, `unsat`, or `unknown` (time ran out).
"""

from __future__ import annotations

from smugir.encoders.cpsat import solve_cpsat
from smugir.errors import SolverError
from smugir.exporters.opb import IntegerModel
from smugir.instance_status import Optimum
from smugir.problem import MaskProblem


def file_optimum(problem: MaskProblem, model: IntegerModel, optimum: Optimum, timeout: float | None) -> str:
    exact = optimum.value if optimum.proven else None
    mask = optimum.solution.mask
    if model.rounding == "restricted" and exact is not None and model.satisfied_by(mask):
        return str(exact)
    if model.rounding == "restricted" and optimum.lower_bound == float("inf"):
        return "unsat"  # no exact mask, so no restricted one
    result = solve_cpsat(problem, model.rounding == "relaxed", timeout)
    if result.status == "infeasible":
        if model.rounding == "relaxed" and mask is not None:
            raise SolverError("CP-SAT found the relaxed rounding infeasible, yet an exact mask exists")
        return "unsat"
    if result.status != "optimal" or result.mask is None:
        return "unknown"
    if not model.satisfied_by(result.mask):
        raise SolverError(f"CP-SAT's optimum of the {model.rounding} rounding fails its integer rows")
    value = int(model.weights @ result.mask.astype(int))
    if exact is not None and (value > exact if model.rounding == "relaxed" else value < exact):
        raise SolverError(f"the {model.rounding} rounding's optimum {value} contradicts the exact optimum {exact}")
    return str(value)
