"""Masking problems as pySMT formulas, and minimisation that works with any pySMT solver.

Mask variables are Booleans `m_0, m_1, ...` (generated names only). Two numeric modes:
- `exact` (QF_LRA): each float64 coefficient becomes the exact rational it denotes.
- `scaled` (QF_LIA, the default): each row is scaled by a power of ten so its largest magnitude
  has `digits` significant digits, coefficients are rounded down and the bound up. Then
  sum floor(a S) m > ceil(b S) implies sum a m > b, so every solution of the rounded model solves
  the exact one (the converse can fail only for masks with a slack below 10^-digits of the row's
  scale). Exact rationals with huge denominators are what make z3 slow; scaled integers are fast.
Minimisation asserts `sum w m <= B` inside push/pop and searches B; "unsat at B - 1" is the proof.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, floor, log10

import numpy as np
from pysmt.environment import Environment
from pysmt.exceptions import SolverReturnedUnknownResultError
from pysmt.fnode import FNode
from pysmt.logics import QF_LIA, QF_LRA
from pysmt.typing import BOOL, REAL

from smugir.errors import SolverError
from smugir.problem import MaskProblem, NetworkMaskProblem

NUMERIC_MODES = ("scaled", "exact")
DEFAULT_DIGITS = 9


@dataclass(frozen=True)
class Encoding:
    """A formula over the mask symbols, and what is needed to add cardinality bounds to it."""

    environment: Environment
    constraints: FNode
    symbols: tuple[FNode, ...]
    weights: tuple[int, ...] | tuple[Fraction, ...]
    logic: object
    integer: bool

    def objective_term(self) -> FNode:
        """sum_u w_u * m_u as a term of the encoding's sort."""
        mgr = self.environment.formula_manager
        const = mgr.Int if self.integer else mgr.Real
        terms = [mgr.Ite(m, const(w), const(0)) for m, w in zip(self.symbols, self.weights) if w != 0]
        return mgr.Plus(terms) if terms else const(0)

    def at_most(self, bound) -> FNode:
        mgr = self.environment.formula_manager
        return mgr.LE(self.objective_term(), (mgr.Int if self.integer else mgr.Real)(bound))

    def below(self, value) -> FNode:
        mgr = self.environment.formula_manager
        return mgr.LT(self.objective_term(), (mgr.Int if self.integer else mgr.Real)(value))

    def solver(self, name: str):
        """A pySMT solver `name` for this encoding's logic, or one line naming the solvers installed here."""
        factory = self.environment.factory
        available = sorted(factory.all_solvers())
        if name not in available:
            raise SolverError(f"pySMT solver {name!r} is not installed; available here: {', '.join(available) or 'none'}")
        return factory.Solver(name=name, logic=self.logic)

    def blocking_clause(self, mask: np.ndarray) -> FNode:
        """Not this exact set of kept units."""
        mgr = self.environment.formula_manager
        return mgr.Or([mgr.Not(m) if keep else m for m, keep in zip(self.symbols, mask)])


def _row_scale(row: np.ndarray, bound: float, digits: int) -> int:
    """Power of ten that gives the row's largest magnitude `digits` significant digits."""
    top = max(float(np.abs(row).max(initial=0.0)), abs(float(bound)))
    if top == 0:
        return 0
    return digits - 1 - int(floor(log10(top)))


def _scaled_row(row: np.ndarray, bound: float, digits: int) -> tuple[list[int], int]:
    """The row's (non-zero) coefficients rounded down and its bound rounded up, at one power of ten."""
    exponent = _row_scale(row, bound, digits)
    scale = Fraction(10) ** exponent
    coefficients = [floor(Fraction(a) * scale) for a in np.asarray(row, dtype=np.float64).tolist()]
    return coefficients, ceil(Fraction(float(bound)) * scale)


def _integer_weights(weights: np.ndarray) -> bool:
    return bool(np.all(weights == np.round(weights)))


def encode(problem: MaskProblem, mode: str = "scaled", digits: int = DEFAULT_DIGITS, environment: Environment | None = None) -> Encoding:
    """The constraints of `problem` as one pySMT formula (a conjunction, one atom per neuron)."""
    if mode not in NUMERIC_MODES:
        raise ValueError(f"unknown numeric mode {mode!r}; accepted: {', '.join(NUMERIC_MODES)}")
    env = environment or Environment()
    mgr = env.formula_manager
    symbols = tuple(mgr.Symbol(f"m_{u}", BOOL) for u in range(problem.n_units))
    integer = mode == "scaled" and _integer_weights(problem.weights)
    atoms = []
    for units, values, bound in problem.rows():  # the non-zeros of each row only
        if mode == "scaled":
            coefficients, rhs = _scaled_row(values, bound, digits)
            terms = [mgr.Ite(symbols[u], mgr.Int(c), mgr.Int(0)) for u, c in zip(units.tolist(), coefficients) if c != 0]
            atoms.append(mgr.GT(mgr.Plus(terms) if terms else mgr.Int(0), mgr.Int(rhs)))
        else:
            terms = [mgr.Ite(symbols[u], mgr.Real(Fraction(a)), mgr.Real(0)) for u, a in zip(units.tolist(), values.tolist())]
            atoms.append(mgr.GT(mgr.Plus(terms) if terms else mgr.Real(0), mgr.Real(Fraction(float(bound)))))
    # A unit no constraint reads only costs: no minimal mask keeps it, so it is fixed out.
    unused = np.flatnonzero(~problem.used_units() & (problem.weights > 0))
    atoms += [mgr.Not(symbols[u]) for u in unused]
    weights = tuple(int(w) for w in problem.weights) if integer else tuple(Fraction(float(w)) for w in problem.weights)
    if mode == "scaled" and not integer:
        # Non-integer objective weights: the objective lives in the reals, beside integer constraints.
        raise ValueError("scaled mode needs integer objective weights; use mode='exact'")
    return Encoding(env, mgr.And(atoms), symbols, weights, QF_LIA if mode == "scaled" else QF_LRA, integer)


def encode_network(problem: NetworkMaskProblem, environment: Environment | None = None) -> Encoding:
    """Whole-network encoding over the reals: one Real per hidden neuron, ReLU as Ite (QF_LRA)."""
    env = environment or Environment()
    mgr = env.formula_manager
    symbols = tuple(mgr.Symbol(f"m_{u}", BOOL) for u in range(problem.n_units))

    def real(value: float) -> FNode:
        return mgr.Real(Fraction(float(value)))

    inputs = [
        mgr.Plus(real(b), mgr.Ite(symbols[u], real(d), real(0))) if d != 0 else real(b)
        for b, d, u in zip(problem.base, problem.delta, problem.unit_of)
    ]
    atoms, layer = [], inputs
    for k, (w, b) in enumerate(problem.layers):
        pre = [mgr.Plus([real(b[i])] + [mgr.Times(real(w[i, j]), layer[j]) for j in np.flatnonzero(w[i])]) for i in range(b.size)]
        if k == len(problem.layers) - 1:
            layer = pre
            break
        hidden = [mgr.Symbol(f"h_{k}_{i}", REAL) for i in range(b.size)]
        atoms += [mgr.Equals(h, mgr.Ite(mgr.GT(z, real(0)), z, real(0))) for h, z in zip(hidden, pre)]
        layer = hidden
    label = problem.label
    atoms += [mgr.GT(mgr.Minus(layer[label], layer[j]), real(problem.margin)) for j in range(len(layer)) if j != label]
    weights = tuple(Fraction(float(w)) for w in problem.weights)
    return Encoding(env, mgr.And(atoms), symbols, weights, QF_LRA, False)


@dataclass
class SearchResult:
    status: str
    mask: np.ndarray | None
    objective: float | None
    bound: float | None
    calls: int
    bounds_tried: list
    unknown_reasons: list = field(default_factory=list)  # z3's reason for each unknown answer


def _model_mask(solver, encoding: Encoding) -> np.ndarray:
    return np.array([solver.get_py_value(m) for m in encoding.symbols], dtype=bool)


def minimise(encoding: Encoding, solver, weights: np.ndarray, deadline: float | None, extra: list[FNode] = ()) -> SearchResult:
    """Cardinality-bound search on any pySMT solver (incremental, push/pop).

    Integer weights: binary search on B in `sum w m <= B`; otherwise descend with `sum w m < best`.
    A solver answer of unknown (e.g. its time limit) ends the search with the incumbent kept; the
    solver's reason is kept with it.
    """
    calls, tried, reasons = 0, [], []
    solver.add_assertion(encoding.constraints)
    for clause in extra:
        solver.add_assertion(clause)

    def check(bound_formula: FNode | None) -> bool | None:
        nonlocal calls
        if deadline is not None and time.monotonic() >= deadline:
            return None
        calls += 1
        _set_timeout(solver, deadline)
        if bound_formula is not None:
            solver.push()
            solver.add_assertion(bound_formula)
        try:
            return solver.solve()
        except SolverReturnedUnknownResultError:
            reasons.append(_reason_unknown(solver))
            return None

    first = check(None)
    if first is None:
        return SearchResult("unknown", None, None, 0.0, calls, tried, reasons)
    if not first:
        return SearchResult("infeasible", None, None, None, calls, tried, reasons)
    best = _model_mask(solver, encoding)
    best_value = float(weights @ best)
    lower = 0.0
    integer = encoding.integer and _integer_weights(weights)
    while best_value > lower:
        if integer:
            bound = int(lower + (best_value - 1 - lower) // 2)
            formula = encoding.at_most(bound)
        else:
            bound = best_value
            formula = encoding.below(Fraction(best_value))
        tried.append(bound)
        answer = check(formula)
        if answer is None:  # the solver is discarded by the caller, open push levels included
            return SearchResult("feasible", best, best_value, lower, calls, tried, reasons)
        if answer:
            best = _model_mask(solver, encoding)
            best_value = float(weights @ best)
        elif integer:
            lower = float(bound + 1)
        else:
            lower = best_value
        solver.pop()
    return SearchResult("optimal", best, best_value, best_value, calls, tried, reasons)


def _reason_unknown(solver) -> str:
    z3_solver = getattr(solver, "z3", None)
    return z3_solver.reason_unknown() if z3_solver is not None else "unknown"


def _set_timeout(solver, deadline: float | None) -> None:
    """Pass the time left to z3 (other solvers keep only the overall deadline between calls)."""
    if deadline is None:
        return
    remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
    z3_solver = getattr(solver, "z3", None)
    if z3_solver is not None:
        z3_solver.set("timeout", remaining_ms)
