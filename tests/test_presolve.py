"""The exact layer against brute force: presolve keeps the optimum, the incumbent is feasible,
reduced-cost fixing never cuts off a better mask, ties are never called optimal unproven, progress
is reported, and the CP-SAT process never outlives a solve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smugir.incumbent import incumbent, reduced_cost_fixing, relaxation
from smugir.presolve import _cardinality_rows, presolve
from smugir.problem import MaskProblem
from smugir.solve import STRENGTHENED, SolveProgress, solve
from smugir.testing import exhaustive_minimum, mask_problems, tie_problems


any_problems = st.one_of(mask_problems(), tie_problems())


@settings(max_examples=150, deadline=None)
@given(problem=any_problems)
def test_presolve_keeps_the_optimum_and_maps_back(problem):
    best, _ = exhaustive_minimum(problem)
    pre = presolve(problem)
    if pre.infeasible:
        assert best is None
        return
    reduced_best, masks = exhaustive_minimum(pre.problem)
    if best is None:
        assert reduced_best is None
        return
    assert reduced_best is not None and reduced_best + pre.fixed_weight == pytest.approx(best)
    for mask in masks:  # every presolved optimum is an original optimum
        full = pre.expand(mask)
        assert problem.is_satisfied(full) and problem.objective(full) == pytest.approx(best)


@settings(max_examples=150, deadline=None)
@given(problem=any_problems)
def test_cardinality_rows_hold_for_every_mask_and_count_exactly(problem):
    """Every mask that meets a row meets its cardinality row; on rows without negative
    coefficients k is the least number of units that meets the row."""
    n = problem.n_units
    zero = np.zeros(problem.n_constraints)
    cuts, right = _cardinality_rows(problem.coefficients, problem.bounds, zero, np.ones(problem.n_constraints, dtype=bool))
    masks = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    values = masks @ problem.coefficients.toarray().T  # (masks, rows)
    meets = values > problem.bounds
    cut_values = masks @ cuts.toarray().T
    rows_cut = np.flatnonzero(problem.bounds >= 0)  # the rows the empty mask fails
    assert cuts.shape[0] == rows_cut.size
    for j, i in enumerate(rows_cut):
        assert np.all(cut_values[meets[:, i], j] > right[j])
        if np.all(problem.coefficients.toarray()[i] >= 0) and meets[:, i].any():
            assert masks[meets[:, i]].sum(axis=1).min() == right[j] + 1


def test_cardinality_rows_close_the_gamma_zero_tie():
    """a.m > 0 with mixed signs: the LP (a.m >= 0) takes the empty mask; with the cardinality
    rows the relaxation's bound is the set cover's."""
    rows = np.array([[1.5, 1.5, -0.5, 0.0], [0.0, -0.5, 1.5, 1.5]])
    problem = MaskProblem(rows, np.zeros(2), np.ones(4), {})
    assert relaxation(problem).bound < 1e-6
    pre = presolve(problem)
    assert pre.removed["cardinality_rows"] >= 1
    lp = relaxation(pre.problem)
    assert lp.bound + pre.fixed_weight > 1.99  # one unit of {0, 1} and one of {2, 3}
    (solution,) = solve(problem, "highs")
    assert solution.status == "optimal" and solution.objective == 2.0


@settings(max_examples=100, deadline=None)
@given(problem=any_problems)
def test_incumbent_is_exact_and_fixing_keeps_every_better_mask(problem):
    lp = relaxation(problem)
    if lp is None:
        return
    best, _ = exhaustive_minimum(problem)
    assert best is None or lp.bound <= best + 1e-9
    start = incumbent(problem, lp)
    if start is None:
        return
    assert problem.is_satisfied(start)
    value = problem.objective(start)
    fixing = reduced_cost_fixing(problem, lp, value)
    if fixing.proven:
        assert best == pytest.approx(value)
    for bits in np.ndindex(*(2,) * problem.n_units):
        mask = np.array(bits, dtype=bool)
        if problem.is_satisfied(mask) and problem.objective(mask) < value - 1e-9:
            assert not np.any(mask & fixing.zero) and np.all(mask[fixing.one])


@settings(max_examples=30, deadline=None)
@given(problem=tie_problems())
@pytest.mark.parametrize("backend", STRENGTHENED)
def test_ties_are_never_called_optimal_unproven(backend, problem):
    best, _ = exhaustive_minimum(problem)
    (solution,) = solve(problem, backend, timeout=20)
    if solution.status == "infeasible":
        assert best is None
    if solution.bound is not None and best is not None:
        assert solution.bound <= best + 1e-9
    if solution.mask is not None:
        assert problem.is_satisfied(solution.mask)
    if solution.status == "optimal":
        assert solution.objective == pytest.approx(best)


def _hard_problem(seed: int = 0, n: int = 80, k: int = 10) -> MaskProblem:
    """Knapsack-like rows like the real ones: mostly positive coefficients, a third of them needed."""
    rng = np.random.default_rng(seed)
    coefficients = rng.normal(size=(k, n)) + 0.3
    return MaskProblem(coefficients, 0.3 * np.maximum(coefficients, 0).sum(axis=1), np.ones(n), {})


@pytest.mark.parametrize("backend", ["highs", "cpsat", "portfolio", "scip"])
def test_progress_is_monotone_and_ends_at_the_result(backend):
    problem = _hard_problem()
    seen: list[SolveProgress] = []
    (solution,) = solve(problem, backend, timeout=10, on_progress=seen.append)
    assert seen, "no progress reported"
    incumbents = [p.incumbent for p in seen if p.incumbent is not None]
    bounds = [p.bound for p in seen if p.bound is not None]
    assert incumbents == sorted(incumbents, reverse=True) and bounds == sorted(bounds)
    assert all(p.bound <= p.incumbent for p in seen if p.bound is not None and p.incumbent is not None)
    assert incumbents[-1] == pytest.approx(solution.objective, rel=1e-12) and problem.is_satisfied(solution.mask)
    assert solution.details["presolve"]["units_left"] <= problem.n_units
    if solution.status == "optimal":
        assert seen[-1].gap == 0.0


def _cpsat_children() -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == os.getpid() and b"smugir.encoders.cpsat" in command:
                children.append(int(entry.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_portfolio_leaves_no_search_behind():
    """After a solve only warm, idle CP-SAT processes are left (asleep, in the pool), and shutdown
    ends them; a stopped search is not left running."""
    from smugir.encoders import cpsat

    problem = _hard_problem(1, n=150, k=12)
    (solution,) = solve(problem, "portfolio", timeout=2)
    assert solution.status in ("optimal", "feasible")
    idle = {child.process.pid for child in cpsat._idle}
    assert set(_cpsat_children()) <= idle
    time.sleep(0.3)
    for pid in idle:
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"  # asleep, not searching
    cpsat.shutdown()
    assert _cpsat_children() == []


def test_warm_cpsat_process_is_reused_and_dies_with_its_parent(tmp_path):
    """Two solves in one process use one CP-SAT process; killing the parent (SIGKILL, no atexit)
    takes the warm process with it."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, signal, numpy as np\n"
        "from smugir.problem import MaskProblem\n"
        "from smugir.solve import solve\n"
        "from smugir.encoders import cpsat\n"
        "p = MaskProblem(np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.75]]), np.array([0.25, 0.75]), np.ones(3), {})\n"
        "first = solve(p, 'cpsat', presolve=False)[0]\n"
        "pids = {c.process.pid for c in cpsat._idle}\n"
        "second = solve(p, 'cpsat', presolve=False)[0]\n"
        "assert first.status == second.status == 'optimal' and first.objective == second.objective == 2.0\n"
        "assert {c.process.pid for c in cpsat._idle} == pids and len(pids) == 1\n"
        "print(pids.pop(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    pid = int(run.stdout.strip())
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the warm CP-SAT process {pid} outlived its parent")
