"""The backends by name: one line each. A new backend is one module in smugir/solvers/ plus a line here."""

from __future__ import annotations

from smugir.errors import SolverError
from smugir.problem import MaskProblem
from smugir.solvers.base import Backend, OnProgress, Problem, Solution
from smugir.solvers.cpsat import cpsat
from smugir.solvers.exact import exact
from smugir.solvers.highs import highs
from smugir.solvers.portfolio import race
from smugir.solvers.scip import scip
from smugir.solvers.smt_search import smt_search
from smugir.solvers.strengthened import strengthen
from smugir.solvers.z3_optimize import z3_optimize

PORTFOLIO = ("highs", "cpsat")  # raced by `portfolio`, the first alone for its HEAD_START
FIRST_LAYER_ONLY = ("cpsat", "exact")  # backends that refuse whole-network problems
STRENGTHENED = ("portfolio", "highs", "cpsat", "exact", "scip")  # backends run inside the exact layer (presolve, incumbent, fixing)
STARTS_FROM_INCUMBENT = ("highs", "scip")  # given the incumbent as a start instead of an objective cutoff row


def portfolio(problem: Problem, timeout: float | None, solutions: int, on_progress: OnProgress | None = None,
              stop=None, strengthened: bool = False, **options) -> list[Solution]:
    """PORTFOLIO's members that take the problem, raced (smugir/solvers/portfolio.py); with
    `strengthened`, each inside the exact layer."""
    names = [n for n in PORTFOLIO if isinstance(problem, MaskProblem) or n not in FIRST_LAYER_ONLY]
    members = {n: strengthen(BACKENDS[n], n in STARTS_FROM_INCUMBENT) if strengthened else BACKENDS[n] for n in names}
    return race(problem, timeout, solutions, members, on_progress, stop, **options)


BACKENDS: dict[str, Backend] = {
    "portfolio": portfolio,
    "highs": highs,
    "cpsat": cpsat,
    "exact": exact,
    "scip": scip,
    "z3": smt_search("z3"),
    "z3-optimize": z3_optimize,
}


def backend(name: str) -> Backend:
    """The backend called `name` (or `pysmt:NAME`), or one line naming the accepted ones."""
    if name.startswith("pysmt:"):
        return smt_search(name.split(":", 1)[1])
    if name in BACKENDS:
        return BACKENDS[name]
    raise SolverError(f"unknown solver {name!r}; accepted: {', '.join(BACKENDS)}, pysmt:NAME")
