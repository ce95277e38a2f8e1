"""`check_backend(solve)`: a solver backend against brute force on hypothesis-drawn problems.

A backend is any callable `solve(problem, timeout) -> solution or list of solutions`; a solution
is anything with the attributes of `smugir.solve.Solution`: `status` (optimal | feasible |
infeasible | unknown), `mask` ((n_units,) 0-1 or None), `objective` and `bound` (float or None).
A list means several masks, each minimal among the masks not listed before it (what
`smugir.solve.solve(..., solutions=N)` returns). The harness trusts nothing it is told: every
mask is checked exactly, every claim of optimality or infeasibility against brute force, every
bound against the true optimum, and the time against the budget.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.testing.brute_force import BruteForce, brute_force, feasible_masks
from smugir.testing.problems import masking_problems
from smugir.testing.report import failure, mask_text

Problem = MaskProblem | NetworkMaskProblem
Backend = Callable[[Problem, float], Any]
STATUSES = ("optimal", "feasible", "infeasible", "unknown")
TOLERANCE = 1e-9  # relative, on objectives and bounds (sums of float weights)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def _truth_text(best: float | None) -> str:
    return "no feasible mask (infeasible)" if best is None else f"optimum {best:g}"


def check_backend_answer(problem: Problem, answer: Any, truth: BruteForce | None = None, proven: bool = False) -> None:
    """Raise `KitFailure` unless `answer` (a solution or a list of them) is right for `problem`;
    with `proven`, the first solution must also be proven (optimal or infeasible)."""
    truth = truth or brute_force(problem)
    solutions = list(answer) if isinstance(answer, (list, tuple)) else [answer]
    if not solutions:
        raise failure(problem, "the backend returned no solution", "at least one solution", "[]")
    first = getattr(solutions[0], "status", None)
    if proven and first in ("feasible", "unknown"):
        reasons = (getattr(solutions[0], "details", None) or {}).get("unknown_reasons")
        raise failure(problem, "the backend did not prove its answer on a tiny problem", _truth_text(truth.optimum) + " (proven)",
                      f"{first} (the solver's reasons: {', '.join(map(str, reasons))})" if reasons else first)
    earlier: list[np.ndarray] = []
    for i, s in enumerate(solutions):
        which = f"solution {i}" if len(solutions) > 1 else "the solution"
        best = truth.minimum_excluding(earlier)  # the optimum among masks not returned before
        status, mask = getattr(s, "status", None), getattr(s, "mask", None)
        objective, bound = getattr(s, "objective", None), getattr(s, "bound", None)
        if status not in STATUSES:
            raise failure(problem, f"{which} has an unknown status", " | ".join(STATUSES), repr(status))
        if mask is None and status in ("optimal", "feasible"):
            raise failure(problem, f"{which} is {status} without a mask", "a mask", "mask=None")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (problem.n_units,) or not np.all((mask == 0) | (mask == 1)):
                raise failure(problem, f"{which}'s mask is not a 0-1 vector of {problem.n_units} units", f"shape ({problem.n_units},) of 0/1",
                              f"shape {mask.shape}, values {np.unique(mask).tolist()}")
            mask = mask.astype(bool)
            if status == "infeasible":
                raise failure(problem, f"{which} says infeasible but gives a mask", "no mask", mask_text(mask))
            if not feasible_masks(problem, mask)[0]:
                raise failure(problem, f"{which}'s mask violates the constraints (checked exactly)", "a feasible mask", mask_text(mask))
            if any(np.array_equal(mask, e) for e in earlier):
                raise failure(problem, f"{which} repeats an earlier mask", "distinct masks", mask_text(mask))
            value = problem.objective(mask)
            if objective is not None and not _same(float(objective), value):
                raise failure(problem, f"{which}'s objective is not its mask's cost", f"objective {value:g} ({mask_text(mask)})", f"objective {objective}")
            if status == "optimal" and not _same(value, best):
                raise failure(problem, f"{which} claims an optimum that is not optimal", _truth_text(best), f"optimal {value:g} ({mask_text(mask)})")
            earlier.append(mask)
        if status == "infeasible" and best is not None:
            witness = truth.masks[truth.feasible][0] if not earlier else None
            raise failure(problem, f"{which} claims infeasible, but a mask exists", _truth_text(best),
                          "infeasible" + (f" (but {mask_text(witness)} is feasible)" if witness is not None else ""))
        if bound is not None and best is not None and float(bound) > best and not _same(float(bound), best):
            raise failure(problem, f"{which}'s lower bound exceeds the optimum", f"a bound <= {best:g}", f"bound {bound}")
        if status in ("infeasible", "unknown") or mask is None:
            if i < len(solutions) - 1:
                raise failure(problem, f"{which} is {status}, yet more solutions follow it", "no solution after it", f"{len(solutions) - i - 1} more")


def _proven(answer: Any) -> bool:
    first = answer[0] if isinstance(answer, (list, tuple)) and answer else answer
    return getattr(first, "status", None) in ("optimal", "infeasible")


def timed_answer(solve: Backend, problem: Problem, timeout: float, grace: float) -> Any:
    """Call the backend and check it kept to its time budget (plus `grace` seconds)."""
    start = time.monotonic()
    try:
        answer = solve(problem, timeout)
    except Exception as exc:  # noqa: BLE001 (named with the problem that caused it)
        raise failure(problem, "the backend raised an exception", "an answer", f"{type(exc).__name__}: {exc}") from exc
    seconds = time.monotonic() - start
    if seconds > timeout + grace:
        raise failure(problem, "the backend ignored its time budget", f"an answer within {timeout:g} s (+{grace:g} s grace)", f"{seconds:.1f} s")
    return answer


def check_backend(
    solve: Backend,
    problems: st.SearchStrategy[Problem] | None = None,
    *,
    timeout: float = 10.0,
    grace: float = 5.0,
    max_examples: int = 40,
    deadline: float | None = None,
    settings: Settings | None = None,
    proven: bool = False,
) -> None:
    """Run `solve(problem, timeout)` on `max_examples` problems drawn from `problems` (default:
    `masking_problems()`) and raise `KitFailure` (an AssertionError) on the first wrong answer,
    shrunk by hypothesis to a small problem. `deadline` (ms) is hypothesis's per-example limit
    (None: none; the budget check uses `timeout` + `grace`); `settings` replaces all of these.
    `proven=True` also asks for a proof (optimal or infeasible) on every problem: for complete
    backends, whose problems here are small enough to prove within the budget. An unproven answer
    that used the whole budget is asked for once more: two CI runs on a loaded 2-core machine had z3
    spend its 10 s on a 3-unit problem it proves in milliseconds; a backend that is slow fails twice."""
    chosen = settings or Settings(max_examples=max_examples, deadline=deadline,
                                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

    @chosen
    @given(problem=problems if problems is not None else masking_problems())
    def backend_matches_brute_force(problem: Problem) -> None:
        start = time.monotonic()
        answer = timed_answer(solve, problem, timeout, grace)
        if proven and not _proven(answer) and time.monotonic() - start >= timeout:
            answer = timed_answer(solve, problem, timeout, grace)  # the budget ran out: once more, in case the machine stalled
        check_backend_answer(problem, answer, proven=proven)

    backend_matches_brute_force()
