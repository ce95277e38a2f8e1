"""Readable failures: the counter-example as Python code that rebuilds it, and what was expected.

Hypothesis shrinks a failing example and re-raises the last failure; `KitFailure`'s message is
what the developer reads, so it carries the problem (copy-paste to reproduce), the answer given
and the answer expected, not a repr of sparse arrays.
"""

from __future__ import annotations

import numpy as np

from smugir.problem import MaskProblem, NetworkMaskProblem


class KitFailure(AssertionError):
    """An encoder or backend answered a problem wrongly (the message says how)."""


def _array(values: np.ndarray) -> str:
    return "np.array(" + repr(np.asarray(values).tolist()) + ")"


def problem_code(problem: MaskProblem | NetworkMaskProblem) -> str:
    """Python that rebuilds `problem` exactly (floats by repr round-trip)."""
    if isinstance(problem, MaskProblem):
        return (f"MaskProblem({_array(problem.coefficients.toarray())}, {_array(problem.bounds)}, "
                f"{_array(problem.weights)})")
    layers = ", ".join(f"({_array(w)}, {_array(b)})" for w, b in problem.layers)
    return (f"NetworkMaskProblem(base={_array(problem.base)}, delta={_array(problem.delta)}, "
            f"unit_of={_array(problem.unit_of)}, layers=({layers},), label={problem.label}, "
            f"margin={problem.margin!r}, weights={_array(problem.weights)})")


def rows_text(problem: MaskProblem | NetworkMaskProblem, limit: int = 8) -> str:
    """The problem as a reader writes it: minimise w.m subject to each row (first `limit` rows)."""
    objective = " + ".join(f"{w:g} m{u}" for u, w in enumerate(problem.weights) if w) or "0"
    if not isinstance(problem, MaskProblem):
        return f"minimise {objective} subject to: logit {problem.label} beats the others by > {problem.margin:g}"
    lines = [f"minimise {objective} subject to:"]
    for i, (units, values, bound) in enumerate(problem.rows()):
        if i == limit:
            lines.append(f"  ... {problem.n_constraints - limit} more rows")
            break
        terms = " ".join(f"{'+' if a >= 0 else '-'} {abs(a):.6g} m{u}" for u, a in zip(units, values)) or "0"
        lines.append(f"  {terms} > {bound:.6g}")
    return "\n".join(lines)


def mask_text(mask: np.ndarray | None) -> str:
    if mask is None:
        return "no mask"
    kept = np.flatnonzero(np.asarray(mask, dtype=bool))
    return "keeps {" + ", ".join(f"m{u}" for u in kept) + "}" if kept.size else "keeps nothing"


def failure(problem: MaskProblem | NetworkMaskProblem, what: str, expected: str, got: str) -> KitFailure:
    """A failure message: what went wrong, expected vs got, the problem readable and as code."""
    return KitFailure(f"{what}\n  expected: {expected}\n  got:      {got}\n{rows_text(problem)}\n"
                      f"reproduce with:\n  {problem_code(problem)}")
