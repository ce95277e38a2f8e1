"""What a solver answered on one instance file, read from its output, and whether it is right.

Each format has its competition's output convention:
- SMT-LIB decisions (SMT-COMP): the first line that is `sat`, `unsat` or `unknown`.
- OMT (z3's dialect): `sat` then `(objectives (<term> N))`, or `unsat`.
- OPB and WCNF (PB Competition, MaxSAT Evaluation): `s OPTIMUM FOUND` with the last `o N` line,
  `s UNSATISFIABLE`, `s SATISFIABLE` (a solution of cost `o N`, not proven optimal) or `s UNKNOWN`.
An answer is judged against the proven one of instances.csv (`sat`/`unsat`, or an optimum or
`unsat`): right, wrong, or unknown (no answer, or a solution that is not claimed optimal and does not
contradict the optimum). A solution cheaper than a proven optimum is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = {"smt2": "decision", "omt": "omt", "opb": "opb", "wcnf": "wcnf"}  # --format -> instances.csv kind
_OBJECTIVE = re.compile(r"(-?\d+(?:\.0*)?)\s*\)\s*\)\s*$")
_STATUS = re.compile(r"^s\s+(OPTIMUM FOUND|UNSATISFIABLE|SATISFIABLE|UNKNOWN)\s*$")
_COST = re.compile(r"^o\s+(-?\d+)\s*$")


@dataclass(frozen=True)
class Answer:
    """`claim`: sat | unsat | optimum | solution | unknown; `value`: the cost for optimum/solution."""

    claim: str
    value: int | None = None

    def text(self) -> str:
        if self.claim == "optimum":
            return f"optimum {self.value}"
        if self.claim == "solution":
            return f"a solution of cost {self.value} (not claimed optimal)"
        return self.claim


def read_answer(kind: str, output: str) -> Answer:
    lines = [line.strip() for line in output.splitlines()]
    if kind in ("decision", "omt"):
        first = next((line for line in lines if line in ("sat", "unsat", "unknown")), "unknown")
        if kind == "decision" or first != "sat":
            return Answer(first)
        match = _OBJECTIVE.search(output)
        return Answer("optimum", int(float(match[1]))) if match else Answer("unknown")
    status = next((m[1] for m in map(_STATUS.match, lines) if m), "UNKNOWN")
    costs = [int(m[1]) for m in map(_COST.match, lines) if m]
    if status == "UNSATISFIABLE":
        return Answer("unsat")
    if status in ("OPTIMUM FOUND", "SATISFIABLE") and costs:
        return Answer("optimum" if status == "OPTIMUM FOUND" else "solution", costs[-1])
    return Answer("unknown")


def judge(expected: str, answer: Answer) -> str:
    """correct | wrong | unknown, for a proven `expected` (sat, unsat or an integer optimum)."""
    if answer.claim == "unknown":
        return "unknown"
    if expected in ("sat", "unsat"):
        said = "sat" if answer.claim in ("optimum", "solution") else answer.claim  # a solution: it is sat
        return "correct" if said == expected else "wrong"
    optimum = int(expected)
    if answer.claim == "unsat":
        return "wrong"
    if answer.claim == "optimum":
        return "correct" if answer.value == optimum else "wrong"
    if answer.claim == "solution":
        return "wrong" if answer.value < optimum else "unknown"
    return "unknown"
