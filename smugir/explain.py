"""The SMUG pipeline: model + input + label -> verified minimal mask and saliency map.

`prepare` (smugir.preparation) builds the masking problem, `finish` solves it and checks every mask
in float32 on onnxruntime; `explain` is both. Each phase is timed and every number that matters
carries its provenance (solver and version, IG steps and errors), so a report can be trusted
without rerunning it. The result types live in smugir.explanation; all are importable from here.
"""

from __future__ import annotations

import os
import time

import numpy as np

from smugir.constraints import DEFAULT_FORMULATION, receptive_units
from smugir.errors import InputError
from smugir.explanation import VACUOUS, Explanation, Found, Vacuous
from smugir.model import Model
from smugir.preparation import METHODS, RANKINGS, Method, Setup, check_options, prepare, prepare_units
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, OnProgress, Solution, solve
from smugir.verify import run_with_preactivations, verify_mask

__all__ = [
    "METHODS", "RANKINGS", "VACUOUS", "Explanation", "Found", "Method", "Setup", "Vacuous", "check_options", "explain",
    "finish", "prepare", "prepare_units", "vacuity",
]


def explain(
    model: Model | str | os.PathLike,
    x: np.ndarray,
    label: int | None = None,
    top_k: int = 32,
    gamma: float = 0.5,
    window: int | None = None,
    segments: np.ndarray | None = None,
    baseline: str | float = "zero",
    solver: str = DEFAULT_SOLVER,
    timeout: float | None = DEFAULT_TIMEOUT,
    solutions: int = 1,
    method: Method = "smug",
    ig_steps: int | None = None,
    layout: str = "auto",
    image_shape: tuple[int, int] | None = None,
    margin: float = 0.0,
    rank: str = "ig",
    formulation: str = DEFAULT_FORMULATION,
    on_progress: OnProgress | None = None,
) -> Explanation:
    """Explain `model`'s prediction on `x` with a minimal mask (see the README for each option);
    `timeout` None means no limit."""
    setup = prepare(model, x, label, top_k, gamma, window, segments, baseline, method, ig_steps, layout, image_shape, margin, rank, formulation)
    return finish(setup, solver, timeout, solutions, on_progress)


def finish(setup: Setup, solver: str = DEFAULT_SOLVER, timeout: float | None = DEFAULT_TIMEOUT, solutions: int = 1,
           on_progress: OnProgress | None = None) -> Explanation:
    """Solve a prepared problem (or take every receptive unit for SMUG_base) and verify each mask;
    `timeout` None means no limit, `on_progress` gets the solve's `SolveProgress` snapshots.

    A problem whose explanation can only say nothing (see `vacuity`) is not solved: the result
    carries the reason, its status is one of VACUOUS and it is never verified.
    """
    if int(solutions) < 1:
        raise InputError(f"solutions must be >= 1, got {solutions}")
    timings = dict(setup.timings)
    settings = {**setup.settings, "timeout": timeout, "solutions": solutions}
    clock = time.perf_counter()
    vacuous, empty = vacuity(setup)
    timings["vacuity"] = time.perf_counter() - clock
    if vacuous is not None:
        solver_name = "none (nothing to solve)"
        found_solutions = []
    elif setup.problem is None:
        unit_mask = np.zeros(setup.units.n_units, dtype=bool)
        unit_mask[receptive_units(setup.layer, setup.units, setup.neurons).indices] = True
        solver_name = "none (SMUG_base: every unit in a kept receptive field)"
        found_solutions = [Solution("feasible", unit_mask, float(unit_mask.sum()), None, solver_name, 0.0, {})]
    else:
        clock = time.perf_counter()
        found_solutions = solve(setup.problem, solver=solver, timeout=timeout, solutions=solutions, on_progress=on_progress)
        timings["solve"] = time.perf_counter() - clock
        solver_name = found_solutions[0].solver

    clock = time.perf_counter()
    found = [_check(setup, s) for s in found_solutions] or [empty]
    timings["verify"] = time.perf_counter() - clock
    return Explanation(
        model=str(setup.model.path),
        model_sha256=setup.model.sha256,
        label=setup.label,
        predicted=setup.predicted,
        method=setup.method,
        settings=settings,
        layout=setup.grid,
        units=setup.units,
        x=setup.x,
        baseline=setup.base,
        found=found,
        unit_saliency=setup.unit_saliency,
        neurons=[int(n) for n in setup.neurons],
        neuron_scores=[float(setup.attribution.scores[n]) for n in setup.neurons],
        attribution=setup.attribution.to_json(),
        solver=solver_name,
        timings=timings,
        problem=setup.problem,
        vacuous=vacuous,
    )


def vacuity(setup: Setup) -> tuple[Vacuous | None, Found]:
    """Why `setup` can only give an explanation that says nothing (or None), and the empty mask's check.

    In order: no mask units; NaN or infinity in what the constraints are made of; no neuron to keep
    (SMUG); the baseline alone (the empty mask, checked exactly in float32 on onnxruntime) already
    satisfying every constraint, so the minimal mask is empty (the degenerate case).
    """
    nothing = np.zeros(setup.units.n_units, dtype=bool)
    empty = Found(nothing, "not solved", None, None, None)
    if setup.units.n_units == 0:
        return Vacuous("no_units", "the input has no mask units (every segment label is -1, or every word is padding), "
                       "so there is nothing to keep or drop"), empty
    non_finite = _non_finite(setup)
    if non_finite:
        return Vacuous("non_finite", f"{non_finite} contain NaN or infinity, so no constraint can be checked"), empty
    if setup.method != "network" and setup.neurons.size == 0:
        return Vacuous("no_neurons", f"no first-layer neuron has both a positive activation and a positive attribution "
                       f"to label {setup.label}, so nothing constrains the mask"), empty
    if setup.method == "smug_base":
        return None, empty
    checked = _check(setup, Solution("optimal", nothing, 0.0, 0.0, "none", 0.0, {}))
    if not checked.verified:
        return None, empty
    if checked.network_margin is not None:
        what = f"gives label {setup.label} a logit margin of {checked.network_margin:+.4g}"
    else:
        what = (f"keeps all {setup.neurons.size} chosen neurons above gamma {setup.gamma:g} x their value on the input "
                f"(min slack {checked.verification.min_slack:.4g})")
    return Vacuous("baseline_suffices", f"the baseline alone (every unit masked) already {what}, so the minimal mask is empty"), checked


def _non_finite(setup: Setup) -> str | None:
    """What, if anything, holds NaN or infinity among the values the constraints are made of
    (onnxruntime's outputs and first-layer pre-activations, as the float32 check sees them)."""
    on_input = run_with_preactivations(setup.model, setup.layer, setup.x)
    on_baseline = run_with_preactivations(setup.model, setup.layer, setup.base)
    checks = (
        ("the baseline values", setup.base),
        ("the model's outputs on the input", on_input[0]),
        ("the first layer's pre-activations on the input", on_input[1]),
        ("the first layer's pre-activations on the baseline", on_baseline[1]),
        ("the Integrated Gradients scores", setup.attribution.scores),
    )
    return next((what for what, values in checks if not np.all(np.isfinite(values))), None)


def _check(setup: Setup, solution: Solution) -> Found:
    if solution.mask is None:
        return Found(np.zeros(setup.units.n_units, dtype=bool), solution.status, solution.objective, solution.bound, None,
                     solve_details=dict(solution.details))
    unit_mask = np.asarray(solution.mask, dtype=bool)
    if setup.method == "network":
        masked = setup.units.masked_input(setup.x, setup.base, unit_mask)
        logits = setup.model.run(masked)[0].reshape(-1).astype(np.float64)
        others = np.delete(logits, setup.label)
        found_margin = float(logits[setup.label] - others.max() - setup.margin)
        return Found(unit_mask, solution.status, solution.objective, solution.bound, None, network_margin=found_margin,
                     solve_details=dict(solution.details))
    verification = verify_mask(
        setup.model, setup.layer, setup.x, setup.base, setup.units, unit_mask, setup.neurons, setup.gamma, setup.label,
        setup.settings.get("formulation", DEFAULT_FORMULATION),
    )
    return Found(unit_mask, solution.status, solution.objective, solution.bound, verification, solve_details=dict(solution.details))
