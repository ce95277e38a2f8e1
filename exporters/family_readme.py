"""The README.md of a benchmark family: origin, semantics, how each answer was proven, difficulty.

A family handed to a solver developer must explain itself without smugir at hand: what was
exported from what (names and SHA-256 only), what a file's variables and rows mean, why each
expected answer in instances.csv holds, and how hard the instances are (smugir's own proof times
and sizes). Every name in it comes through `plain_text`, so it cannot break the Markdown.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any, Iterable, Mapping

from smugir.exporters.opb import MEANING, ROUNDING_RULE
from smugir.exporters.provenance import plain_text
from smugir.instance_status import Instance

BUCKETS = ((0.1, "under 0.1 s"), (1.0, "0.1 - 1 s"), (10.0, "1 - 10 s"), (60.0, "10 - 60 s"), (float("inf"), "60 s or more"))
SEMANTICS = {
    "decision": "SMT-LIB 2.6 decision problem: the constraints and `sum of kept units' weights <= B` (B in the file "
    "name, `_b<B>`); `:status` when proven. Competition form: no `set-option`, no `(get-model)`.",
    "omt": "SMT-LIB with `(minimize ...)` and `(get-objectives)` (z3's and OptiMathSAT's OMT dialect): the exact minimum.",
    "opb": "OPB (Pseudo-Boolean Competition, linear, `min:`): CP-SAT's integer rows of one rounding (`_relaxed`/`_restricted`).",
    "wcnf": "WCNF (MaxSAT Evaluation 2022+: `h` hard clauses, weighted soft units): the same rows as the OPB file of its "
    "rounding, encoded by PySAT's adder encoding; the minimum cost is the minimum mask weight.",
    "milp": "MPS written by HiGHS: the 0-1 program with `>= b + margin` for `> b` (see smugir's README).",
}


def family_readme(rows: list[Instance], origin: Mapping[str, Any], solver: str) -> str:
    files = [r for r in rows if r.file]
    inputs = {r.input for r in rows}
    skipped = Counter(r.expected for r in rows if r.kind == "none")
    lines = ["# smugir masking-problem benchmark family", ""]
    lines += [f"- {plain_text(key)}: `{plain_text(value)}`" for key, value in origin.items()]
    lines += [f"- {len(files)} files from {len(inputs)} inputs; {sum(skipped.values())} inputs skipped "
              "(their explanation would say nothing)" + "".join(f"; {n}x {plain_text(why)}" for why, n in skipped.items()), ""]
    lines += ["## The problem", "",
              "For one input x, a classifier's first layer and its chosen neurons give a 0-1 problem: variable m_u = 1 "
              "keeps input unit u (a pixel, a window or a word) and 0 replaces it by the baseline; minimise the sum of "
              "kept units' weights subject to a_i . m > b_i for every chosen neuron i (it stays active). Its minimum "
              "is the smallest mask that provably keeps them active (SMUG, ICLR 2021).", "",
              "## Files", "", "| kind | files | what a file holds |", "| --- | --- | --- |"]
    kinds = Counter(r.kind for r in files)
    lines += [f"| {kind} | {count} | {SEMANTICS.get(kind, '')} |" for kind, count in sorted(kinds.items())]
    if kinds["opb"] or kinds["wcnf"]:
        lines += ["", f"Integer rows: {ROUNDING_RULE}.",
                  *(f"- {rounding}: {meaning}." for rounding, meaning in MEANING.items())]
    lines += ["", "`instances.csv` has one row per file: its input, kind, logic, bound, rounding, the expected answer "
              "(`sat`/`unsat` for decisions; the optimum, `unsat` or `unknown` for the others), its size and the seconds "
              f"smugir's solver (`{plain_text(solver)}`) needed for the exact optimum.", ""]
    lines += ["## How each expected answer was proven", "",
              "- `sat` at bound B: smugir's optimal mask has weight <= B and z3 (through pySMT) evaluates this file's "
              "formula true with every mask variable fixed to it.",
              "- `unsat` at bound B: smugir's proven lower bound (a relaxation of the strict problem that every mask "
              "satisfies) is above B; where it ties, z3 decided the file's formula itself.",
              "- OMT and MPS optimum: the exact optimum, its mask checked in float64 on the strict rows and its bound "
              "proven by a relaxation.",
              "- OPB/WCNF optimum: proven for the file's own integer rows: CP-SAT (exact on integers) on that model, "
              "its mask checked in integer arithmetic and its value against the exact optimum (relaxed <= exact <= "
              "restricted); for the restricted rounding, the exact optimal mask itself when it satisfies those rows.",
              "- `unknown`: nothing proven within the time limit; such files carry no status.", ""]
    lines += difficulty(files)
    return "\n".join(lines) + "\n"


def difficulty(files: Iterable[Instance]) -> list[str]:
    """Counts by smugir's proof time, the expected answers, and sizes by kind."""
    files = list(files)
    by_input = {r.input: r.smugir_seconds for r in files}
    counts = Counter(next(label for top, label in BUCKETS if seconds < top) for seconds in by_input.values())
    lines = ["## Difficulty", "", "| smugir's time to the exact optimum | inputs |", "| --- | --- |"]
    lines += [f"| {label} | {counts[label]} |" for _, label in BUCKETS if counts[label]]
    answers = Counter((r.kind, r.rounding, r.expected if r.expected in ("sat", "unsat", "unknown") else "optimum") for r in files)
    lines += ["", "| kind | rounding | expected | files |", "| --- | --- | --- | --- |"]
    lines += [f"| {kind} | {rounding or '-'} | {expected} | {n} |" for (kind, rounding, expected), n in sorted(answers.items())]
    lines += ["", "| kind | variables (min / median / max) | constraints or clauses (min / median / max) |", "| --- | --- | --- |"]
    for kind in sorted({r.kind for r in files}):
        sizes = [r for r in files if r.kind == kind]
        spread = [f"{min(v)} / {median(v):g} / {max(v)}" for v in ([r.variables for r in sizes], [r.constraints for r in sizes])]
        lines.append(f"| {kind} | {spread[0]} | {spread[1]} |")
    return lines
