"""The masking problem IR: the contract between the neural side and the solver side.

Encoders and exporters see only these two classes (no onnx, no onnxruntime), so a new solver
backend never has to know where the numbers came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
from scipy import sparse

from smugir.errors import InputError


def _finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contains NaN or infinite values")


@dataclass(frozen=True)
class MaskProblem:
    """0-1 linear program: minimise weights @ m subject to coefficients @ m > bounds (strict).

    `coefficients` is a `scipy.sparse.csr_array` (float64, sorted indices, no duplicates, no stored
    zeros): a first-layer neuron reads only its receptive field, so a 224x224 conv problem with
    3000 rows holds ~80k non-zeros, not 3000 x 50,176 floats. Dense arrays (and any scipy sparse
    format) are accepted and converted.
    """

    coefficients: sparse.csr_array  # (n_constraints, n_units) float64: a_iu
    bounds: np.ndarray  # (n_constraints,) float64: b_i
    weights: np.ndarray  # (n_units,) float64 >= 0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        coefficients = as_csr(self.coefficients)
        bounds = np.asarray(self.bounds, dtype=np.float64).reshape(-1)
        weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        if coefficients.shape[0] != bounds.size:
            raise InputError(f"{coefficients.shape[0]} constraint rows but {bounds.size} bounds")
        if coefficients.shape[1] != weights.size:
            raise InputError(f"{coefficients.shape[1]} unit columns but {weights.size} weights")
        for name, array in (("coefficients", coefficients.data), ("bounds", bounds), ("weights", weights)):
            _finite(name, array)
        if np.any(weights < 0):
            raise InputError("objective weights must be >= 0")
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "weights", weights)

    @property
    def n_units(self) -> int:
        return int(self.weights.size)

    @property
    def n_constraints(self) -> int:
        return int(self.bounds.size)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Constraint i's non-zeros: (unit indices, coefficients)."""
        a = self.coefficients
        span = slice(int(a.indptr[i]), int(a.indptr[i + 1]))
        return a.indices[span], a.data[span]

    def rows(self) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        """(unit indices, coefficients, bound) of every constraint, in order."""
        for i in range(self.n_constraints):
            yield (*self.row(i), float(self.bounds[i]))

    def used_units(self) -> np.ndarray:
        """(n_units,) bool: the units some constraint reads (the rest can only cost)."""
        used = np.zeros(self.n_units, dtype=bool)
        used[self.coefficients.indices] = True
        return used

    def row_scale(self) -> np.ndarray:
        """max(|a_i|, |b_i|) per row: what encoders divide by to get unit-sized rows."""
        a = self.coefficients
        largest = np.zeros(self.n_constraints)
        filled = np.flatnonzero(np.diff(a.indptr))
        if filled.size:
            largest[filled] = np.maximum.reduceat(np.abs(a.data), a.indptr[filled])
        return np.maximum(largest, np.abs(self.bounds))

    def integral_rows(self) -> np.ndarray:
        """(n_constraints,) bool: rows whose coefficients are all integers (below 2**52, so their
        0-1 sums are exact), such as presolve's cardinality and implication rows."""
        a = self.coefficients
        exact = (a.data == np.round(a.data)) & (np.abs(a.data) < 2.0**52)
        bad = np.bincount(np.repeat(np.arange(self.n_constraints), np.diff(a.indptr)), ~exact, minlength=self.n_constraints)
        return (bad == 0) & (np.abs(self.bounds) < 2.0**52)

    def closed_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds for the non-strict form `coefficients @ m >= bounds`, and which rows are exact.

        On an integral row a.m > b holds for a 0-1 mask exactly when a.m >= floor(b) + 1, so that
        row needs no margin and its LP relaxation loses nothing; other rows keep b, and a
        solver without strict inequalities must add its own margin to them (or read them as a
        relaxation)."""
        integral = self.integral_rows()
        return np.where(integral, np.floor(self.bounds) + 1.0, self.bounds), integral

    def constraint_values(self, mask: np.ndarray) -> np.ndarray:
        return self.coefficients @ np.asarray(mask, dtype=np.float64).reshape(-1)

    def is_satisfied(self, mask: np.ndarray) -> bool:
        """Every constraint strictly holds, in exact float64 arithmetic on the given mask."""
        return bool(np.all(self.constraint_values(mask) > self.bounds))

    def objective(self, mask: np.ndarray) -> float:
        return float(self.weights @ np.asarray(mask, dtype=np.float64))


def as_csr(coefficients: Any) -> sparse.csr_array:
    """A float64 CSR array in canonical form from a dense array or any scipy sparse matrix/array."""
    if sparse.issparse(coefficients):
        if coefficients.ndim == 1:
            coefficients = coefficients.reshape(1, -1)
        matrix = sparse.csr_array(coefficients, dtype=np.float64, copy=True)
    else:
        matrix = sparse.csr_array(np.atleast_2d(np.asarray(coefficients, dtype=np.float64)))
    if matrix.ndim != 2:
        raise InputError(f"coefficients must be a 2-D matrix, got {matrix.ndim} dimensions")
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


@dataclass(frozen=True)
class NetworkMaskProblem:
    """Whole-network encoding of a ReLU MLP.

    The masked input is x'(m) = base + delta * m[unit_of] elementwise; dense layers (W, b) follow
    with ReLU between them (not after the last); require logits[label] - logits[j] > margin for
    every j != label. Minimise weights @ m.
    """

    base: np.ndarray  # (n_inputs,)
    delta: np.ndarray  # (n_inputs,)
    unit_of: np.ndarray  # (n_inputs,) int64 in [0, n_units)
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    label: int
    margin: float
    weights: np.ndarray  # (n_units,)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.asarray(self.base).size
        if np.asarray(self.delta).size != n or np.asarray(self.unit_of).size != n:
            raise InputError("base, delta and unit_of must have one entry per input element")
        weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        unit_of = np.asarray(self.unit_of, dtype=np.int64).reshape(-1)
        if unit_of.size and (unit_of.min() < 0 or unit_of.max() >= weights.size):
            raise InputError(f"unit_of must lie in [0, {weights.size})")
        width = n
        for k, (w, b) in enumerate(self.layers):
            if w.shape != (b.size, width):
                raise InputError(f"layer {k} has weight {w.shape} and bias {b.shape}; expected ({b.size}, {width})")
            _finite(f"layer {k}", w)
            width = b.size
        if not 0 <= self.label < width:
            raise InputError(f"label {self.label} is out of range for {width} logits")
        _finite("base", np.asarray(self.base))
        _finite("delta", np.asarray(self.delta))
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "unit_of", unit_of)

    @property
    def n_units(self) -> int:
        return int(self.weights.size)

    def inputs(self, mask: np.ndarray) -> np.ndarray:
        return self.base + self.delta * np.asarray(mask, dtype=np.float64)[self.unit_of]

    def logits(self, mask: np.ndarray) -> np.ndarray:
        h = self.inputs(mask)
        for k, (w, b) in enumerate(self.layers):
            h = w @ h + b
            if k < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def is_satisfied(self, mask: np.ndarray) -> bool:
        logits = self.logits(mask)
        return bool(np.all(np.delete(logits[self.label] - logits, self.label) > self.margin))

    def objective(self, mask: np.ndarray) -> float:
        return float(self.weights @ np.asarray(mask, dtype=np.float64))
