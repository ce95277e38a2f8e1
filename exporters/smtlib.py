"""Masking problems as standard SMT-LIB 2.6 files that any solver can run.

Two flavours: a decision problem (`sum m <= B`, `(check-sat)`, `(get-model)`, no solver-specific
commands) and an optimisation problem for OMT solvers (`(minimize ...)`, `(get-objectives)`).
Terms are printed by pySMT; symbols are generated (`m_0`, `h_0_3`, ...), and every piece of
provenance text in `(set-info :source |...|)` is cleaned, so a model whose tensor or file names
contain `|`, `)` or newlines cannot change the meaning of the file.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from pysmt.smtlib.printers import to_smtlib

from smugir.encoders.pysmt import Encoding
from smugir.errors import InputError

OBJECTIVES = ("bound", "omt")
_UNSAFE = re.compile(r"[|\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # and C1 controls, undecodable bytes of file names


def safe_text(value: Any) -> str:
    """Text allowed inside |...| in SMT-LIB: no '|', no backslash, no control characters or undecodable bytes."""
    return _UNSAFE.sub("_", str(value))


def smtlib_text(
    encoding: Encoding,
    objective: str = "bound",
    bound: int | None = None,
    status: str | None = None,
    source: Mapping[str, Any] | None = None,
) -> str:
    """The whole file. `status` ('sat'/'unsat') is written only when known (decision problems)."""
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; accepted: {', '.join(OBJECTIVES)}")
    if objective == "bound" and (bound is None or bound < 0):
        raise InputError(f"a decision problem needs a bound >= 0, got {bound}")
    description = "; ".join(f"{key}={safe_text(value)}" for key, value in (source or {}).items())
    lines = [
        "(set-info :smt-lib-version 2.6)",
        "(set-option :produce-models true)",
        f"(set-logic {encoding.logic})",
        f"(set-info :source |smugir masking problem: a minimal input mask for a neural network classifier. {description}|)",
        '(set-info :category "industrial")',
    ]
    if objective == "bound" and status in ("sat", "unsat"):
        lines.append(f"(set-info :status {status})")
    symbols = sorted(encoding.constraints.get_free_variables() | set(encoding.symbols), key=_symbol_order)
    lines += [f"(declare-fun {s.symbol_name()} () {s.symbol_type().as_smtlib(funstyle=False)})" for s in symbols]
    constraints = encoding.constraints
    lines += [f"(assert {_term(atom)})" for atom in (constraints.args() if constraints.is_and() else [constraints])]
    if objective == "bound":
        lines += [f"(assert {_term(encoding.at_most(bound))})", "(check-sat)", "(get-model)", "(exit)"]
    else:
        lines += [f"(minimize {_term(encoding.objective_term())})", "(check-sat)", "(get-objectives)", "(exit)"]
    return "\n".join(lines) + "\n"


def _symbol_order(symbol) -> tuple:
    """m_2 before m_10: generated names sort by their prefix, then numerically."""
    prefix, *numbers = symbol.symbol_name().split("_")
    return (prefix, *(int(n) for n in numbers))


def _term(formula) -> str:
    return to_smtlib(formula, daggify=False)
