"""Masking problems as SMT-LIB 2.6 files that follow the SMT-COMP benchmark rules.

Two flavours: a decision problem (`sum m <= B`, one `(check-sat)`) and an optimisation problem
for OMT solvers (`(minimize ...)`, `(get-objectives)`: z3's and OptiMathSAT's dialect, not
SMT-LIB). A decision file starts as SMT-COMP wants it: `:smt-lib-version`, `set-logic`, a `:source`
block (generator, model and input by name and SHA-256, see `smugir.exporters.provenance`),
`:license`, `:category`, `:status` when proven, and ends with `(exit)`; it carries no
`set-option` and no `(get-model)`, unless `get_model` asks for them (a single file whose formula
is proven sat, for a user who wants the mask). Terms are printed by pySMT; symbols are generated
(`m_0`, `h_0_3`, ...), and provenance text is cleaned, so a model whose tensor or file names contain
`|`, `)` or newlines cannot change the meaning of the file.
"""

from __future__ import annotations

from typing import Any, Mapping

from pysmt.smtlib.printers import to_smtlib

from smugir.encoders.pysmt import Encoding
from smugir.errors import InputError
from smugir.exporters.choices import OBJECTIVES
from smugir.exporters.provenance import plain_text

LICENSE = "https://creativecommons.org/licenses/by/4.0/"
APPLICATION = ("a provably minimal input mask for a neural network classifier (SMUG, ICLR 2021): "
               "m_i true keeps input unit i, the constraints keep the chosen first-layer neurons active")


def safe_text(value: Any) -> str:
    """Text allowed inside |...| in SMT-LIB: no '|', no backslash, no control characters or undecodable bytes."""
    return plain_text(value)


def source_block(source: Mapping[str, Any] | None) -> str:
    """`(set-info :source |...|)` with one `key: value` line per provenance field."""
    lines = [f"Application: {APPLICATION}", *(f"{safe_text(key)}: {safe_text(value)}" for key, value in (source or {}).items())]
    return "(set-info :source |\n" + "\n".join(lines) + "\n|)"


def smtlib_text(
    encoding: Encoding,
    objective: str = "bound",
    bound: int | None = None,
    status: str | None = None,
    source: Mapping[str, Any] | None = None,
    get_model: bool = False,
    license: str = LICENSE,
) -> str:
    """The whole file. `status` ('sat'/'unsat') is written only when known (decision problems);
    `get_model` adds `(get-model)` (and the option it needs), only for a formula proven sat."""
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; accepted: {', '.join(OBJECTIVES)}")
    if objective == "bound" and (bound is None or bound < 0):
        raise InputError(f"a decision problem needs a bound >= 0, got {bound}")
    if get_model and not (objective == "bound" and status == "sat"):
        raise InputError("(get-model) is only written where a model exists: a decision problem proven sat")
    lines = ["(set-info :smt-lib-version 2.6)"]
    if get_model:
        lines.append("(set-option :produce-models true)")  # only allowed before set-logic
    lines += [
        f"(set-logic {encoding.logic})",
        source_block(source),
        f'(set-info :license "{safe_text(license).replace(chr(34), "_")}")',
        '(set-info :category "industrial")',
    ]
    if objective == "bound" and status in ("sat", "unsat"):
        lines.append(f"(set-info :status {status})")
    symbols = sorted(encoding.constraints.get_free_variables() | set(encoding.symbols), key=_symbol_order)
    lines += [f"(declare-fun {s.symbol_name()} () {s.symbol_type().as_smtlib(funstyle=False)})" for s in symbols]
    constraints = encoding.constraints
    lines += [f"(assert {_term(atom)})" for atom in (constraints.args() if constraints.is_and() else [constraints])]
    if objective == "bound":
        lines += [f"(assert {_term(encoding.at_most(bound))})", "(check-sat)", *(["(get-model)"] if get_model else []), "(exit)"]
    else:
        lines += [f"(minimize {_term(encoding.objective_term())})", "(check-sat)", "(get-objectives)", "(exit)"]
    return "\n".join(lines) + "\n"


def _symbol_order(symbol) -> tuple:
    """m_2 before m_10: generated names sort by their prefix, then numerically."""
    prefix, *numbers = symbol.symbol_name().split("_")
    return (prefix, *(int(n) for n in numbers))


def _term(formula) -> str:
    return to_smtlib(formula, daggify=False)
