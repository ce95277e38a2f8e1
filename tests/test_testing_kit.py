"""smugir.testing checks itself: its brute force against plain loops, its harness against wrong
answers of every kind, the example's toy backends (the wrong ones caught), and its import guard."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings

from smugir.problem import MaskProblem
from smugir.solve import Solution
from smugir.testing import (
    KitFailure,
    brute_force,
    check_backend,
    check_backend_answer,
    exactly_satisfied,
    first_layer_problems,
    mask_problems,
    network_problems,
    problem_code,
    solved,
    tie_problems,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "testing" / "test_toy_backend.py"


def _loop_feasible(problem, mask) -> bool:
    """Exact by Fractions, one row at a time: the slow definition the brute force must equal."""
    if isinstance(problem, MaskProblem):
        dense = problem.coefficients.toarray()
        return all(sum((Fraction(float(a)) for a, keep in zip(row, mask) if keep), Fraction(0)) > Fraction(float(b))
                   for row, b in zip(dense, problem.bounds))
    return problem.is_satisfied(mask)  # float64 networks: no ties among these random reals


@settings(max_examples=60, deadline=None)
@given(drawn=solved(mask_problems(max_units=7) | tie_problems(max_units=7) | network_problems()))
def test_brute_force_equals_a_plain_loop(drawn):
    problem, truth = drawn.problem, drawn.truth
    for code in range(2**problem.n_units):
        mask = np.array([(code >> u) & 1 for u in range(problem.n_units)], dtype=bool)  # bit u keeps unit u
        assert truth.masks[code].tolist() == mask.tolist()
        assert truth.feasible[code] == _loop_feasible(problem, mask), mask
    best = min((problem.objective(m) for m, f in zip(truth.masks, truth.feasible) if f), default=None)
    assert truth.optimum == best


def test_ties_are_decided_exactly():
    # 1e16 + 1 > 1e16 holds in rationals but not in float64 (the sum rounds to 1e16)
    cases = [(0.1, 0.2, 0.3), (0.1, 0.7, 0.8), (1.0, 2.0, 3.0), (1e16, 1.0, 1e16)]
    for a, b, c in cases:
        problem = MaskProblem(np.array([[a, b]]), np.array([c]), np.ones(2))
        expected = Fraction(a) + Fraction(b) > Fraction(c)
        assert exactly_satisfied(problem, np.array([1, 1])) == expected, (a, b, c)


SQUARE = MaskProblem(np.array([[1.0, 1.0, 0.5], [0.0, 1.0, 1.0]]), np.array([0.9, 0.9]), np.array([1.0, 1.0, 1.0]))  # optimum 1: {m1}


def _solution(status, mask, objective=None, bound=None):
    mask = None if mask is None else np.array(mask, dtype=bool)
    objective = objective if objective is not None or mask is None else float(mask.sum())
    return Solution(status, mask, objective, bound, "test", 0.0)


@pytest.mark.parametrize("answer, message", [
    (_solution("optimal", [1, 0, 1]), "claims an optimum that is not optimal"),
    (_solution("optimal", [1, 0, 0]), "violates the constraints"),
    (_solution("infeasible", None), "claims infeasible, but a mask exists"),
    (_solution("feasible", [1, 1, 1], bound=1.5), "lower bound exceeds the optimum"),
    (_solution("feasible", [1, 1, 1], objective=2.0), "objective is not its mask's cost"),
    (_solution("done", [0, 1, 0]), "unknown status"),
    (_solution("optimal", None), "without a mask"),
    (_solution("feasible", [0, 1]), "not a 0-1 vector of 3 units"),
    ([_solution("optimal", [0, 1, 0]), _solution("optimal", [0, 1, 0])], "repeats an earlier mask"),
    ([_solution("optimal", [0, 1, 0]), _solution("optimal", [1, 1, 1])], "claims an optimum that is not optimal"),
])
def test_every_kind_of_wrong_answer_is_named(answer, message):
    with pytest.raises(KitFailure, match=message) as caught:
        check_backend_answer(SQUARE, answer)
    text = str(caught.value)
    assert "expected:" in text and "got:" in text and "reproduce with:" in text
    assert "  + 1 m0 + 1 m1 + 0.5 m2 > 0.9" in text


def test_right_answers_pass_and_proofs_can_be_required():
    check_backend_answer(SQUARE, _solution("optimal", [0, 1, 0], bound=1.0))
    check_backend_answer(SQUARE, [_solution("optimal", [0, 1, 0]), _solution("optimal", [1, 1, 0]), _solution("unknown", None)])
    check_backend_answer(SQUARE, _solution("feasible", [1, 1, 1], bound=0.0))
    with pytest.raises(KitFailure, match="did not prove"):
        check_backend_answer(SQUARE, _solution("feasible", [1, 1, 1]), proven=True)


def test_the_code_in_a_failure_rebuilds_the_problem():
    problem = MaskProblem(np.array([[0.1, -1 / 3]]), np.array([1e-17]), np.array([1.0, 2.0]))
    rebuilt = eval(problem_code(problem), {"np": np, "MaskProblem": MaskProblem})  # noqa: S307 (our own text)
    assert np.array_equal(rebuilt.coefficients.toarray(), problem.coefficients.toarray())
    assert np.array_equal(rebuilt.bounds, problem.bounds) and np.array_equal(rebuilt.weights, problem.weights)


def test_a_backend_that_raises_is_named_with_the_problem():
    def broken(problem, timeout):
        raise RuntimeError("segment table full")

    with pytest.raises(KitFailure, match="(?s)raised an exception.*RuntimeError: segment table full.*reproduce with"):
        check_backend(broken, mask_problems(max_units=3), max_examples=1)


def test_a_backend_over_its_budget_is_caught():
    def slow(problem, timeout):
        import time

        time.sleep(timeout + 0.3)
        return _solution("unknown", None)

    once = settings(max_examples=1, phases=[Phase.generate], database=None, deadline=None)  # no shrinking of a sleeper
    with pytest.raises(KitFailure, match="ignored its time budget"):
        check_backend(slow, mask_problems(max_units=3), timeout=0.1, grace=0.1, settings=once)


def test_a_budget_spent_without_a_proof_is_asked_once_more():
    """A stalled machine gets a second chance; a backend that never proves it fails."""
    import time

    from smugir.solve import solve

    calls = []

    def stalls(always: bool):
        def backend(problem, timeout):
            calls.append(1)
            if always or len(calls) == 1:
                time.sleep(timeout)
                return _solution("unknown", None)
            return solve(problem, "highs", timeout=timeout)
        return backend

    once = settings(max_examples=1, phases=[Phase.generate], database=None, deadline=None)
    check_backend(stalls(False), mask_problems(max_units=3), timeout=0.1, grace=1.0, settings=once, proven=True)
    assert len(calls) == 2
    with pytest.raises(KitFailure, match="did not prove"):
        check_backend(stalls(True), mask_problems(max_units=3), timeout=0.1, grace=1.0, settings=once, proven=True)


@settings(max_examples=15, deadline=None)
@given(source=first_layer_problems(max_units=6))
def test_model_problems_equal_onnxruntime(source):
    """The rows of a problem drawn from a random model are onnxruntime's float32 pre-activations."""
    problem = source.problem
    scale = np.maximum(problem.row_scale(), 1.0)
    for mask in brute_force(problem).masks[:8]:
        expected = problem.constraint_values(mask) - problem.bounds
        np.testing.assert_allclose(source.onnxruntime_slack(mask), expected, rtol=0, atol=1e-4 * scale.max())


@pytest.fixture(scope="module")
def example():
    """examples/testing/test_toy_backend.py, imported as a developer's test module."""
    spec = importlib.util.spec_from_file_location("toy_backend_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_backends_pass(example):
    example.test_exhaustive_backend()
    example.test_greedy_backend()


@pytest.mark.parametrize("wrong, message", [("forgets_the_last_row", "violates the constraints (checked exactly)"),
                                            ("greedy_claims_optimal", "claims an optimum that is not optimal")])
def test_the_example_catches_its_wrong_backends(example, wrong, message, capsys):
    example.test_the_kit_catches_wrong_backends(getattr(example, wrong))  # pytest.raises(KitFailure) inside
    shown = capsys.readouterr().out
    assert message in shown and "reproduce with:" in shown


def test_importing_the_kit_without_hypothesis_names_the_extra():
    code = "import sys; sys.modules['hypothesis'] = None; import smugir.testing"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: smugir.testing needs hypothesis, which is not installed: pip install 'smugir[testing]'")
