"""Presolve for masking problems: a smaller problem with the same optimum, and the way back.

For min w.m subject to A m > b (strict), m in {0,1}^n, w >= 0, each reduction keeps at least one
optimal mask of the original (so the optimum and its proof carry over):
- a unit whose coefficients are all zero, or all <= 0, never helps a row and costs w_u >= 0: fixed to 0;
- a unit a row cannot do without (the row's largest activity without it is at or below b): fixed
  to 1; one that makes a row impossible (largest activity with it at or below b): fixed to 0;
- a row that holds for every mask (its smallest activity is above b) is dropped, and so is a row
  implied by another (a_i >= a_j elementwise, b_i <= b_j: a_i.m >= a_j.m > b_j >= b_i);
- coefficient tightening: when m_u = 1 alone meets a row whatever the others do
  (a_u > d = b - smallest activity), a_u is clipped to just above d. Every 0-1 point keeps its
  status, and the LP relaxation gets tighter;
- a dominated unit u (a_u <= a_v in every row, w_u >= w_v, v earlier in a fixed order) gets the row
  m_v - m_u > -1 (m_u <= m_v): swapping u for v in any mask keeps it feasible at no higher cost,
  and the order makes repeated swaps end, so some optimal mask meets every such row;
- a cardinality row per row that needs k >= 1 of its positive units (the k - 1 largest positive
  coefficients do not reach b, so no mask meets the row with fewer): sum of those m_u > k - 1.
  Every mask meets it, and its LP relaxation is far tighter where b is 0 or small: a.m >= 0 lets
  the empty mask through, sum m_u >= 1 does not (the gamma-0 tie of issue 13).
Tests that involve float sums use a tolerance on the safe side (they fix or drop less, never more).
The caller re-checks the expanded mask on the original problem; a presolved problem never decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from smugir.problem import MaskProblem

SAFETY = 1e-9  # relative to a row's size: float sums are trusted only beyond this
CLIP = 1e-7  # tightened coefficients stay this far (relative) above what the row needs
DENSE_LIMIT = 4_000_000  # pairwise reductions (implied rows, dominance) only on rows x units below this


@dataclass(frozen=True)
class Presolved:
    problem: MaskProblem  # over the free units only, rows renumbered
    free: np.ndarray  # (n_free,) original index of each unit of `problem`
    fixed_on: np.ndarray  # (n_units,) bool: fixed to 1
    fixed_weight: float  # objective of the units fixed to 1: add it to `problem`'s objective and bound
    infeasible: bool
    removed: dict[str, int] = field(default_factory=dict)

    def expand(self, mask: np.ndarray) -> np.ndarray:
        """The original problem's mask for a mask of the presolved problem."""
        full = self.fixed_on.copy()
        full[self.free] = np.asarray(mask, dtype=bool)
        return full


def presolve(problem: MaskProblem) -> Presolved:
    """Reduce `problem` (see the module docstring); works on dense or CSR coefficients."""
    matrix = scipy.sparse.csr_array(problem.coefficients, dtype=np.float64)
    matrix.sum_duplicates()
    n_rows, n_units = matrix.shape
    weights = problem.weights
    row_of = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    column = matrix.indices
    data = matrix.data.copy()
    size = np.abs(problem.bounds) + np.bincount(row_of, np.abs(data), minlength=n_rows)
    tolerance = SAFETY * size + 1e-300
    fixed = np.full(n_units, -1, dtype=np.int8)  # -1 free, 0, 1
    alive = np.ones(n_rows, dtype=bool)
    removed = dict.fromkeys(("zero_units", "useless_units", "forced_units", "redundant_rows", "implied_rows", "tightened_coefficients",
                             "dominated_units", "cardinality_rows"), 0)
    fixed[np.bincount(column, minlength=n_units) == 0] = 0
    removed["zero_units"] = int((fixed == 0).sum())
    infeasible = False
    while True:
        right = problem.bounds - np.bincount(row_of, np.where(fixed[column] == 1, data, 0.0), minlength=n_rows)
        active = (fixed[column] == -1) & alive[row_of]
        most = np.bincount(row_of, np.where(active & (data > 0), data, 0.0), minlength=n_rows)
        least = np.bincount(row_of, np.where(active & (data < 0), data, 0.0), minlength=n_rows)
        always = alive & (least > right + tolerance)
        removed["redundant_rows"] += int(always.sum())
        alive &= ~always
        if np.any(alive & (most < right - tolerance)):
            infeasible = True
            break
        active &= alive[row_of]
        limit = (right - tolerance)[row_of]
        needed = active & (data > 0) & (most[row_of] - data <= limit)
        harmful = active & (data < 0) & (most[row_of] + data <= limit)
        helps = np.zeros(n_units, dtype=bool)
        helps[column[active & (data > 0)]] = True
        useless = (fixed == -1) & ~helps
        on, off = np.unique(column[needed]), np.unique(column[harmful])
        if np.intersect1d(on, off).size:
            infeasible = True
            break
        if not (on.size or off.size or useless.any()):
            break
        removed["forced_units"] += int(on.size + off.size)
        removed["useless_units"] += int(useless.sum())
        fixed[useless] = 0
        fixed[off] = 0
        fixed[on] = 1
    free = np.flatnonzero(fixed == -1)
    fixed_on = fixed == 1
    if not infeasible:
        active = (fixed[column] == -1) & alive[row_of]
        least = np.bincount(row_of, np.where(active & (data < 0), data, 0.0), minlength=n_rows)
        need = right - least  # what a row still needs above its smallest activity
        clip = need + CLIP * size
        tight = active & (data > clip[row_of] + CLIP * size[row_of])
        data[tight] = clip[row_of[tight]]
        removed["tightened_coefficients"] = int(tight.sum())
    rows = np.flatnonzero(alive)
    reduced = scipy.sparse.csr_array((data, column, matrix.indptr), shape=matrix.shape)[rows][:, free]
    bounds = right[rows] if rows.size else np.zeros(0)
    # A row no fixed-on unit touches has right == b exactly; elsewhere `right` is a float difference.
    exact = np.bincount(row_of, fixed[column] == 1, minlength=n_rows)[rows] == 0
    row_tolerance = tolerance[rows]
    extra: list[tuple[int, int]] = []
    if not infeasible and rows.size * max(free.size, 1) <= DENSE_LIMIT and free.size:
        dense = reduced.toarray()
        keep = _unimplied_rows(dense, bounds)
        removed["implied_rows"] = int(rows.size - keep.size)
        dense, bounds, exact, row_tolerance = dense[keep], bounds[keep], exact[keep], row_tolerance[keep]
        if free.size ** 2 * max(keep.size, 1) <= 50 * DENSE_LIMIT:
            extra = _dominance(dense, weights[free])
        removed["dominated_units"] = len(extra)
        reduced = scipy.sparse.csr_array(dense)
    if not infeasible:
        cuts, cut_bounds = _cardinality_rows(reduced, bounds, row_tolerance, exact)
        removed["cardinality_rows"] = int(cut_bounds.size)
        implications = np.zeros((len(extra), free.size))
        for k, (better, worse) in enumerate(extra):
            implications[k, better], implications[k, worse] = 1.0, -1.0
        reduced = scipy.sparse.vstack([reduced, cuts, scipy.sparse.csr_array(implications)], format="csr")
        bounds = np.concatenate([bounds, cut_bounds, np.full(len(extra), -1.0)])
    coefficients = reduced.toarray() if isinstance(problem.coefficients, np.ndarray) else reduced
    if infeasible:
        coefficients, bounds = np.zeros((1, free.size)), np.zeros(1)  # 0 > 0: no mask
    result = MaskProblem(coefficients, bounds, weights[free], dict(problem.metadata))
    return Presolved(result, free, fixed_on, float(weights[fixed_on].sum()), infeasible, removed)


def _cardinality_rows(matrix: scipy.sparse.csr_array, bounds: np.ndarray, tolerance: np.ndarray,
                      exact: np.ndarray) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """Rows `sum of row i's positive units > k_i - 1` for the rows that need k_i >= 1 of them.

    With no unit a row reads 0, which fails `0 > b` whenever b >= 0 (exactly, where `b` is exact;
    else only beyond `tolerance`); with j units it reads at most the sum of its j largest positive
    coefficients, which fails when that sum is <= b - tolerance. k_i counts the failures.
    """
    matrix = scipy.sparse.csr_array(matrix)
    n_rows, n_units = matrix.shape
    row_of = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    positive = matrix.data > 0
    rows, columns, values = row_of[positive], matrix.indices[positive], matrix.data[positive]
    order = np.lexsort((-values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    running = np.cumsum(values)
    top_sums = running - np.concatenate([[0.0], running])[starts[rows]]  # sum of the j largest, j = rank + 1
    need = np.where(exact, bounds >= 0, bounds >= tolerance).astype(np.int64)
    need += np.bincount(rows, (top_sums <= bounds[rows] - tolerance[rows]) & need[rows].astype(bool), minlength=n_rows).astype(np.int64)
    chosen = np.flatnonzero(need > 0)
    pick = np.isin(rows, chosen)
    renumber = np.full(n_rows, -1)
    renumber[chosen] = np.arange(chosen.size)
    cut = scipy.sparse.csr_array((np.ones(int(pick.sum())), (renumber[rows[pick]], columns[pick])), shape=(chosen.size, n_units))
    return cut, need[chosen] - 1.0


def _unimplied_rows(dense: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Indices of rows no other row implies; of equal rows the first stays (implication is a preorder).

    Only rows that share a unit are compared (a row whose positive units lie outside row i's
    cannot be below it), which keeps 3000-row ImageNet problems at a fraction of a second; the
    rare implication between disjoint rows (one with no positive, the other with no negative
    coefficient) is left alone, which only drops less.
    """
    pattern = scipy.sparse.csr_array((dense != 0).astype(np.int32))
    overlap = scipy.sparse.csr_array(pattern @ pattern.T)
    keep = []
    for i in range(dense.shape[0]):
        others = overlap.indices[overlap.indptr[i] : overlap.indptr[i + 1]]
        others = others[others != i]
        if others.size:
            rows = dense[others]
            implies_i = (bounds[others] >= bounds[i]) & np.all(rows <= dense[i], axis=1)
            equal = implies_i & (bounds[others] == bounds[i]) & np.all(rows == dense[i], axis=1)
            if np.any(implies_i & ~(equal & (others > i))):
                continue
        keep.append(i)
    return np.array(keep, dtype=np.int64)


def _dominance(dense: np.ndarray, weights: np.ndarray) -> list[tuple[int, int]]:
    """(v, u) pairs: u is dominated by v, v earlier in the order (weight, -coefficient sum, index)."""
    order = np.lexsort((np.arange(weights.size), -dense.sum(axis=0), weights))
    position = np.empty(weights.size, dtype=np.int64)
    position[order] = np.arange(weights.size)
    pairs = []
    for u in range(weights.size):
        earlier = position < position[u]
        candidates = np.flatnonzero(earlier & (weights <= weights[u]) & np.all(dense >= dense[:, [u]], axis=0))
        if candidates.size:
            pairs.append((int(candidates[np.argmin(position[candidates])]), u))
    return pairs
