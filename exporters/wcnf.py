"""Masking problems as WCNF files (the MaxSAT Evaluation's 2022+ format) on CP-SAT's integer rows.

The hard clauses (`h ... 0`) are the rows of one integer rounding (see `smugir.exporters.opb`:
the same rows, the same meaning of an optimum or of UNSATISFIABLE), each encoded to CNF by PySAT's
`pysat.pb.PBEnc` with the adder encoding (pindakaas), whose size grows with the number of bits of
the coefficients (about 2^30 here) rather than with their value, as a totalizer's or a BDD's would.
A negative coefficient c on m_u is first written as |c| on (not m_u), adding |c| to the bound, so
every encoded row has positive weights. The soft clauses are units (`w -x<u+1> 0`): keeping unit u
costs its weight, so the minimum cost is the minimum mask weight. Auxiliary variables come after
the n mask variables.
"""

from __future__ import annotations

import os
from typing import IO, Any, Mapping

import numpy as np

from smugir.budget import require
from smugir.exporters.files import write_atomically
from smugir.exporters.opb import IntegerModel, PbFile, header_lines, integer_model
from smugir.problem import MaskProblem

CLAUSE_BYTES = 200  # a clause of 3-4 literals as Python lists, as PySAT returns them
CLAUSES_PER_TERM_BIT = 8  # the adder encoding's clauses per (term x coefficient bit), measured about 7


def encoding_name() -> str:
    from importlib.metadata import version

    return f"pysat.pb.PBEnc adder encoding (python-sat {version('python-sat')}, pindakaas {version('pindakaas')})"


def row_clauses(columns: np.ndarray, values: np.ndarray, right: int, top: int) -> tuple[list[list[int]], int]:
    """CNF of sum values * x[columns + 1] >= right over fresh variables above `top`: (clauses, new top)."""
    from pysat.pb import EncType, PBEnc

    literals = [int(c) + 1 if v > 0 else -(int(c) + 1) for c, v in zip(columns, values)]
    weights = [abs(int(v)) for v in values]
    bound = int(right) - sum(int(v) for v in values if v < 0)  # c m = c + |c| (not m) for c < 0
    if bound <= 0:
        return [], top  # always true
    if bound > sum(weights):
        return [[]], top  # never true: the empty clause
    require("the CNF encoding of one row", CLAUSE_BYTES * CLAUSES_PER_TERM_BIT * len(weights) * max(weights).bit_length())
    cnf = PBEnc.atleast(lits=literals, weights=weights, bound=bound, top_id=top, encoding=EncType.adder)
    return cnf.clauses, max(top, cnf.nv)


def wcnf_lines(model: IntegerModel, source: Mapping[str, Any] | None, counts: list[int]):
    """The file's lines; `counts` receives [variables, hard clauses] as they are written."""
    n_units = model.weights.size
    for line in [*header_lines(model, source), f"hard clauses: every row by the {encoding_name()}",
                 "soft clauses: w -x<u+1> for every unit u of weight w > 0"]:
        yield f"c {line}"
    rows, top, hard = model.rows, n_units, 0
    for i in range(model.right.size):
        span = slice(int(rows.indptr[i]), int(rows.indptr[i + 1]))
        clauses, top = row_clauses(rows.indices[span], rows.data[span], int(model.right[i]), top)
        for clause in clauses:
            yield "h " + " ".join(map(str, clause)) + (" 0" if clause else "0")
        hard += len(clauses)
    for unit in np.flatnonzero(model.weights):
        yield f"{int(model.weights[unit])} -{int(unit) + 1} 0"
    counts[:] = [top, hard]


def write_wcnf(problem: MaskProblem, path: str | os.PathLike, rounding: str = "relaxed",
               source: Mapping[str, Any] | None = None, force: bool = False) -> PbFile:
    """Write the file all or nothing; rows are encoded one at a time, so memory holds one row's clauses."""
    model = integer_model(problem, rounding)
    counts = [0, 0]

    def write(stream: IO[bytes]) -> None:
        for line in wcnf_lines(model, source, counts):
            stream.write(line.encode("utf-8") + b"\n")

    written = write_atomically(path, write, force)
    return PbFile(written, counts[0], counts[1])
