"""The SMUG pipeline: model + input + label -> verified minimal mask and saliency map.

Each phase is timed and every number that matters carries its provenance (solver and version,
IG steps and completeness error), so a report can be trusted without rerunning it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from smugir.attribution import IGResult, first_layer_attribution, top_k as select_top_k
from smugir.baseline import make_baseline
from smugir.budget import require
from smugir.constraints import (
    DEFAULT_FORMULATION, base_saliency, check_formulation, check_gamma, eligible_neurons, network_problem, problem_memory,
    receptive_units, smug_problem,
)
from smugir.errors import InputError
from smugir.firstlayer import FirstLayer, first_layer
from smugir.inputs import check_input
from smugir.model import Model, load_model
from smugir.network import mlp_layers
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, OnProgress, Solution, gap, solve
from smugir.units import InputLayout, MaskUnits, input_layout, pixel_units, segment_units, window_units
from smugir.verify import Verification, probabilities, verify_mask

Method = Literal["smug", "smug_base", "network"]
# Why an explanation can say nothing (the `status` of such an explanation; CLI exit code 3).
VACUOUS = ("no_units", "non_finite", "no_neurons", "baseline_suffices")
METHODS = ("smug", "smug_base", "network")
RANKINGS = ("ig", "activation")  # activation: the original code's choice for dense first layers


@dataclass
class Found:
    """One mask of an explanation (several with `solutions=N`), with its float32 check."""

    unit_mask: np.ndarray  # (n_units,) bool
    status: str
    objective: float | None
    bound: float | None
    verification: Verification | None
    network_margin: float | None = None  # whole-network variant: onnxruntime logit margin on the masked input
    solve_details: dict[str, Any] = field(default_factory=dict)  # the backend's: presolve counts, LP bound, ...

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)

    @property
    def verified(self) -> bool:
        if self.network_margin is not None:
            return self.network_margin > 0
        return self.verification is None or self.verification.holds

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "kept_units": np.flatnonzero(self.unit_mask).tolist(),
            "verified": self.verified,
            "verification": self.verification.to_json() if self.verification else None,
            "network_margin": self.network_margin,
            "solve_details": dict(self.solve_details),
        }


@dataclass(frozen=True)
class Vacuous:
    """Why an explanation says nothing: a status from VACUOUS and one sentence for the user."""

    status: str
    reason: str


@dataclass
class Explanation:
    """The result of `explain`: masks (input-shaped), the SMUG saliency map, and how they were found."""

    model: str
    model_sha256: str
    label: int
    predicted: int
    method: str
    settings: dict[str, Any]
    layout: InputLayout
    units: MaskUnits
    x: np.ndarray
    baseline: np.ndarray
    found: list[Found]
    unit_saliency: np.ndarray  # (n_units,) the SMUG_base score of every unit
    neurons: list[int]
    neuron_scores: list[float]
    attribution: dict[str, Any]
    solver: str
    timings: dict[str, float] = field(default_factory=dict)
    problem: MaskProblem | NetworkMaskProblem | None = None
    vacuous: Vacuous | None = None  # set when the explanation says nothing (then never verified)

    @property
    def best(self) -> Found:
        return self.found[0]

    @property
    def status(self) -> str:
        """The solver's status (optimal, feasible, ...), or the VACUOUS status saying why there is no explanation."""
        return self.vacuous.status if self.vacuous else self.best.status

    @property
    def verified(self) -> bool:
        """A mask that means something and holds in float32 on onnxruntime."""
        return self.vacuous is None and self.best.verified

    @property
    def ig_converged(self) -> bool:
        """Whether the IG scores behind the neuron choice met the stopping rule (`smugir.attribution`)."""
        return bool(self.attribution.get("converged", True))

    @property
    def objective(self) -> float | None:
        return self.best.objective

    @property
    def bound(self) -> float | None:
        return self.best.bound

    @property
    def verification(self) -> Verification | None:
        return self.best.verification

    @property
    def unit_mask(self) -> np.ndarray:
        return self.best.unit_mask

    @property
    def mask(self) -> np.ndarray:
        """Input-shaped bool: True where the input is kept."""
        return self.units.expand(self.unit_mask).reshape(self.x.shape)

    @property
    def saliency(self) -> np.ndarray:
        """Input-shaped SMUG map: each kept unit's SMUG_base score, 0 elsewhere."""
        per_unit = np.where(self.unit_mask, self.unit_saliency, 0.0)
        inside = self.units.unit_of >= 0
        values = np.zeros(self.units.unit_of.shape)
        values[inside] = per_unit[self.units.unit_of[inside]]
        return values.reshape(self.x.shape)

    def _repr_html_(self) -> str:
        """Jupyter's view: what report.html shows (`smugir.exporters.html_report`)."""
        from smugir.exporters.html_report import report_fragment

        return report_fragment(self)

    def summary(self) -> str:
        """A few lines for the terminal: what was kept, whether it is proven minimal and verified."""
        kept = int(self.unit_mask.sum())
        bound = "" if self.bound is None else f", lower bound {self.bound:g}"
        if self.best.gap:
            bound += f", gap {100 * self.best.gap:.1f} %"
        lines = [
            f"model       {self.model} (label {self.label}, predicted {self.predicted})",
            f"method      {self.method}: {self.units.n_units} {self.units.kind} units ({self.units.description}), "
            f"top-k {self.settings['top_k']}, gamma {self.settings['gamma']}, baseline {self.settings['baseline']}, "
            f"formulation {self.settings.get('formulation', DEFAULT_FORMULATION)}",
            f"attribution {self.attribution['summary']}, {len(self.neurons)} neurons kept",
        ]
        if self.vacuous:
            lines.append(f"result      no explanation ({self.vacuous.status}): {self.vacuous.reason}")
        else:
            caveat = "" if self.ig_converged else " (IG not converged: the kept neurons may not be the top-k)"
            lines.append(
                f"result      {self.status}{caveat}: {kept} of {self.units.n_units} units kept "
                f"({100 * kept / max(self.units.n_units, 1):.1f} %){bound}; solver {self.solver}"
            )
            lines.extend(_verified_line(number, found) for number, found in enumerate(self.found, start=1))
        lines.append("timings     " + ", ".join(f"{k} {v:.3f} s" for k, v in self.timings.items()))
        return "\n".join(line for line in lines if line)

    def to_json(self) -> dict:
        kept = int(self.unit_mask.sum())
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "label": self.label,
            "predicted": self.predicted,
            "method": self.method,
            "settings": self.settings,
            "units": {"kind": self.units.kind, "count": self.units.n_units, "description": self.units.description},
            "layout": self.layout.name,
            "status": self.status,
            "reason": self.vacuous.reason if self.vacuous else None,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.best.gap,
            "kept_units": kept,
            "sparsity": kept / max(self.units.n_units, 1),
            "solver": self.solver,
            "verified": self.verified,
            "ig_converged": self.ig_converged,
            "solutions": [] if self.vacuous else [f.to_json() for f in self.found],
            "baseline_check": self.best.to_json() if self.vacuous and self.vacuous.status == "baseline_suffices" else None,
            "neurons": self.neurons,
            "neuron_scores": self.neuron_scores,
            "attribution": self.attribution,
            "timings_seconds": self.timings,
        }


@dataclass
class Setup:
    """Everything before the solver: the masking problem of one input, and what explains it."""

    model: Model
    layer: FirstLayer
    x: np.ndarray
    units: MaskUnits
    grid: InputLayout
    base: np.ndarray
    label: int
    predicted: int
    method: str
    gamma: float
    margin: float
    neurons: np.ndarray
    attribution: IGResult
    unit_saliency: np.ndarray
    problem: MaskProblem | NetworkMaskProblem | None  # None for SMUG_base
    settings: dict[str, Any]
    timings: dict[str, float]


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


def prepare(
    model: Model | str | os.PathLike,
    x: np.ndarray,
    label: int | None = None,
    top_k: int = 32,
    gamma: float = 0.5,
    window: int | None = None,
    segments: np.ndarray | None = None,
    baseline: str | float = "zero",
    method: Method = "smug",
    ig_steps: int | None = None,
    layout: str = "auto",
    image_shape: tuple[int, int] | None = None,
    margin: float = 0.0,
    rank: str = "ig",
    formulation: str = DEFAULT_FORMULATION,
) -> Setup:
    """The masking problem `explain` would solve, built but not solved (exports use it as is).

    `formulation` is "baseline-relative" (default) or "published": see `smugir.constraints`."""
    clock = time.perf_counter()
    if not isinstance(model, Model):
        model = load_model(model)
    loading = time.perf_counter() - clock
    if window is not None and segments is not None:
        raise InputError("give either a window size or segments, not both")
    if window is not None and int(window) < 1:
        raise InputError(f"window must be >= 1, got {window}")
    x = check_input(x, model.input_shape)
    clock = time.perf_counter()
    grid = input_layout(model.input_shape, layout, image_shape)
    units = _units(grid, window, segments)
    base = make_baseline(baseline, x, grid)
    building_units = time.perf_counter() - clock
    setup = prepare_units(
        model, x, units, grid, base, label=label, top_k=top_k, gamma=gamma,
        method=method, ig_steps=ig_steps, margin=margin, rank=rank, formulation=formulation,
        settings={"window": window, "segments": segments is not None, "baseline": str(baseline)},
    )
    setup.timings = {"load": loading, "units": building_units, **setup.timings}
    return setup


def prepare_units(
    model: Model,
    x: np.ndarray,
    units: MaskUnits,
    grid: InputLayout,
    base: np.ndarray,
    label: int | None = None,
    top_k: int = 32,
    gamma: float = 0.5,
    method: Method = "smug",
    ig_steps: int | None = None,
    margin: float = 0.0,
    rank: str = "ig",
    settings: dict[str, Any] | None = None,
    formulation: str = DEFAULT_FORMULATION,
    attribution: IGResult | None = None,
) -> Setup:
    """Attribution, neuron selection and the masking problem, for fixed mask units and baseline.

    `attribution`: first-layer IG already computed for this input and label (`first_layer_attribution`),
    reused instead of recomputed, e.g. for several gammas or formulations of one input.

    Baseline-relative: only neurons the input moved above the baseline are ranked (and constrained);
    published: neurons with a positive activation on x."""
    check_options(top_k, gamma, method, rank, margin)
    check_formulation(formulation)
    clock = time.perf_counter()
    layer = first_layer(model)
    x = check_input(x, model.input_shape)
    original = probabilities(model, model.run(x)[0])
    predicted = int(np.argmax(original))
    label = predicted if label is None else _check_label(label, original.size)
    timings = {"classify": time.perf_counter() - clock}

    if attribution is None:
        attribution = first_layer_attribution(model, layer, x, label, steps=ig_steps, deciding=top_k)
        timings.update(gradient_graph=attribution.graph_seconds, ig=attribution.seconds)
    clock = time.perf_counter()
    activations = layer.activations(x)
    masked_out = np.where(units.unit_of >= 0, np.asarray(base, dtype=np.float64).reshape(-1), np.asarray(x, dtype=np.float64).reshape(-1))
    eligible = eligible_neurons(layer, x, masked_out, formulation)
    if rank == "ig":
        ranking = attribution.scores
    else:  # by activation; baseline-relative: by how far the input moved it
        ranking = activations if formulation == "published" else activations - layer.activations(masked_out)
    neurons = select_top_k(ranking, eligible, top_k)
    timings["ranking"] = time.perf_counter() - clock
    clock = time.perf_counter()
    unit_saliency = base_saliency(layer, units, neurons, attribution.scores)
    timings["saliency"] = time.perf_counter() - clock

    settings = {
        "top_k": top_k, "rank": rank, "gamma": gamma, "formulation": formulation, "ig_steps": ig_steps,
        "margin": margin if method == "network" else None, **(settings or {}),
    }
    settings.setdefault("baseline", "given")
    metadata = {"model": os.path.basename(str(model.path)), "model_sha256": model.sha256, "label": label, "top_k": top_k}
    problem: MaskProblem | NetworkMaskProblem | None = None
    clock = time.perf_counter()
    if method == "network":
        problem = network_problem(mlp_layers(model, layer), layer, x, base, units, label, margin, metadata)
    elif method == "smug":
        require(f"the masking problem ({neurons.size} neurons x {units.n_units} units)",
                problem_memory(neurons.size, layer.receptive_field_size(), units.n_units))
        problem = smug_problem(layer, x, base, units, neurons, gamma, metadata=metadata, formulation=formulation)
    timings["build"] = time.perf_counter() - clock
    return Setup(
        model, layer, x, units, grid, np.asarray(base, dtype=np.float32).reshape(x.shape), label, predicted, method,
        gamma, margin, neurons, attribution, unit_saliency, problem, settings, timings,
    )


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
    on_input = setup.model.run(setup.x, (setup.layer.pre_name,))
    on_baseline = setup.model.run(setup.base, (setup.layer.pre_name,))
    checks = (
        ("the baseline values", setup.base),
        ("the model's outputs on the input", on_input[0]),
        ("the first layer's pre-activations on the input", on_input[1]),
        ("the first layer's pre-activations on the baseline", on_baseline[1]),
        ("the Integrated Gradients scores", setup.attribution.scores),
    )
    return next((what for what, values in checks if not np.all(np.isfinite(values))), None)


def _verified_line(number: int, found: Found) -> str:
    v = found.verification
    if v is not None and v.min_slack is not None:
        return (
            f"verified    mask {number}: constraints {'hold' if v.holds else 'FAIL'} in float32 (min slack {v.min_slack:.4g}); "
            f"confidence {v.original.confidence:.3f} -> masked {v.masked.confidence:.3f} (class {v.masked.predicted}), "
            f"inverse {v.inverse_masked.confidence:.3f} (class {v.inverse_masked.predicted})"
        )
    if found.network_margin is not None:
        return f"verified    mask {number}: logit margin on onnxruntime {found.network_margin:+.4g} ({'holds' if found.verified else 'FAILS'})"
    return ""


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


def check_options(top_k: int, gamma: float, method: str, rank: str, margin: float = 0.0) -> None:
    """Refuse a bad option by name, before any work (batch runs it before reading a single input)."""
    if rank not in RANKINGS:
        raise InputError(f"unknown neuron ranking {rank!r}; accepted: {', '.join(RANKINGS)}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if int(top_k) < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    check_gamma(gamma)
    if not np.isfinite(float(margin)):
        raise InputError(f"margin must be a finite number, got {margin}")


def _check_label(label: int, n_classes: int) -> int:
    if not 0 <= int(label) < n_classes:
        raise InputError(f"label {label} is out of range: the model has {n_classes} classes (0..{n_classes - 1})")
    return int(label)


def _units(layout: InputLayout, window: int | None, segments: np.ndarray | None) -> MaskUnits:
    if segments is not None:
        return segment_units(layout, segments)
    if window is not None and window > 1:
        return window_units(layout, window)
    return pixel_units(layout)

