"""The status an exported instance file may carry: what smugir can prove about that file's formula.

A status written into a file must be right for *that file's* formula, not for a neighbouring one:
- `sat` at bound B: a mask with at most B units is known (the solver's optimum) and z3, through
  pySMT, confirms the exported formula with every mask variable fixed to it (a pure evaluation).
- `unsat` at bound B: the solver's lower bound, proven on a relaxation of the strict problem (see
  `smugir.solve`), is above B; the exact and the scaled formulas are stricter than that
  relaxation, so they are unsat too. Where the relaxation cannot tell (a
  constraint that ties exactly), z3 decides the exported formula itself, within a time limit.
Anything else stays unknown, and the file then carries no `:status`.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterable

import numpy as np

from pysmt.exceptions import SolverReturnedUnknownResultError

from smugir.encoders.pysmt import Encoding, encode, encode_network
from smugir.errors import InputError
from smugir.exporters.choices import LOGICS
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, OnProgress, Solution, solve

Problem = MaskProblem | NetworkMaskProblem
BOUND_CHOICES = ("opt", "opt-1")


def encoding_for(problem: Problem, logic: str) -> Encoding:
    """The pySMT formula an SMT-LIB file of this logic holds (whole networks are always QF_LRA)."""
    if logic not in LOGICS:
        raise InputError(f"unknown logic {logic!r}; accepted: {', '.join(LOGICS)}")
    if isinstance(problem, NetworkMaskProblem):
        return encode_network(problem)
    return encode(problem, LOGICS[logic])


@dataclass(frozen=True)
class Optimum:
    """The solver's optimum of a problem; its bound is proven for the strict problem (see `smugir.solve`).
    `seconds` is how long smugir needed (to prove it, when proven): `--min-seconds` selects on it."""

    solution: Solution
    seconds: float

    @property
    def value(self) -> int | None:
        return None if self.solution.objective is None else int(round(self.solution.objective))

    @property
    def proven(self) -> bool:
        return self.solution.status == "optimal"

    @property
    def lower_bound(self) -> float | None:
        """inf when even the relaxation has no mask."""
        return float("inf") if self.solution.status == "infeasible" else self.solution.bound


def find_optimum(problem: Problem, timeout: float | None = DEFAULT_TIMEOUT, solver: str = DEFAULT_SOLVER,
                 on_progress: OnProgress | None = None) -> Optimum:
    clock = time.perf_counter()
    solution = solve(problem, solver=solver, timeout=timeout, on_progress=on_progress)[0]
    return Optimum(solution, time.perf_counter() - clock)


def decision_status(encoding: Encoding, bound: int, optimum: Optimum, z3_seconds: float = 10.0) -> str | None:
    """'sat', 'unsat' or None (unknown) for `formula and sum w m <= bound`; see the module docstring."""
    mask = optimum.solution.mask
    if mask is not None and optimum.solution.objective <= bound and _z3_check(encoding, bound, mask, None):
        return "sat"
    if optimum.lower_bound is not None and optimum.lower_bound > bound + 1e-6:
        return "unsat"
    answer = _z3_check(encoding, bound, None, z3_seconds)
    return None if answer is None else ("sat" if answer else "unsat")


def _z3_check(encoding: Encoding, bound: int, mask: np.ndarray | None, seconds: float | None) -> bool | None:
    """z3 on the formula at `bound`, with every mask bit fixed when `mask` is given (then a mere evaluation)."""
    mgr = encoding.environment.formula_manager
    fixed = [] if mask is None else [m if keep else mgr.Not(m) for m, keep in zip(encoding.symbols, mask)]
    with encoding.environment.factory.Solver(name="z3", logic=encoding.logic) as solver:
        if seconds is not None:
            solver.z3.set("timeout", max(1, int(seconds * 1000)))
        solver.add_assertion(mgr.And([encoding.constraints, encoding.at_most(bound), *fixed]))
        try:
            return bool(solver.solve())
        except SolverReturnedUnknownResultError:
            return None


def resolve_bound(spec: str | int, optimum: Optimum | None) -> int:
    """A bound given as a number, `opt` or `opt-1` (the latter two need the optimum)."""
    if isinstance(spec, str) and spec in BOUND_CHOICES:
        if optimum is None or optimum.value is None or optimum.solution.status != "optimal":
            raise InputError(f"bound {spec!r} needs a proven optimum, but the solver found {_status_text(optimum)}")
        return optimum.value - (1 if spec == "opt-1" else 0)
    try:
        bound = int(spec)
    except ValueError:
        raise InputError(f"bound must be an integer >= 0, 'opt' or 'opt-1', got {spec!r}") from None
    if bound < 0:
        raise InputError(f"bound must be >= 0, got {bound}")
    return bound


def _status_text(optimum: Optimum | None) -> str:
    if optimum is None:
        return "nothing"
    return f"status {optimum.solution.status!r}"


def parse_bounds(text: str) -> tuple[str, ...]:
    """`opt,opt-1,12` -> ('opt', 'opt-1', '12'), each checked."""
    specs = tuple(part.strip() for part in text.split(",") if part.strip())
    if not specs:
        raise InputError("no bounds given; e.g. --bounds opt,opt-1")
    for spec in specs:
        if spec not in BOUND_CHOICES:
            resolve_bound(spec, None)
    return specs


@dataclass(frozen=True)
class Instance:
    """One row of instances.csv."""

    file: str
    input: str
    kind: str  # decision | omt (SMT-LIB) | opb | wcnf | milp | none (a skipped input)
    logic: str  # the SMT-LIB logic; mps for milp
    bound: int | None
    expected: str  # sat | unsat | unknown for decisions; the optimum, unsat or unknown for the others
    variables: int
    constraints: int  # assertions, rows, or hard clauses (wcnf)
    smugir_seconds: float
    rounding: str = ""  # opb and wcnf: relaxed | restricted (smugir.exporters.opb)


def instances_csv(rows: Iterable[Instance]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Instance)], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return buffer.getvalue()


def formula_size(encoding: Encoding) -> tuple[int, int]:
    """Variables (mask bits plus any hidden reals) and constraints (assertions other than fixed bits)."""
    variables = len(encoding.constraints.get_free_variables() | set(encoding.symbols))
    conjuncts = encoding.constraints.args() if encoding.constraints.is_and() else (encoding.constraints,)
    return variables, sum(1 for c in conjuncts if not c.is_literal())
