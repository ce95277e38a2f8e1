"""The ground truth for small masking problems: every mask enumerated, each checked exactly.

Feasibility is decided on the problem's float64 numbers taken as exact rationals (what the
SMT-LIB exact export means): float64 decides where its rounding cannot matter, and a row (or a
logit margin) too close to call is recomputed with `fractions.Fraction`. So a tie a.m = b is
never read as a.m > b, whatever order a solver adds the terms in.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from smugir.problem import MaskProblem, NetworkMaskProblem

Problem = MaskProblem | NetworkMaskProblem
MAX_UNITS = 20  # 2^20 masks: about 20 MB of masks and a second of numpy; beyond, no brute force
CLOSE = 1e-9  # relative slack below which float64 does not decide a row


def all_masks(n_units: int) -> np.ndarray:
    """(2^n, n) bool: every mask, mask i keeping unit u when bit u of i is set."""
    if n_units > MAX_UNITS:
        raise ValueError(f"brute force enumerates 2^n masks; {n_units} units is more than {MAX_UNITS}")
    codes = np.arange(2**n_units, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_units)) & 1).astype(bool)


def _exact_row(units: np.ndarray, values: np.ndarray, bound: float, mask: np.ndarray) -> bool:
    return sum((Fraction(float(a)) for u, a in zip(units, values) if mask[u]), Fraction(0)) > Fraction(float(bound))


def _mask_feasible(problem: MaskProblem, masks: np.ndarray) -> np.ndarray:
    a = problem.coefficients
    values = masks.astype(np.float64) @ a.T.toarray() if masks.size else np.zeros((len(masks), problem.n_constraints))
    size = masks.astype(np.float64) @ abs(a).T.toarray() if masks.size else values
    slack = values - problem.bounds
    close = np.abs(slack) <= CLOSE * np.maximum(size, np.abs(problem.bounds))
    holds = slack > 0
    for i, row in zip(*np.nonzero(close)):
        units, coefficients = problem.row(int(row))
        holds[i, row] = _exact_row(units, coefficients, problem.bounds[row], masks[i])
    return holds.all(axis=1)


def _exact_margins(problem: NetworkMaskProblem, mask: np.ndarray) -> list[Fraction]:
    """label logit minus each other logit, in rationals."""
    h = [Fraction(float(base)) + (Fraction(float(d)) if mask[u] else 0) for base, d, u in zip(problem.base, problem.delta, problem.unit_of)]
    for k, (w, b) in enumerate(problem.layers):
        h = [sum((Fraction(float(wij)) * hj for wij, hj in zip(row, h) if wij != 0), Fraction(float(bi))) for row, bi in zip(w, b)]
        if k < len(problem.layers) - 1:
            h = [max(v, Fraction(0)) for v in h]
    return [h[problem.label] - v for j, v in enumerate(h) if j != problem.label]


def _network_feasible(problem: NetworkMaskProblem, masks: np.ndarray) -> np.ndarray:
    h = problem.base + problem.delta * masks[:, problem.unit_of]
    size = np.abs(problem.base) + np.abs(problem.delta) * masks[:, problem.unit_of]
    for k, (w, b) in enumerate(problem.layers):
        h, size = h @ w.T + b, size @ np.abs(w).T + np.abs(b)
        if k < len(problem.layers) - 1:
            h = np.maximum(h, 0.0)
    others = np.arange(h.shape[1]) != problem.label
    margins = (h[:, [problem.label]] - h)[:, others] - problem.margin
    close = np.any(np.abs(margins) <= CLOSE * (size.max(axis=1, keepdims=True) + abs(problem.margin)), axis=1)
    feasible = np.all(margins > 0, axis=1)
    for i in np.flatnonzero(close):
        feasible[i] = all(m > Fraction(float(problem.margin)) for m in _exact_margins(problem, masks[i]))
    return feasible


def feasible_masks(problem: Problem, masks: np.ndarray) -> np.ndarray:
    """(len(masks),) bool: which of `masks` ((k, n_units), 0-1) satisfy `problem` exactly."""
    masks = np.asarray(masks).astype(bool)
    masks = masks.reshape(1, -1) if masks.ndim == 1 else masks
    if isinstance(problem, MaskProblem):
        return _mask_feasible(problem, masks)
    return _network_feasible(problem, masks)


def exactly_satisfied(problem: Problem, mask: np.ndarray) -> bool:
    """Whether `mask` satisfies every constraint of `problem`, decided exactly."""
    return bool(feasible_masks(problem, np.asarray(mask).reshape(1, -1))[0])


@dataclass(frozen=True)
class BruteForce:
    """Every mask of a small problem, which are feasible, and what each costs."""

    masks: np.ndarray  # (2^n, n) bool
    feasible: np.ndarray  # (2^n,) bool
    objectives: np.ndarray  # (2^n,) float64

    @cached_property
    def optimum(self) -> float | None:
        """The least objective of a feasible mask (None: no mask is feasible)."""
        return float(self.objectives[self.feasible].min()) if self.feasible.any() else None

    @property
    def optimal_masks(self) -> list[np.ndarray]:
        if self.optimum is None:
            return []
        best = self.feasible & np.isclose(self.objectives, self.optimum, rtol=1e-12, atol=1e-12)
        return list(self.masks[best])

    def minimum_excluding(self, masks: list[np.ndarray]) -> float | None:
        """The least objective of a feasible mask not among `masks` (None: there is none)."""
        left = self.feasible.copy()
        weights = 1 << np.arange(self.masks.shape[1], dtype=np.int64)
        for mask in masks:
            left[int(np.asarray(mask, dtype=bool) @ weights)] = False
        return float(self.objectives[left].min()) if left.any() else None


def brute_force(problem: Problem) -> BruteForce:
    """Enumerate every mask of `problem` (at most MAX_UNITS units)."""
    masks = all_masks(problem.n_units)
    return BruteForce(masks, feasible_masks(problem, masks), masks.astype(np.float64) @ problem.weights)


def exhaustive_minimum(problem: Problem) -> tuple[float | None, list[np.ndarray]]:
    """The true minimum and every mask that attains it (None and [] when no mask works)."""
    result = brute_force(problem)
    return result.optimum, result.optimal_masks
