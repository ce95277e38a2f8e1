"""SMT-LIB, MPS and LP exports: other solvers agree with smugir, files parse back, bad input is refused."""

from __future__ import annotations

import csv
import io
import re
from fractions import Fraction
from pathlib import Path

import highspy
import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from pysmt.smtlib.parser import SmtLibParser

import external_solvers
from smugir.cli import main
from smugir.errors import InputError
from smugir.exporters.instance_files import export_family, export_problem
from smugir.exporters.smtlib import smtlib_text
from smugir.instance_status import decision_status, encoding_for, find_optimum
from smugir.problem import MaskProblem
from smugir.testing import exhaustive_minimum, mask_problems, network_problems

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
SOLVERS = ("z3", "yices", "cvc5")


def _answer(solver: str, path: Path, logic: str, objective: str = "bound") -> list[str]:
    reason = external_solvers.skip_reason(solver, logic, objective)
    if reason:
        print(f"skipped {solver} on {path.name}: {reason}")
        pytest.skip(reason)
    return external_solvers.run(solver, path)


def _omt_value(lines: list[str]) -> Fraction:
    text = " ".join(lines)
    assert lines[0] == "sat", text
    return Fraction(re.search(r"(-?[\d.]+)\)\s*\)\s*$", text).group(1))


def _status(text: str) -> str | None:
    match = re.search(r"\(set-info :status (sat|unsat)\)", text)
    return match and match.group(1)


@pytest.fixture(scope="module")
def mnist_family(tmp_path_factory) -> Path:
    """The 15 real MNIST samples as a family: 4x4 windows keep every solver well under a second."""
    out = tmp_path_factory.mktemp("family") / "mnist"
    code = main(["export-benchmarks", str(MNIST), str(SAMPLES), "--window", "4", "--top-k", "16", "--out", str(out), "--mps"])
    assert code == 0
    return out


def _rows(folder: Path) -> list[dict]:
    with open(folder / "instances.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_family_index_lists_every_file_with_a_status(mnist_family):
    rows = _rows(mnist_family)
    assert len(rows) == 15 * 4  # opt, opt-1, OMT, MPS per input
    for row in rows:
        assert (mnist_family / row["file"]).is_file()
    decisions = [r for r in rows if r["kind"] == "decision"]
    assert sorted({r["expected"] for r in decisions}) == ["sat", "unsat"]
    for row in decisions:
        assert _status((mnist_family / row["file"]).read_text()) == row["expected"]
        assert int(row["variables"]) == 49 and int(row["constraints"]) >= 1
    omt = {r["input"]: int(r["expected"]) for r in rows if r["kind"] == "omt"}
    for row in decisions:
        assert int(row["bound"]) == omt[row["input"]] - (row["expected"] == "unsat")


@pytest.mark.parametrize("solver", SOLVERS)
def test_other_solvers_agree_on_real_mnist_decisions(mnist_family, solver):
    for row in _rows(mnist_family):
        if row["kind"] == "decision":
            lines = _answer(solver, mnist_family / row["file"], row["logic"])
            assert lines[0] == row["expected"], (solver, row)


def test_z3_optimum_equals_smugir_on_real_mnist(mnist_family):
    for row in _rows(mnist_family):
        if row["kind"] == "omt":
            lines = _answer("z3", mnist_family / row["file"], row["logic"], "omt")
            assert _omt_value(lines) == int(row["expected"]), row


def test_highs_rereads_mps_and_lp_with_the_same_optimum(mnist_family, tmp_path):
    for row in _rows(mnist_family):
        if row["kind"] != "milp":
            continue
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.readModel(str(mnist_family / row["file"]))
        highs.run()
        assert highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        assert highs.getInfo().objective_function_value == pytest.approx(int(row["expected"]))
    lp = tmp_path / "two.lp"
    assert main(["export", str(MNIST), f"{SAMPLES}:images[2]", "--window", "4", "--top-k", "16", "--format", "lp", "--out", str(lp)]) == 0
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.readModel(str(lp))
    highs.run()
    omt = {r["input"]: int(r["expected"]) for r in _rows(mnist_family) if r["kind"] == "omt"}
    assert highs.getInfo().objective_function_value == pytest.approx(omt["mnist_test_samples.npz:02"])


@settings(max_examples=25, deadline=None)
@given(problem=mask_problems())
@pytest.mark.parametrize("logic", ["QF_LIA", "QF_LRA"])
def test_random_instances_statuses_match_brute_force_and_every_solver(tmp_path_factory, logic, problem):
    if logic == "QF_LIA" and not np.all(problem.weights == np.round(problem.weights)):
        return
    best, _ = exhaustive_minimum(problem)
    folder = tmp_path_factory.mktemp("random")
    bounds = [0, problem.n_units] if best is None else [int(best) - 1, int(best)]
    for bound in (b for b in bounds if b >= 0):
        path = folder / f"b{bound}.smt2"
        instance = export_problem(problem, path, bound=bound, logic=logic)
        expected = "unsat" if best is None or bound < best else "sat"
        # A status is claimed only when proven; QF_LIA rounding may leave a razor-thin sat unknown.
        assert instance.expected in (expected, "unknown")
        for solver in SOLVERS:
            answer = external_solvers.run(solver, path)[0]
            if instance.expected != "unknown" or logic == "QF_LRA":
                assert answer == expected, (solver, logic, bound, answer)


def test_the_file_parses_back_into_the_same_formula(tmp_path):
    rng = np.random.default_rng(7)
    problem = MaskProblem(rng.normal(size=(4, 9)), rng.normal(size=4) * 0.3, np.ones(9), {"model": "x"})
    for logic in ("QF_LIA", "QF_LRA"):
        encoding = encoding_for(problem, logic)
        text = smtlib_text(encoding, "bound", 5, source={"input": "a"})
        script = SmtLibParser(encoding.environment).get_script(io.StringIO(text))
        parsed = script.get_strict_formula()
        expected = encoding.environment.formula_manager.And(encoding.constraints, encoding.at_most(5))
        assert encoding.environment.factory.is_valid(
            encoding.environment.formula_manager.Iff(parsed, expected), solver_name="z3"
        )


def test_hostile_names_cannot_change_the_file(tmp_path):
    """File names and metadata with | ) newlines end up cleaned inside :source; symbols are generated."""
    problem = MaskProblem(np.array([[1.0, 2.0]]), np.array([0.5]), np.ones(2), {"model": "evil|) (assert false)\n|x"})
    path = tmp_path / "evil.smt2"
    export_problem(problem, path, bound=1, source={"input": "in|put)\n(check-sat)", **problem.metadata})
    text = path.read_text()
    assert text.count("|") == 2  # only the two delimiters of :source: the hostile text stays inside
    assert text.splitlines().count("(check-sat)") == 1
    for solver in SOLVERS:  # an escaped (assert false) would make it unsat, an escaped (check-sat) answer twice
        answers = [a for a in external_solvers.run(solver, path) if a in ("sat", "unsat")]
        assert answers == ["sat"], solver
    names = set(re.findall(r"\(declare-fun (\S+) ", text))
    assert names == {"m_0", "m_1"}


def test_tensor_names_never_reach_the_file(tmp_path):
    import onnx

    proto = onnx.load(MNIST)
    evil = 'x|) (assert false) ; "\n'
    renames = {t: f"{evil}{i}" for i, t in enumerate({n for node in proto.graph.node for n in node.output})}
    for node in proto.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in proto.graph.output:
        value.name = renames.get(value.name, value.name)
    model = tmp_path / "renamed.onnx"
    onnx.save(proto, model)
    out = tmp_path / "x.smt2"
    assert main(["export", str(model), f"{SAMPLES}:images[0]", "--window", "7", "--top-k", "4", "--bound", "opt", "--out", str(out)]) == 0
    text = out.read_text()
    assert "assert false" not in text and external_solvers.run("z3", out)[0] == "sat"


def test_whole_network_files_are_qf_lra_and_solvers_agree(tmp_path):
    """Real MNIST net: the file is QF_LRA and its claimed status is z3's with the optimal mask fixed.
    (With 2 x 256 ReLUs free, z3, yices and cvc5 all time out on it: benchmarks, not test material.)"""
    out = tmp_path / "net.smt2"
    args = ["export", str(MNIST), f"{SAMPLES}:images[1]", "--method", "network", "--window", "14", "--bound", "opt", "--out", str(out)]
    assert main(args) == 0
    text = out.read_text()
    assert "(set-logic QF_LRA)" in text and _status(text) == "sat"


@settings(max_examples=15, deadline=None)
@given(problem=network_problems())
def test_random_relu_networks_every_solver_agrees(tmp_path_factory, problem):
    best, _ = exhaustive_minimum(problem)
    folder = tmp_path_factory.mktemp("net")
    omt = folder / "omt.smt2"
    export_problem(problem, omt, objective="omt", logic="QF_LRA")
    if best is None:
        assert external_solvers.run("z3", omt)[0] == "unsat"
        return
    assert _omt_value(external_solvers.run("z3", omt)) == best
    for bound in (int(best) - 1, int(best)):
        if bound < 0:
            continue
        path = folder / f"b{bound}.smt2"
        instance = export_problem(problem, path, bound=bound, logic="QF_LRA")
        expected = "sat" if bound >= best else "unsat"
        assert instance.expected in (expected, "unknown")
        for solver in SOLVERS:
            assert external_solvers.run(solver, path)[0] == expected, solver


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bound", "-1"], "bound must be >= 0"),
        (["--bound", "seven"], "bound must be an integer"),
        ([], "needs --bound"),
        (["--method", "smug_base", "--bound", "3"], "smug_base"),
        (["--format", "mps", "--bound", "3"], "apply to SMT-LIB"),
        (["--gamma", "1.5", "--bound", "3"], "gamma"),
    ],
)
def test_bad_export_requests_fail_cleanly(tmp_path, capsys, extra, message):
    out = tmp_path / ("x.mps" if "mps" in extra else "x.smt2")
    code = main(["export", str(MNIST), f"{SAMPLES}:images[0]", "--window", "7", "--out", str(out), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "x.smt2"
    assert main(["export", str(MNIST), f"{SAMPLES}:images[0]", "--bound", "3", "--out", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    existing = tmp_path / "x.smt2"
    existing.write_text("keep me")
    assert main(["export", str(MNIST), f"{SAMPLES}:images[0]", "--bound", "3", "--out", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and existing.read_text() == "keep me"
    family = tmp_path / "missing-parent" / "family"
    assert main(["export-benchmarks", str(MNIST), str(SAMPLES), "--out", str(family)]) == 2
    assert main(["export-benchmarks", str(MNIST), str(SAMPLES), "--bounds", "opt,-2", "--out", str(tmp_path / "f")]) == 2
    assert "bound must be >= 0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.smt2"]


def test_a_family_is_not_overwritten_without_force(mnist_family, capsys):
    before = (mnist_family / "instances.csv").read_text()
    code = main(["export-benchmarks", str(MNIST), str(SAMPLES), "--window", "7", "--limit", "1", "--out", str(mnist_family)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (mnist_family / "instances.csv").read_text() == before
    assert not [p for p in mnist_family.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


TIE = MaskProblem(np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.75]]), np.array([0.25, 0.75]), np.ones(3), {})


def test_statuses_hold_for_the_strict_problem_even_on_ties():
    """Two rows (dyadic numbers) that unit 1 (or 2) meets with equality: the optimum needs two units, but the
    relaxation (>=) and the cardinality rows (one positive unit each) allow one, so HiGHS cannot
    prove 2 and z3 settles bound 1; CP-SAT's integer rounding proves 2."""
    problem = TIE
    optimum = find_optimum(problem, solver="highs")
    assert optimum.value == 2 and not optimum.proven
    proven = find_optimum(problem, solver="cpsat")
    assert proven.proven and proven.value == 2
    encoding = encoding_for(problem, "QF_LRA")
    assert decision_status(encoding, 1, optimum) == "unsat"
    assert decision_status(encoding, 2, optimum) == "sat"
    clear = MaskProblem(np.array([[1.0, 1.0, 1.0]]), np.array([1.5]), np.ones(3), {})
    assert find_optimum(clear).proven


def test_export_options_that_do_not_fit_each_other(tmp_path, capsys):
    args = ["export", str(MNIST), f"{SAMPLES}:images[0]", "--window", "7"]
    assert main([*args, "--objective", "omt", "--bound", "3", "--out", str(tmp_path / "x.smt2")]) == 2
    assert "drop it for --objective omt" in capsys.readouterr().err
    assert main([*args, "--format", "lp", "--out", str(tmp_path / "x.mps")]) == 2
    assert "must end in .lp" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_opt_bounds_need_a_proven_optimum(tmp_path):
    """A tie leaves HiGHS with a mask it cannot prove optimal: `opt` is refused for one file, and a
    family records the input as skipped instead of writing a wrong status."""
    tie = TIE
    with pytest.raises(InputError, match="needs a proven optimum"):
        export_problem(tie, tmp_path / "x.smt2", bound="opt", solver="highs")
    rows = export_family([("tie", tie, {"input": "tie"})], tmp_path / "family", solver="highs")
    decisions = [r for r in rows if r.kind == "decision"]
    assert [r.file for r in decisions] == ["", ""] and all(r.expected.startswith("skipped: ") for r in decisions)
    assert next(r for r in rows if r.kind == "omt").expected == "unknown"
    assert sorted(p.name for p in (tmp_path / "family").iterdir()) == ["README.md", "instances.csv", "tie_omt.smt2"]
