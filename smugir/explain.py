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
from smugir.constraints import (
    DEFAULT_FORMULATION, base_saliency, check_formulation, check_gamma, eligible_neurons, network_problem, receptive_units, smug_problem,
)
from smugir.errors import InputError
from smugir.firstlayer import FirstLayer, first_layer
from smugir.inputs import check_input
from smugir.model import Model, load_model
from smugir.network import mlp_layers
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.solve import DEFAULT_SOLVER, Solution, solve
from smugir.units import InputLayout, MaskUnits, input_layout, pixel_units, segment_units, window_units
from smugir.verify import Verification, probabilities, verify_mask

Method = Literal["smug", "smug_base", "network"]
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
            "kept_units": np.flatnonzero(self.unit_mask).tolist(),
            "verified": self.verified,
            "verification": self.verification.to_json() if self.verification else None,
            "network_margin": self.network_margin,
        }


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

    @property
    def best(self) -> Found:
        return self.found[0]

    @property
    def status(self) -> str:
        return self.best.status

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

    def summary(self) -> str:
        """A few lines for the terminal: what was kept, whether it is proven minimal and verified."""
        kept = int(self.unit_mask.sum())
        bound = "" if self.bound is None else f", lower bound {self.bound:g}"
        lines = [
            f"model       {self.model} (label {self.label}, predicted {self.predicted})",
            f"method      {self.method}: {self.units.n_units} {self.units.kind} units ({self.units.description}), "
            f"top-k {self.settings['top_k']}, gamma {self.settings['gamma']}, baseline {self.settings['baseline']}, "
            f"formulation {self.settings.get('formulation', DEFAULT_FORMULATION)}",
            f"attribution IG over {self.attribution.get('steps')} steps, completeness error "
            f"{100 * self.attribution.get('completeness_error', float('nan')):.2f} %, {len(self.neurons)} neurons kept",
            f"result      {self.status}: {kept} of {self.units.n_units} units kept ({100 * kept / max(self.units.n_units, 1):.1f} %){bound}; solver {self.solver}",
        ]
        for number, found in enumerate(self.found, start=1):
            v = found.verification
            if v is not None:
                lines.append(
                    f"verified    mask {number}: constraints {'hold' if v.holds else 'FAIL'} in float32 (min slack {v.min_slack:.4g}); "
                    f"confidence {v.original.confidence:.3f} -> masked {v.masked.confidence:.3f} (class {v.masked.predicted}), "
                    f"inverse {v.inverse_masked.confidence:.3f} (class {v.inverse_masked.predicted})"
                )
            elif found.network_margin is not None:
                lines.append(f"verified    mask {number}: logit margin on onnxruntime {found.network_margin:+.4g} ({'holds' if found.verified else 'FAILS'})")
        lines.append("timings     " + ", ".join(f"{k} {v:.3f} s" for k, v in self.timings.items()))
        return "\n".join(lines)

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
            "objective": self.objective,
            "bound": self.bound,
            "kept_units": kept,
            "sparsity": kept / max(self.units.n_units, 1),
            "solver": self.solver,
            "verified": self.best.verified,
            "solutions": [f.to_json() for f in self.found],
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
    timeout: float | None = None,
    solutions: int = 1,
    method: Method = "smug",
    ig_steps: int | None = None,
    layout: str = "auto",
    image_shape: tuple[int, int] | None = None,
    margin: float = 0.0,
    rank: str = "ig",
    formulation: str = DEFAULT_FORMULATION,
) -> Explanation:
    """Explain `model`'s prediction on `x` with a minimal mask (see the README for each option)."""
    setup = prepare(model, x, label, top_k, gamma, window, segments, baseline, method, ig_steps, layout, image_shape, margin, rank, formulation)
    return finish(setup, solver, timeout, solutions)


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
    grid = input_layout(model.input_shape, layout, image_shape)
    units = _units(grid, window, segments)
    setup = prepare_units(
        model, x, units, grid, make_baseline(baseline, x, grid), label=label, top_k=top_k, gamma=gamma,
        method=method, ig_steps=ig_steps, margin=margin, rank=rank, formulation=formulation,
        settings={"window": window, "segments": segments is not None, "baseline": str(baseline)},
    )
    setup.timings = {"load": loading, **setup.timings}
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
) -> Setup:
    """Attribution, neuron selection and the masking problem, for fixed mask units and baseline.

    Baseline-relative: only neurons the input moved above the baseline are ranked (and constrained);
    published: neurons with a positive activation on x."""
    timings: dict[str, float] = {}
    _check_options(top_k, gamma, method, rank)
    check_formulation(formulation)
    layer = first_layer(model)
    x = check_input(x, model.input_shape)
    original = probabilities(model, model.run(x)[0])
    predicted = int(np.argmax(original))
    label = predicted if label is None else _check_label(label, original.size)

    clock = time.perf_counter()
    attribution = first_layer_attribution(model, layer, x, label, steps=ig_steps)
    activations = layer.activations(x)
    masked_out = np.where(units.unit_of >= 0, np.asarray(base, dtype=np.float64).reshape(-1), np.asarray(x, dtype=np.float64).reshape(-1))
    eligible = eligible_neurons(layer, x, masked_out, formulation)
    if rank == "ig":
        ranking = attribution.scores
    else:  # by activation; baseline-relative: by how far the input moved it
        ranking = activations if formulation == "published" else activations - layer.activations(masked_out)
    neurons = select_top_k(ranking, eligible, top_k)
    timings["attribution"] = time.perf_counter() - clock
    unit_saliency = base_saliency(layer, units, neurons, attribution.scores)

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
        problem = smug_problem(layer, x, base, units, neurons, gamma, metadata=metadata, formulation=formulation)
    timings["build"] = time.perf_counter() - clock
    return Setup(
        model, layer, x, units, grid, np.asarray(base, dtype=np.float32).reshape(x.shape), label, predicted, method,
        gamma, margin, neurons, attribution, unit_saliency, problem, settings, timings,
    )


def finish(setup: Setup, solver: str = DEFAULT_SOLVER, timeout: float | None = None, solutions: int = 1) -> Explanation:
    """Solve a prepared problem (or take every receptive unit for SMUG_base) and verify each mask."""
    if int(solutions) < 1:
        raise InputError(f"solutions must be >= 1, got {solutions}")
    timings = dict(setup.timings)
    settings = {**setup.settings, "timeout": timeout, "solutions": solutions}
    if setup.problem is None:
        unit_mask = np.zeros(setup.units.n_units, dtype=bool)
        for covered in receptive_units(setup.layer, setup.units, setup.neurons):
            unit_mask[covered] = True
        solver_name = "none (SMUG_base: every unit in a kept receptive field)"
        found_solutions = [Solution("feasible", unit_mask, float(unit_mask.sum()), None, solver_name, 0.0, {})]
    else:
        clock = time.perf_counter()
        found_solutions = solve(setup.problem, solver=solver, timeout=timeout, solutions=solutions)
        timings["solve"] = time.perf_counter() - clock
        solver_name = found_solutions[0].solver

    clock = time.perf_counter()
    found = [_check(setup, s) for s in found_solutions]
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
    )


def _check(setup: Setup, solution: Solution) -> Found:
    if solution.mask is None:
        return Found(np.zeros(setup.units.n_units, dtype=bool), solution.status, solution.objective, solution.bound, None)
    unit_mask = np.asarray(solution.mask, dtype=bool)
    if setup.method == "network":
        masked = setup.units.masked_input(setup.x, setup.base, unit_mask)
        logits = setup.model.run(masked)[0].reshape(-1).astype(np.float64)
        others = np.delete(logits, setup.label)
        found_margin = float(logits[setup.label] - others.max() - setup.margin)
        return Found(unit_mask, solution.status, solution.objective, solution.bound, None, network_margin=found_margin)
    verification = verify_mask(
        setup.model, setup.layer, setup.x, setup.base, setup.units, unit_mask, setup.neurons, setup.gamma, setup.label,
        setup.settings.get("formulation", DEFAULT_FORMULATION),
    )
    return Found(unit_mask, solution.status, solution.objective, solution.bound, verification)


def _check_options(top_k, gamma, method, rank) -> None:
    if rank not in RANKINGS:
        raise InputError(f"unknown neuron ranking {rank!r}; accepted: {', '.join(RANKINGS)}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if int(top_k) < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    check_gamma(gamma)


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

