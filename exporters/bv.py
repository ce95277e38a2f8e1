"""The OPB files' integer rows as QF_BV decision files (SMT-LIB 2.6, SMT-COMP form), for SMT
solvers without integer arithmetic (bitwuzla).

A file holds one rounding's rows (`smugir.exporters.opb.integer_model`: the same meaning as the
OPB file of that rounding) and `sum w_u m_u <= B`; each m_u is a Bool, each row
`sum c_u m_u >= r` is `(bvsge S (_ bvR W))` with S a balanced tree of `bvadd` over
`(ite m_u c_u 0)`, in W-bit two's complement.

No sum overflows: a row's width is W = bitlength(sum_u |c_u| + |r|) + 1. Every partial sum of its
terms lies in [-sum |c_u|, sum |c_u|] and |r| <= sum |c_u| + |r| < 2^(W-1), so every value met is
in the signed range [-2^(W-1), 2^(W-1) - 1], where bvadd and bvsge are exactly integer + and >=.
The objective row is the same with c = w and r = B. So the file is sat iff the integer rows have a
solution of weight <= B, exactly as the OPB file says.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from smugir.exporters.opb import MEANING, IntegerModel
from smugir.exporters.smtlib import LICENSE, safe_text, source_block


def width(coefficients: np.ndarray, right: int) -> int:
    """Bits so that no partial sum of the row, nor its right side, leaves the signed range (see above)."""
    return (sum(abs(int(c)) for c in coefficients) + abs(int(right))).bit_length() + 1


def _constant(value: int, bits: int) -> str:
    return f"(_ bv{int(value) % (1 << bits)} {bits})"


def _sum(terms: list[str], bits: int) -> str:
    """A balanced bvadd tree (depth log2 n: no parser meets a deep nesting)."""
    if not terms:
        return _constant(0, bits)
    while len(terms) > 1:
        terms = [f"(bvadd {terms[i]} {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _at_least(columns: np.ndarray, values: np.ndarray, right: int) -> str:
    bits = width(values, right)
    terms = [f"(ite x{int(u) + 1} {_constant(c, bits)} {_constant(0, bits)})" for u, c in zip(columns, values) if c]
    return f"(assert (bvsge {_sum(terms, bits)} {_constant(right, bits)}))"


def bv_text(model: IntegerModel, bound: int, status: str | None = None, source: Mapping[str, Any] | None = None,
            license: str = LICENSE) -> str:
    """The whole decision file: the rounding's rows and `weights . m <= bound`."""
    info = {**(source or {}), "rounding": f"{model.rounding}: {MEANING[model.rounding]}"}
    lines = ["(set-info :smt-lib-version 2.6)", "(set-logic QF_BV)", source_block(info),
             f'(set-info :license "{safe_text(license).replace(chr(34), "_")}")', '(set-info :category "industrial")']
    if status in ("sat", "unsat"):
        lines.append(f"(set-info :status {status})")
    lines += [f"(declare-fun x{u + 1} () Bool)" for u in range(model.weights.size)]
    rows = model.rows
    for i in range(model.right.size):
        span = slice(int(rows.indptr[i]), int(rows.indptr[i + 1]))
        lines.append(_at_least(rows.indices[span], rows.data[span], int(model.right[i])))
    kept = np.flatnonzero(model.weights)
    lines.append(_at_least(kept, -model.weights[kept], -int(bound)))  # -w.m >= -B
    lines += ["(check-sat)", "(exit)"]
    return "\n".join(lines) + "\n"
