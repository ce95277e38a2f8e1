"""`check_encoder(encode)`: an encoding of masking problems against brute force and onnxruntime.

An encoder under test is a callable `encode(problem) -> Encoded`: `accepts(mask)` says whether
the encoded model, with the mask variables set to `mask`, is satisfiable (evaluate the rows,
or ask the solver under assumptions); `minimum()` (optional) solves the encoded model and
returns its optimum (None: unsatisfiable). `semantics` says what the encoding promises:
- "exact": it accepts exactly the feasible masks, and its optimum is the problem's;
- "relaxed": it accepts every feasible mask (maybe more): optimum <= the problem's, and
  unsatisfiable only when no mask is feasible (CP-SAT's and OPB's relaxed rounding, a MILP's `>=`);
- "restricted": every mask it accepts is feasible: optimum >= the problem's, satisfiable only if
  some mask is (the restricted rounding, pySMT's scaled integer rows);
- "optimal": every mask it accepts is feasible and it accepts an optimal one, so its optimum is
  the problem's (an encoding that fixes out units no row reads, as smugir's pySMT one does).
Masks checked: all of them for small problems, else a random sample plus the optimal masks and
their one-unit neighbours (where a strict `>` or a rounding goes wrong). On a problem smugir made
from a model (`FirstLayerProblem`), an exact encoding must also agree with onnxruntime's float32
pre-activations wherever those decide a row clearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.testing.brute_force import BruteForce, brute_force
from smugir.testing.problems import FirstLayerProblem, first_layer_problems, mask_problems, tie_problems
from smugir.testing.report import failure, mask_text

Problem = MaskProblem | NetworkMaskProblem
SEMANTICS = ("exact", "relaxed", "restricted", "optimal")
SOUND = ("exact", "restricted", "optimal")  # accepted => feasible
COMPLETE = ("exact", "relaxed")  # feasible => accepted
ONNXRUNTIME_MASKS = 16  # masks per model problem run on onnxruntime
FLOAT32_TOLERANCE = 1e-4  # relative to the row's scale: what onnxruntime's float32 cannot decide


@dataclass(frozen=True)
class Encoded:
    """What an encoder under test gives back for one problem (see the module docstring)."""

    accepts: Callable[[np.ndarray], bool]
    minimum: Callable[[], float | None] | None = None


def _masks_to_check(truth: BruteForce, rng: np.random.Generator, max_masks: int) -> np.ndarray:
    if len(truth.masks) <= max_masks:
        return truth.masks
    best = truth.optimal_masks[:4]
    near = [np.logical_xor(m, np.eye(m.size, dtype=bool)) for m in best]
    sample = truth.masks[rng.choice(len(truth.masks), size=max_masks, replace=False)]
    return np.unique(np.vstack([sample, *([np.vstack(best)] if best else []), *near]), axis=0)


def _check_onnxruntime(source: FirstLayerProblem, encoded: Encoded, masks: np.ndarray, semantics: str) -> None:
    problem = source.problem
    scale = np.maximum(problem.row_scale(), 1.0)
    for mask in masks[:ONNXRUNTIME_MASKS]:
        slack = source.onnxruntime_slack(mask)
        if semantics in SOUND and np.any(slack < -FLOAT32_TOLERANCE * scale) and encoded.accepts(mask):
            raise failure(problem, "the encoding accepts a mask that onnxruntime says fails a neuron", "rejected",
                          f"accepted {mask_text(mask)}; onnxruntime slack {np.round(slack, 6).tolist()} ({source.built.description})")
        if semantics in COMPLETE and np.all(slack > FLOAT32_TOLERANCE * scale) and not encoded.accepts(mask):
            raise failure(problem, "the encoding rejects a mask that onnxruntime says keeps every neuron", "accepted",
                          f"rejected {mask_text(mask)}; onnxruntime slack {np.round(slack, 6).tolist()} ({source.built.description})")


def check_encoded(problem: Problem | FirstLayerProblem, encoded: Encoded, semantics: str = "exact",
                  truth: BruteForce | None = None, max_masks: int = 64, seed: int = 0) -> None:
    """Raise `KitFailure` unless `encoded` keeps its `semantics` on `problem` (module docstring)."""
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r}; accepted: {', '.join(SEMANTICS)}")
    source = problem if isinstance(problem, FirstLayerProblem) else None
    problem = source.problem if source else problem
    truth = truth or brute_force(problem)
    masks = _masks_to_check(truth, np.random.default_rng(seed), max_masks)
    codes = masks.astype(np.int64) @ (1 << np.arange(problem.n_units, dtype=np.int64))
    for mask, feasible in zip(masks, truth.feasible[codes]):
        accepted = bool(encoded.accepts(mask.copy()))
        if accepted and not feasible and semantics in SOUND:
            raise failure(problem, f"the {semantics} encoding accepts an infeasible mask", "rejected", f"accepted {mask_text(mask)}")
        if feasible and not accepted and semantics in COMPLETE:
            raise failure(problem, f"the {semantics} encoding rejects a feasible mask", "accepted", f"rejected {mask_text(mask)}")
    optimal = truth.optimal_masks
    if semantics == "optimal" and optimal and not any(encoded.accepts(m.copy()) for m in optimal):
        raise failure(problem, "the encoding rejects every optimal mask", f"one of {len(optimal)} accepted",
                      f"all rejected, e.g. {mask_text(optimal[0])}")
    if source is not None:
        _check_onnxruntime(source, encoded, masks, semantics)
    if encoded.minimum is None:
        return
    found, best = encoded.minimum(), truth.optimum
    worse = {"relaxed": lambda f, b: f > b + 1e-9 * max(1.0, abs(b)), "restricted": lambda f, b: f < b - 1e-9 * max(1.0, abs(b))}.get(
        semantics, lambda f, b: abs(f - b) > 1e-9 * max(1.0, abs(b)))
    expected = {"relaxed": "optimum <= {b}", "restricted": "optimum >= {b} or unsatisfiable"}.get(semantics, "optimum {b}")
    if best is None and found is not None and semantics in SOUND:
        raise failure(problem, f"the {semantics} encoding has an optimum but no mask is feasible", "unsatisfiable", f"optimum {found:g}")
    if best is not None and found is None and semantics != "restricted":
        raise failure(problem, f"the {semantics} encoding is unsatisfiable but a mask is feasible", f"optimum {best:g}", "unsatisfiable")
    if best is not None and found is not None and worse(float(found), best):
        raise failure(problem, f"the {semantics} encoding's optimum is wrong", expected.format(b=f"{best:g}"), f"optimum {found:g}")


def encoder_problems(max_units: int = 12) -> st.SearchStrategy[Problem | FirstLayerProblem]:
    """The default problems: random, tie-heavy, and made by smugir from random ONNX models."""
    return st.one_of(tie_problems(min(max_units, 10)), mask_problems(max_units), first_layer_problems(max_units))


def check_encoder(
    encode: Callable[[Problem], Encoded],
    problems: st.SearchStrategy[Problem | FirstLayerProblem] | None = None,
    *,
    semantics: str = "exact",
    max_examples: int = 30,
    max_masks: int = 64,
    deadline: float | None = None,
    settings: Settings | None = None,
) -> None:
    """Encode `max_examples` problems drawn from `problems` (default `encoder_problems()`) and raise
    `KitFailure` (an AssertionError) on the first one the encoding gets wrong, shrunk by hypothesis.
    `max_masks` bounds the masks checked per problem; `deadline` (ms) is hypothesis's per-example
    limit (None: none); `settings` replaces all of these."""
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r}; accepted: {', '.join(SEMANTICS)}")
    chosen = settings or Settings(max_examples=max_examples, deadline=deadline,
                                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

    @chosen
    @given(problem=problems if problems is not None else encoder_problems(), seed=st.integers(0, 2**16))
    def encoding_matches_brute_force(problem: Problem | FirstLayerProblem, seed: int) -> None:
        inner = problem.problem if isinstance(problem, FirstLayerProblem) else problem
        check_encoded(problem, encode(inner), semantics, max_masks=max_masks, seed=seed)

    encoding_matches_brute_force()
