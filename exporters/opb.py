"""Masking problems as OPB files (the Pseudo-Boolean Competition's format) on CP-SAT's integer rows.

A masking problem has real coefficients; OPB wants integers. The file holds exactly the integer
model the CP-SAT backend solves (`smugir.encoders.cpsat.integer_rows`, one of two roundings), and
its header says which, because the two mean different things for the exact problem:
- relaxed: every mask of the exact problem satisfies these rows, so the file's optimum is a lower
  bound on the exact optimum and UNSATISFIABLE means no mask exists at all;
- restricted: every solution of these rows is a mask of the exact problem, so the file's optimum
  is an upper bound on the exact optimum and any solution is a valid mask.
Variable x<u+1> is mask bit m_u (1 keeps input unit u); the objective is the unit weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np
import scipy.sparse

from smugir.encoders.cpsat import integer_rows, integer_weights
from smugir.errors import InputError, SolverError
from smugir.exporters.files import write_atomically
from smugir.exporters.provenance import plain_text
from smugir.problem import MaskProblem

ROUNDINGS = ("relaxed", "restricted")
MEANING = {
    "relaxed": "every mask of the exact problem satisfies these rows (coefficients rounded up): the optimum "
    "is a lower bound on the exact optimum, UNSATISFIABLE means the exact problem has no mask",
    "restricted": "every solution of these rows is a mask of the exact problem (coefficients rounded down): "
    "the optimum is an upper bound on the exact optimum, every solution a valid mask",
}
ROUNDING_RULE = ("each row a.m > b scaled by a power of two s (its largest number about 2^30), then "
                 "sum ceil(s a_u) m_u >= floor(s b) + 1 (relaxed) or sum floor(s a_u) m_u >= floor(s b) + 1 (restricted)")


@dataclass(frozen=True)
class IntegerModel:
    """The 0-1 integer program of one rounding: minimise weights @ m subject to rows @ m >= right."""

    rows: scipy.sparse.csr_array  # int64
    right: np.ndarray  # int64
    weights: np.ndarray  # int64
    rounding: str

    def satisfied_by(self, mask: np.ndarray) -> bool:
        """Exact integer check (int64: rows reach 2^31 per term, 2^47 for 10^5 terms)."""
        return bool(np.all(self.rows @ np.asarray(mask, dtype=np.int64) >= self.right))


def integer_model(problem: MaskProblem, rounding: str) -> IntegerModel:
    if rounding not in ROUNDINGS:
        raise InputError(f"unknown rounding {rounding!r}; accepted: {', '.join(ROUNDINGS)}")
    if not isinstance(problem, MaskProblem):
        raise InputError("OPB and WCNF files hold first-layer masking problems; --method network needs smt2, mps or lp")
    try:
        weights = integer_weights(problem.weights)
    except SolverError:
        raise InputError("OPB and WCNF files need integer unit weights (pixel, window and segment counts are)") from None
    rows, right = integer_rows(problem, rounding == "relaxed")
    return IntegerModel(rows, right, weights, rounding)


def header_lines(model: IntegerModel, source: Mapping[str, Any] | None) -> list[str]:
    """Comment text (without the comment mark) shared by the OPB and WCNF files."""
    return [
        "smugir masking problem: a minimal input mask for a neural network classifier (SMUG, ICLR 2021)",
        f"rounding: {model.rounding}: {MEANING[model.rounding]}",
        f"rows: {ROUNDING_RULE}",
        "variable x<u+1> is mask bit m_u (1 keeps input unit u); minimise the sum of kept units' weights",
        *(f"{plain_text(key)}: {plain_text(value)}" for key, value in (source or {}).items()),
    ]


def _terms(columns: np.ndarray, values: np.ndarray) -> str:
    if columns.size == 0:
        return "+0 x1"  # a row that reads no unit
    return " ".join(f"{int(v):+d} x{int(c) + 1}" for c, v in zip(columns, values))


def opb_lines(model: IntegerModel, source: Mapping[str, Any] | None = None) -> Iterator[str]:
    n_units = model.weights.size
    yield f"* #variable= {max(n_units, 1)} #constraint= {model.right.size}"
    for line in header_lines(model, source):
        yield f"* {line}"
    kept = np.flatnonzero(model.weights)
    yield f"min: {_terms(kept, model.weights[kept]) if kept.size else '+0 x1'} ;"
    rows = model.rows
    for i in range(model.right.size):
        span = slice(int(rows.indptr[i]), int(rows.indptr[i + 1]))
        yield f"{_terms(rows.indices[span], rows.data[span])} >= {int(model.right[i])} ;"


@dataclass(frozen=True)
class PbFile:
    path: Path
    variables: int
    constraints: int  # rows (OPB) or hard clauses (WCNF)


def write_opb(problem: MaskProblem, path: str | os.PathLike, rounding: str = "relaxed",
              source: Mapping[str, Any] | None = None, force: bool = False) -> PbFile:
    """Write the file all or nothing (see `smugir.exporters.files.write_atomically`)."""
    model = integer_model(problem, rounding)

    def write(stream: IO[bytes]) -> None:
        for line in opb_lines(model, source):
            stream.write(line.encode("utf-8") + b"\n")

    written = write_atomically(path, write, force)
    return PbFile(written, max(model.weights.size, 1), int(model.right.size))
