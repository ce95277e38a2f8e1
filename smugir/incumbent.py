"""A good mask before the exact search, and the units a proof of "nothing better" may fix.

`incumbent` builds two greedy masks (from nothing and from the rounded LP relaxation, adding the
unit that most reduces the violation), keeps the better after drop moves, then improves it by
local search: drop a unit, or swap two kept units for one. Every mask it returns passed the exact
float64 check (`MaskProblem.is_satisfied`).

`reduced_cost_fixing` is the textbook argument, made safe for floats: for any duals y >= 0 and
d = w - A^T y, every m in [0,1]^n with A m >= b has
    w.m = y.A m + d.m >= y.b + sum_u min(d_u, 0) + |d_u| [m_u differs from d_u's cheap side] = L + ...
so a mask better than the incumbent z cannot set m_u = 1 where L + d_u > z - 1 (integer weights)
or m_u = 0 where L - d_u > z - 1. L and d are float sums; they are trusted only with a margin
(`SAFETY` times the sum of the absolute terms) that bounds their rounding error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse

from smugir.problem import MaskProblem

SAFETY = 1e-9
SWAP_LIMIT = 2_000_000  # rows x units up to which the dense 2-for-1 swap search runs


@dataclass(frozen=True)
class Relaxation:
    values: np.ndarray  # (n_units,) LP optimum in [0, 1]
    duals: np.ndarray  # (n_rows,) >= 0
    bound: float  # a proven lower bound on every mask (L above, with its margin taken off)
    reduced_costs: np.ndarray  # (n_units,) d = w - A^T y
    margin: float  # rounding error bound on each of L and d_u


def relaxation(problem: MaskProblem, seconds: float | None = None) -> Relaxation | None:
    """The LP relaxation (A m >= b with integral rows closed, 0 <= m <= 1) by HiGHS through scipy,
    within `seconds`; None if it has no optimum (or none in time)."""
    matrix = scipy.sparse.csr_array(problem.coefficients, dtype=np.float64)
    if problem.n_constraints == 0:
        zeros = np.zeros(problem.n_units)
        return Relaxation(zeros, np.zeros(0), 0.0, problem.weights.copy(), 0.0)
    options = {} if seconds is None else {"time_limit": max(float(seconds), 0.01)}
    closed, _ = problem.closed_bounds()  # every 0-1 mask that meets the problem meets A m >= closed
    result = scipy.optimize.linprog(problem.weights, A_ub=-matrix, b_ub=-closed, bounds=(0, 1), method="highs", options=options)
    if result.status != 0:
        return None
    duals = np.maximum(-np.asarray(result.ineqlin.marginals, dtype=np.float64), 0.0)
    reduced = problem.weights - matrix.T @ duals
    scale = float(np.abs(duals) @ np.abs(closed) + (abs(matrix).T @ duals).sum() + problem.weights.sum())
    margin = SAFETY * (scale + 1.0)
    bound = float(duals @ closed + np.minimum(reduced, 0.0).sum()) - margin
    return Relaxation(np.clip(result.x, 0.0, 1.0), duals, bound, reduced, margin)


def incumbent(problem: MaskProblem, lp: Relaxation | None, seconds: float = 1.0) -> np.ndarray | None:
    """A mask that passes the exact check, or None (greedy on all useful units fails too)."""
    deadline = time.monotonic() + seconds
    matrix = scipy.sparse.csr_array(problem.coefficients, dtype=np.float64)
    values = lp.values if lp is not None else np.zeros(problem.n_units)
    positive = matrix.copy()
    positive.data = np.maximum(positive.data, 0.0)
    helpful = np.asarray(positive.sum(axis=0)).reshape(-1)
    order = np.lexsort((-helpful / np.maximum(problem.weights, 1e-12), -values))
    small = matrix.shape[0] * matrix.shape[1] <= SWAP_LIMIT
    mask = None
    if small:  # greedy from nothing and from the rounded LP; the better one after drop moves
        dense = matrix.toarray()
        tries = [_greedy(problem, dense, values, start, deadline) for start in (None, values > 0.5)]
        tries = [_drop(problem, m, order[::-1], deadline) for m in tries if m is not None]
        mask = min(tries, key=problem.objective) if tries else None
    if mask is None:
        mask = _shortest_prefix(problem, order)
        if mask is None:
            return None
        mask = _drop(problem, mask, order[::-1], deadline)
    if small:
        mask = _swap(problem, matrix.toarray(), mask, deadline)
    return mask


def _greedy(problem: MaskProblem, dense: np.ndarray, values: np.ndarray, start: np.ndarray | None = None,
            deadline: float | None = None) -> np.ndarray | None:
    """From `start` (default: no unit), add the unit that most reduces the total violation per unit
    of weight (LP value breaks ties) until the exact check holds; None if no unit helps any more
    (or time is up)."""
    scale = np.maximum(np.abs(dense).max(axis=1, initial=0.0), np.abs(problem.bounds)) + 1e-300
    rows, bounds = dense / scale[:, None], problem.bounds / scale
    mask = np.zeros(problem.n_units, dtype=bool) if start is None else start.copy()
    activity = rows @ mask
    while not problem.is_satisfied(mask):
        if deadline is not None and time.monotonic() > deadline:
            return None
        violation = np.maximum(bounds + 1e-9 - activity, 0.0).sum()
        after = np.maximum(bounds[:, None] + 1e-9 - activity[:, None] - rows, 0.0).sum(axis=0)
        gain = np.where(mask, -np.inf, (violation - after) / np.maximum(problem.weights, 1e-9) + 1e-6 * values)
        unit = int(np.argmax(gain))
        if not gain[unit] > 1e-6 * values[unit] or mask[unit]:
            return None
        mask[unit] = True
        activity += rows[:, unit]
    return mask


def _shortest_prefix(problem: MaskProblem, order: np.ndarray) -> np.ndarray | None:
    """The shortest prefix of `order` found by bisection whose mask passes (feasibility need not be
    monotone in the prefix length, but the bisection keeps a passing upper end)."""
    def prefix(k: int) -> np.ndarray:
        mask = np.zeros(problem.n_units, dtype=bool)
        mask[order[:k]] = True
        return mask

    high = problem.n_units
    if not problem.is_satisfied(prefix(high)):
        return None
    if problem.is_satisfied(prefix(0)):
        return prefix(0)
    low = 0
    while high - low > 1:
        middle = (low + high) // 2
        if problem.is_satisfied(prefix(middle)):
            high = middle
        else:
            low = middle
    return prefix(high)


def _drop(problem: MaskProblem, mask: np.ndarray, order: np.ndarray, deadline: float | None = None) -> np.ndarray:
    """Drop kept units one at a time (in `order`) while the exact check holds (until `deadline`)."""
    mask = mask.copy()
    for unit in order:
        if deadline is not None and time.monotonic() > deadline:
            break
        if mask[unit]:
            mask[unit] = False
            if not problem.is_satisfied(mask):
                mask[unit] = True
    return mask


def _swap(problem: MaskProblem, dense: np.ndarray, mask: np.ndarray, deadline: float) -> np.ndarray:
    """2-for-1 swaps (two kept units out, one cheaper-than-both unit in) until none helps or time is up."""
    weights = problem.weights
    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        activity = dense @ mask
        kept = np.flatnonzero(mask)
        outside = np.flatnonzero(~mask)
        for a in range(kept.size):
            if time.monotonic() > deadline:
                break
            for b in range(a + 1, kept.size):
                u, v = kept[a], kept[b]
                rest = activity - dense[:, u] - dense[:, v]
                fits = np.all(rest[:, None] + dense[:, outside] > problem.bounds[:, None], axis=0)
                fits &= weights[outside] < weights[u] + weights[v]
                for t in outside[fits]:
                    trial = mask.copy()
                    trial[[u, v]] = False
                    trial[t] = True
                    if problem.is_satisfied(trial):
                        mask = _drop(problem, trial, np.flatnonzero(trial), deadline)
                        improved = True
                        break
                if improved:
                    break
            if improved:
                break
    return mask


@dataclass(frozen=True)
class Fixing:
    zero: np.ndarray  # (n_units,) bool: no better mask keeps these
    one: np.ndarray  # (n_units,) bool: no better mask drops these
    proven: bool  # the bound alone proves the incumbent optimal


def reduced_cost_fixing(problem: MaskProblem, lp: Relaxation, objective: float) -> Fixing:
    """Units whose value in any mask better than `objective` is known (see the module docstring)."""
    integral = bool(np.all(problem.weights == np.round(problem.weights)))
    target = objective - 1 if integral else objective  # a better mask has objective <= target (< for reals)
    cost = np.abs(lp.reduced_costs) - lp.margin
    excluded = lp.bound + cost > target if integral else lp.bound + cost >= target
    zero = excluded & (lp.reduced_costs > 0)
    one = excluded & (lp.reduced_costs < 0)
    proven = lp.bound > target if integral else lp.bound >= target
    return Fixing(zero, one, bool(proven))
