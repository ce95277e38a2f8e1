"""Everything before the solver: options checked, mask units, first-layer IG, the neurons kept and
the masking problem of one input (`Setup`), each phase timed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from smugir.attribution import IGResult, OnIGProgress, first_layer_attribution, top_k as select_top_k
from smugir.baseline import make_baseline
from smugir.budget import require
from smugir.constraints import (
    DEFAULT_FORMULATION, base_saliency, check_formulation, check_gamma, eligible_neurons, network_problem, problem_memory,
    smug_problem,
)
from smugir.errors import InputError
from smugir.firstlayer import FirstLayer, first_layer
from smugir.inputs import check_input
from smugir.model import Model, load_model
from smugir.network import mlp_layers
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.units import InputLayout, MaskUnits, input_layout, pixel_units, segment_units, window_units
from smugir.verify import probabilities

Method = Literal["smug", "smug_base", "network"]
METHODS = ("smug", "smug_base", "network")
RANKINGS = ("ig", "activation")  # activation: the original code's choice for dense first layers


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
    on_ig_progress: OnIGProgress | None = None,
) -> Setup:
    """The masking problem `explain` would solve, built but not solved (exports use it as is).

    `formulation` is "baseline-relative" (default) or "published": see `smugir.constraints`;
    `on_ig_progress` gets the Integrated Gradients' `IGProgress` snapshots."""
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
        method=method, ig_steps=ig_steps, margin=margin, rank=rank, formulation=formulation, on_ig_progress=on_ig_progress,
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
    on_ig_progress: OnIGProgress | None = None,
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
    timings = {"first_layer": time.perf_counter() - clock}
    clock = time.perf_counter()
    x = check_input(x, model.input_shape)
    original = probabilities(model, model.run(x)[0])
    predicted = int(np.argmax(original))
    label = predicted if label is None else _check_label(label, original.size)
    timings["classify"] = time.perf_counter() - clock

    if attribution is None:
        attribution = first_layer_attribution(model, layer, x, label, steps=ig_steps, deciding=top_k, on_progress=on_ig_progress)
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
