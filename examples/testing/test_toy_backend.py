"""A complete test of a toy solver backend with smugir's property-testing kit.

Run it with `pytest examples/testing/test_toy_backend.py`. `exhaustive` is a correct (if slow)
backend; `greedy` is honest about what it knows (a mask, "feasible", bound 0); the two wrong
backends at the end are what check_backend exists to catch: one forgets a constraint row, one
calls its greedy mask optimal.
"""

import itertools

import numpy as np
import pytest

from smugir.solve import Solution
from smugir.testing import KitFailure, check_backend, mask_problems, masking_problems, tie_problems

PROBLEMS = masking_problems(max_units=8)  # random, tie-heavy and model-made problems of up to 8 units


def exhaustive(problem, timeout):
    """Every mask, cheapest feasible one wins: optimal, or infeasible when none is feasible."""
    best = None
    for bits in itertools.product((False, True), repeat=problem.n_units):
        mask = np.array(bits)
        if problem.is_satisfied(mask) and (best is None or problem.objective(mask) < problem.objective(best)):
            best = mask
    if best is None:
        return Solution("infeasible", None, None, None, "exhaustive", 0.0)
    value = problem.objective(best)
    return Solution("optimal", best, value, value, "exhaustive", 0.0)


def greedy(problem, timeout, claim="feasible"):
    """Keep everything, then drop the costliest units while the mask stays feasible."""
    mask = np.ones(problem.n_units, dtype=bool)
    if not problem.is_satisfied(mask):
        return Solution("unknown", None, None, 0.0, "greedy", 0.0)
    for unit in np.argsort(-problem.weights, kind="stable"):
        mask[unit] = False
        if not problem.is_satisfied(mask):
            mask[unit] = True
    return Solution(claim, mask, problem.objective(mask), 0.0, "greedy", 0.0)


def test_exhaustive_backend():
    check_backend(exhaustive, PROBLEMS, max_examples=30)


def test_greedy_backend():
    check_backend(greedy, PROBLEMS, max_examples=30)


def forgets_the_last_row(problem, timeout):
    """Wrong: solves the problem without its last constraint."""
    from smugir.problem import MaskProblem

    rows = max(problem.n_constraints - 1, 0)
    return exhaustive(MaskProblem(problem.coefficients[:rows], problem.bounds[:rows], problem.weights), timeout)


def greedy_claims_optimal(problem, timeout):
    """Wrong: a greedy mask is not always a minimum."""
    return greedy(problem, timeout, claim="optimal")


@pytest.mark.parametrize("wrong", [forgets_the_last_row, greedy_claims_optimal])
def test_the_kit_catches_wrong_backends(wrong):
    # The greedy mask is wrong on about 1 problem in 30 of these, so 500 examples miss it with
    # probability 0.967^500 < 1e-7; the search stops at the first failure (after ~30 examples).
    with pytest.raises(KitFailure) as caught:
        check_backend(wrong, tie_problems(max_units=5) | mask_problems(max_units=5), max_examples=500)
    print(caught.value)  # the shrunk counter-example, what was expected and what the backend said
