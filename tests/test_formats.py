"""Competition-ready families: SMT-LIB in SMT-COMP form, OPB and WCNF on CP-SAT's roundings, and
`smug check-solver`; every expected answer is checked by solvers from pip (z3, yices, cvc5, bitwuzla, Exact, RC2)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from pysmt.environment import reset_env
from pysmt.smtlib.parser import SmtLibParser

import external_solvers
from smugir.cli import main
from smugir.exporters.instance_files import export_problem
from smugir.problem import MaskProblem
from smugir.solver_answers import Answer, judge, read_answer
from smugir.testing import exhaustive_minimum, mask_problems

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"


@pytest.fixture(scope="module")
def family(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("formats") / "family"
    args = ["export-benchmarks", str(MNIST), str(SAMPLES), "--window", "4", "--top-k", "16", "--limit", "4",
            "--formats", "smt2,opb,wcnf", "--out", str(out)]
    assert main(args) == 0
    return out


def _rows(folder: Path) -> list[dict]:
    with open(folder / "instances.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_decision_files_follow_the_smtcomp_rules(family):
    decisions = [r for r in _rows(family) if r["kind"] == "decision"]
    assert {r["expected"] for r in decisions} == {"sat", "unsat"}
    for row in decisions:
        text = (family / row["file"]).read_text()
        lines = text.splitlines()
        assert lines[0] == "(set-info :smt-lib-version 2.6)" and lines[1] == f"(set-logic {row['logic']})"
        assert lines[-2:] == ["(check-sat)", "(exit)"] and lines.count("(check-sat)") == 1
        assert "set-option" not in text and "get-model" not in text
        assert '(set-info :license "' in text and '(set-info :category "industrial")' in text
        assert f"(set-info :status {row['expected']})" in text
        assert str(DATA) not in text and "input: mnist_test_samples.npz:" in text and "input_sha256: " in text
        reset_env()
        SmtLibParser().get_script(io.StringIO(text))  # a second parser reads every file


@pytest.mark.parametrize("solver", ["z3", "yices", "cvc5"])
def test_smt_solvers_agree_with_every_status(family, solver):
    for row in _rows(family):
        if row["kind"] == "decision":
            assert external_solvers.run(solver, family / row["file"])[0] == row["expected"], (solver, row)


def test_exact_and_rc2_find_the_proven_optima(family):
    rows = _rows(family)
    exact = {r["input"]: int(r["expected"]) for r in rows if r["kind"] == "omt"}
    for row in rows:
        if row["kind"] not in ("opb", "wcnf"):
            continue
        answer = read_answer(row["kind"], "\n".join(external_solvers.run("exact" if row["kind"] == "opb" else "rc2", family / row["file"])))
        assert answer == Answer("optimum", int(row["expected"])), row
        relation = (lambda a, b: a <= b) if row["rounding"] == "relaxed" else (lambda a, b: a >= b)
        assert relation(int(row["expected"]), exact[row["input"]]), row
    readme = (family / "README.md").read_text()
    assert "## How each expected answer was proven" in readme and "| opb | relaxed | optimum | 4 |" in readme


def test_a_single_file_asks_for_a_model_only_where_one_exists(tmp_path):
    base = ["export", str(MNIST), f"{SAMPLES}:images[1]", "--window", "4", "--top-k", "16"]
    assert main([*base, "--bound", "opt", "--out", str(tmp_path / "sat.smt2")]) == 0
    assert main([*base, "--bound", "opt-1", "--out", str(tmp_path / "unsat.smt2")]) == 0
    sat, unsat = (tmp_path / "sat.smt2").read_text(), (tmp_path / "unsat.smt2").read_text()
    assert "(get-model)" in sat and "(set-option :produce-models true)" in sat
    assert "get-model" not in unsat and "set-option" not in unsat
    assert external_solvers.run("cvc5", tmp_path / "sat.smt2")[0] == "sat"  # cvc5 refuses get-model without the option
    assert main([*base, "--format", "opb", "--rounding", "restricted", "--out", str(tmp_path / "x.opb")]) == 0
    assert "* rounding: restricted: every solution of these rows is a mask" in (tmp_path / "x.opb").read_text()


def test_hostile_names_stay_inside_pb_comments(tmp_path):
    evil = "x\n+1 x1 >= 5 ;\nh 0\n1 1 0\r"
    problem = MaskProblem(np.array([[1.0, 2.0, -0.5]]), np.array([0.5]), np.ones(3), {"model": evil})
    for format in ("opb", "wcnf"):
        path = tmp_path / f"evil.{format}"
        instance = export_problem(problem, path, format=format, source={"input": evil, "model": evil})
        lines = path.read_text().splitlines()
        comment = "*" if format == "opb" else "c"
        body = [line for line in lines if not line.startswith(comment)]
        assert all(line.startswith(("min:", "+", "-")) for line in body) if format == "opb" else all(
            line.startswith("h ") or line.split()[0].isdigit() for line in body)
        assert instance.expected == "1"
        tool = "exact" if format == "opb" else "rc2"
        assert read_answer(format, "\n".join(external_solvers.run(tool, path))) == Answer("optimum", 1)


@settings(max_examples=12, deadline=None)
@given(problem=mask_problems())
def test_random_pb_files_bracket_the_brute_force_optimum(tmp_path_factory, problem):
    if not np.all(problem.weights == np.round(problem.weights)):
        return
    best, _ = exhaustive_minimum(problem)
    folder = tmp_path_factory.mktemp("pb")
    for rounding in ("relaxed", "restricted"):
        path = folder / f"{rounding}.opb"
        instance = export_problem(problem, path, format="opb", rounding=rounding, timeout=20)
        answer = read_answer("opb", "\n".join(external_solvers.run("exact", path)))
        if instance.expected == "unsat":
            assert answer.claim == "unsat" and (rounding == "restricted" or best is None)
            continue
        assert answer == Answer("optimum", int(instance.expected))
        if best is not None:
            assert (int(instance.expected) <= best) if rounding == "relaxed" else (int(instance.expected) >= best)
        wcnf = folder / f"{rounding}.wcnf"
        assert export_problem(problem, wcnf, format="wcnf", rounding=rounding).expected == instance.expected
        assert read_answer("wcnf", "\n".join(external_solvers.run("rc2", wcnf))) == answer


def test_answers_are_judged_by_each_competition_convention():
    assert judge("unsat", read_answer("decision", "sat\n")) == "wrong"
    assert judge("7", read_answer("omt", "sat\n(objectives\n ((+ m_0 m_1) 7)\n)\n")) == "correct"
    assert judge("7", read_answer("opb", "o 9\no 7\ns OPTIMUM FOUND\nv x1\n")) == "correct"
    assert judge("7", read_answer("wcnf", "o 6\ns SATISFIABLE\n")) == "wrong"  # cheaper than the proven optimum
    assert judge("7", read_answer("wcnf", "o 8\ns SATISFIABLE\n")) == "unknown"
    assert judge("unsat", read_answer("opb", "s UNSATISFIABLE\n")) == "correct"
    assert judge("7", read_answer("opb", "error: parse\n")) == "unknown"


def test_check_solver_catches_a_broken_solver_and_passes_z3(family, tmp_path, capsys):
    broken = tmp_path / "always_sat.py"
    broken.write_text("print('sat')\n")
    code = main(["check-solver", str(family), "--format", "smt2", "--jobs", "2", "--", sys.executable, str(broken), "{}"])
    out = capsys.readouterr().out
    unsat = [r["file"] for r in _rows(family) if r["kind"] == "decision" and r["expected"] == "unsat"]
    assert code == 1 and all(f"WRONG {name}: expected unsat, the solver said sat" in out for name in unsat)
    z3 = str(Path(sys.executable).parent / "z3")
    assert main(["check-solver", str(family), "--format", "smt2", "--timeout", "30", "--", z3, "{}"]) == 0
    assert "WRONG" not in capsys.readouterr().out
    opb = external_solvers.command("exact", Path("{}"))
    assert main(["check-solver", str(family), "--format", "opb", "--", *opb]) == 0


def test_check_solver_timeouts_and_bad_usage(family, tmp_path, capsys):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    assert main(["check-solver", str(family), "--format", "wcnf", "--timeout", "0.5", "--jobs", "2", "--", sys.executable, str(slow), "{}"]) == 0
    assert "│ timeout │     8 │" in capsys.readouterr().out
    for argv, message in [
        ([str(family), "--", "z3", "{}"], "choose one with --format"),
        ([str(family), "--format", "smt2", "--", "z3"], "must contain {}"),
        ([str(family), "--format", "smt2"], "no solver command"),
        ([str(tmp_path), "--format", "smt2", "--", "z3", "{}"], "the family index"),
        ([str(family), "--format", "smt2", "--", str(tmp_path / "nope"), "{}"], "cannot run"),
    ]:
        assert main(["check-solver", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_bitwuzla_z3_and_yices_answer_the_bit_vector_family(tmp_path):
    """QF_BV decisions on the OPB rows (no integer arithmetic needed): each status proven for its
    rounding, confirmed by bitwuzla, z3 and yices; the files keep the SMT-COMP rules and parse in pySMT.
    Rows of 2^30-sized coefficients are where a width too small would overflow and flip an answer."""
    out = tmp_path / "bv"
    args = ["export-benchmarks", str(MNIST), str(SAMPLES), "--window", "4", "--top-k", "16", "--limit", "2",
            "--formats", "smt2-bv", "--out", str(out)]
    assert main(args) == 0
    rows = [r for r in _rows(out) if r["kind"] == "decision"]
    assert {r["logic"] for r in rows} == {"QF_BV"} and {r["expected"] for r in rows} == {"sat", "unsat"}
    assert {r["rounding"] for r in rows} == {"relaxed", "restricted"}
    for row in rows:
        text = (out / row["file"]).read_text()
        assert text.splitlines()[1] == "(set-logic QF_BV)" and text.splitlines()[-2:] == ["(check-sat)", "(exit)"]
        assert f"(set-info :status {row['expected']})" in text and "get-model" not in text
        reset_env()
        SmtLibParser().get_script(io.StringIO(text))
        for solver in ("bitwuzla", "z3", "yices"):
            assert external_solvers.run(solver, out / row["file"])[0] == row["expected"], (solver, row)


def test_bit_vector_widths_never_overflow():
    """Every partial sum of a row and its right side fit the signed width (exhaustive on small rows)."""
    from itertools import product

    from smugir.exporters.bv import width

    rng = np.random.default_rng(5)
    for _ in range(200):
        values = rng.integers(-2**31, 2**31, size=int(rng.integers(0, 6)))
        right = int(rng.integers(-2**33, 2**33))
        bits = width(values, right)
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        assert low <= right <= high
        for keep in product([0, 1], repeat=values.size):
            partial = np.cumsum(np.asarray(keep, dtype=object) * values.astype(object)) if values.size else []
            assert all(low <= int(p) <= high for p in partial)
