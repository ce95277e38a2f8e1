"""Every encoder and every file format smugir writes, through smugir.testing's check_encoder, read
back by a solver from pip where one reads it: pySMT formulas (exact and scaled), the HiGHS model
(its `>=` relaxation and its strict margin) solved by HiGHS and by SCIP, the integer rows of both
roundings solved by CP-SAT and by Exact, OPB (Exact), WCNF (PySAT's RC2), SMT-LIB (z3) and MPS/LP
(HiGHS)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import highspy
import numpy as np
import pytest
import z3
from pysat.examples.rc2 import RC2
from pysat.formula import WCNF
from pysat.solvers import Solver
from scipy import sparse

import external_solvers
from smugir.encoders.cpsat import integer_rows, solve_cpsat
from smugir.encoders.exact import solve_exact
from smugir.encoders.milp import STRICT_MARGIN, MilpModel
from smugir.encoders.pysmt import encode, encode_network, minimise
from smugir.encoders.scip import ScipModel
from smugir.exporters.milp import write_milp
from smugir.exporters.opb import write_opb
from smugir.exporters.smtlib import smtlib_text
from smugir.exporters.wcnf import write_wcnf
from smugir.instance_status import encoding_for
from smugir.problem import MaskProblem
from smugir.solver_answers import read_answer
from smugir.testing import Encoded, check_encoder, network_problems

FEW = 12  # examples per encoder (each draws random, tie-heavy and model-made problems)


def _pysmt(problem, mode: str = "exact") -> Encoded:
    encoding = encode_network(problem) if mode == "network" else encode(problem, mode)
    env = encoding.environment
    mgr = env.formula_manager

    def accepts(mask):
        fixed = {m: mgr.Bool(bool(keep)) for m, keep in zip(encoding.symbols, mask)}
        formula = env.simplifier.simplify(env.substituter.substitute(encoding.constraints, fixed))
        if formula.is_constant():
            return formula.is_true()
        with env.factory.Solver(name="z3", logic=encoding.logic) as solver:  # hidden neurons of a network
            return solver.is_sat(formula)

    def minimum():
        with env.factory.Solver(name="z3", logic=encoding.logic) as solver:
            return minimise(encoding, solver, problem.weights, None).objective

    return Encoded(accepts, minimum)


def _highs(highs: highspy.Highs, problem, named: bool = False) -> Encoded:
    """A HiGHS model of the units' columns (in order, or named c<u> when read from a file, where
    HiGHS numbers columns by first appearance): rows evaluated as HiGHS judges a point."""
    lp = highs.getLp()
    matrix = lp.a_matrix_
    layout = sparse.csr_array if matrix.format_ == highspy.MatrixFormat.kRowwise else sparse.csc_array
    a = layout((matrix.value_, matrix.index_, matrix.start_), shape=(lp.num_row_, lp.num_col_))
    tolerance = highs.getOptionValue("primal_feasibility_tolerance")[1]
    column = [int(name[1:]) for name in lp.col_names_] if named else list(range(lp.num_col_))  # unit of each column

    def accepts(mask):
        activity = a @ np.asarray(mask, dtype=np.float64)[column]
        return bool(np.all(activity >= np.asarray(lp.row_lower_) - tolerance) and np.all(activity <= np.asarray(lp.row_upper_) + tolerance))

    def minimum():
        highs.run()
        if highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return None
        assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        kept = np.zeros(problem.n_units, dtype=bool)
        kept[column] = np.asarray(highs.getSolution().col_value) > 0.5
        return float(problem.weights @ kept)

    return Encoded(accepts, minimum)


def _milp(problem, margin: float) -> Encoded:
    return _highs(MilpModel(problem, margin).highs, problem)


def _integer_rows(problem, relaxed: bool, engine=solve_cpsat) -> Encoded:
    """The integer rows of a rounding (CP-SAT's and Exact's model), evaluated; their optimum from the engine."""
    rows, right = integer_rows(problem, relaxed)

    def minimum():
        result = engine(problem, relaxed, 30.0)
        assert result.status in ("optimal", "infeasible"), result
        return result.objective

    return Encoded(lambda mask: bool(np.all(rows @ np.asarray(mask, dtype=np.int64) >= right)), minimum)


def _scip(problem, margin: float) -> Encoded:
    """SCIP's model is read from the HiGHS model's LP: its rows as HiGHS judges them, its optimum from SCIP."""

    def minimum():
        result = ScipModel(problem, margin).solve(30.0)
        assert result.status in ("optimal", "infeasible"), result
        return result.objective

    return Encoded(_milp(problem, margin).accepts, minimum)


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="smugir-kit-"))


def _opb(problem, rounding: str) -> Encoded:
    """The OPB file, its rows parsed back from the text, its optimum from Exact."""
    path = _folder() / "p.opb"
    write_opb(problem, path, rounding)
    rows = []
    for line in path.read_text().splitlines():
        words = line.split()
        if words and words[0] != "*" and not words[0].startswith("*") and words[0] != "min:":
            assert words[-3] == ">=", line
            terms = {int(words[i + 1][1:]) - 1: int(words[i]) for i in range(0, len(words) - 3, 2)}
            rows.append((terms, int(words[-2])))

    def accepts(mask):
        return all(sum(c for u, c in terms.items() if mask[u]) >= right for terms, right in rows)

    def minimum():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            external_solvers._exact_main(str(path))
        answer = read_answer("opb", out.getvalue())
        return None if answer.claim == "unsat" else float(answer.value)

    return Encoded(accepts, minimum)


def _wcnf(problem, rounding: str) -> Encoded:
    """The WCNF file read by PySAT: hard clauses satisfiable under the mask (auxiliary variables
    free), and RC2's minimum cost."""
    path = _folder() / "p.wcnf"
    write_wcnf(problem, path, rounding)
    formula = WCNF(from_file=str(path))

    solver = Solver(name="g3", bootstrap_with=formula.hard)  # one solver, the mask as assumptions

    def accepts(mask):
        return solver.solve(assumptions=[u + 1 if keep else -(u + 1) for u, keep in enumerate(mask)])

    def minimum():
        if not solver.solve():
            return None
        with RC2(formula) as rc2:
            rc2.compute()
            return float(rc2.cost)

    return Encoded(accepts, minimum)


def _smtlib(problem, logic: str) -> Encoded:
    """The SMT-LIB files z3 reads: the decision file (bound: every unit) for accepts, the OMT file for the optimum."""
    encoding = encoding_for(problem, logic)
    everything = int(np.ceil(problem.weights.sum()))
    decision, omt = smtlib_text(encoding, "bound", everything), smtlib_text(encoding, "omt")
    symbols = [z3.Bool(f"m_{u}") for u in range(problem.n_units)]

    solver = z3.Solver()
    solver.from_string(decision)

    def accepts(mask):
        return solver.check(*[m if keep else z3.Not(m) for m, keep in zip(symbols, mask)]) == z3.sat

    def minimum():
        optimize = z3.Optimize()
        optimize.from_string(omt)
        if optimize.check() == z3.unsat:
            return None
        model = optimize.model()
        return float(problem.weights @ np.array([z3.is_true(model.eval(m, model_completion=True)) for m in symbols]))

    return Encoded(accepts, minimum)


def _milp_file(problem, suffix: str) -> Encoded:
    path = _folder() / f"p.{suffix}"
    write_milp(problem, path)
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.readModel(str(path))
    assert highs.getLp().num_col_ == problem.n_units
    return _highs(highs, problem, named=True)


ENCODERS = {
    "pysmt exact (QF_LRA)": (lambda p: _pysmt(p, "exact"), "optimal"),  # units no row reads are fixed out
    "pysmt scaled (QF_LIA)": (lambda p: _pysmt(p, "scaled"), "restricted"),
    "highs >= (relaxation)": (lambda p: _milp(p, 0.0), "relaxed"),
    "highs strict margin": (lambda p: _milp(p, STRICT_MARGIN), "restricted"),
    "scip >= (relaxation)": (lambda p: _scip(p, 0.0), "relaxed"),
    "scip strict margin": (lambda p: _scip(p, STRICT_MARGIN), "restricted"),
    "cpsat relaxed rows": (lambda p: _integer_rows(p, True), "relaxed"),
    "cpsat restricted rows": (lambda p: _integer_rows(p, False), "restricted"),
    "exact relaxed rows": (lambda p: _integer_rows(p, True, solve_exact), "relaxed"),
    "exact restricted rows": (lambda p: _integer_rows(p, False, solve_exact), "restricted"),
    "opb relaxed (Exact)": (lambda p: _opb(p, "relaxed"), "relaxed"),
    "opb restricted (Exact)": (lambda p: _opb(p, "restricted"), "restricted"),
    "wcnf relaxed (RC2)": (lambda p: _wcnf(p, "relaxed"), "relaxed"),
    "wcnf restricted (RC2)": (lambda p: _wcnf(p, "restricted"), "restricted"),
    "smt2 QF_LRA (z3)": (lambda p: _smtlib(p, "QF_LRA"), "optimal"),
    "smt2 QF_LIA (z3)": (lambda p: _smtlib(p, "QF_LIA"), "restricted"),
    "mps (HiGHS)": (lambda p: _milp_file(p, "mps"), "restricted"),
    "lp (HiGHS)": (lambda p: _milp_file(p, "lp"), "restricted"),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_keeps_its_semantics(name):
    encoder, semantics = ENCODERS[name]
    check_encoder(encoder, semantics=semantics, max_examples=FEW, max_masks=32)


@pytest.mark.parametrize("suffix", ["mps", "lp"])
def test_a_row_without_terms_survives_the_milp_model_and_files(suffix):
    """0 > 0 (a neuron no unit moves, gamma 0): its bound over a zero row scale was 1e300, which
    HiGHS reads as infinite and drops, so the model and its files said optimum 0 (found by check_encoder)."""
    problem = MaskProblem(np.zeros((1, 1)), np.array([0.0]), np.ones(1))
    assert _milp(problem, 0.0).minimum() is None
    assert _milp_file(problem, suffix).minimum() is None


def test_whole_network_encoding_is_exact():
    check_encoder(lambda p: _pysmt(p, "network"), network_problems(), semantics="exact", max_examples=8)


def test_a_wrong_encoding_is_caught():
    """Rows written with >= instead of >, called exact: a tie gives it away."""
    from smugir.testing import KitFailure, tie_problems

    def non_strict(problem: MaskProblem) -> Encoded:
        return Encoded(lambda mask: bool(np.all(problem.constraint_values(mask) >= problem.bounds)))

    with pytest.raises(KitFailure, match="the exact encoding accepts an infeasible mask"):
        check_encoder(non_strict, tie_problems(), semantics="exact", max_examples=50)
