"""Hypothesis strategies for masking problems small enough for brute force (at most 12 units).

- `mask_problems()`: random first-layer-shaped rows (coefficients over six orders of magnitude,
  bounds from easy to impossible), unit or integer weights;
- `tie_problems()`: small integer rows, so a.m = b ties are common (the strict `>` matters);
- `network_problems()`: whole-network problems of a small ReLU MLP;
- `first_layer_problems()`: what smugir makes of a random ONNX model (smugir.testing.models), an
  input, a baseline and mask windows, with the model kept so a mask can be checked on onnxruntime.
`masking_problems()` draws from the first-layer kinds, `any_problems()` from all of them;
`solved(strategy)` adds the brute-force truth to each problem.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.testing.brute_force import BruteForce, brute_force
from smugir.testing.graphs import Built
from smugir.testing.models import first_layer_models

MAX_UNITS = 12  # 4096 masks: brute force in milliseconds


def _rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def mask_problems(draw, max_units: int = MAX_UNITS) -> MaskProblem:
    rng = _rng(draw)
    n = draw(st.integers(1, max_units))
    k = draw(st.integers(1, 6))
    coefficients = rng.normal(size=(k, n)) * 10.0 ** rng.integers(-3, 3, size=(k, 1))
    bounds = rng.normal(size=k) * np.abs(coefficients).sum(axis=1) * draw(st.sampled_from([0.1, 0.4, 1.2]))
    weights = np.ones(n) if draw(st.booleans()) else rng.integers(1, 4, size=n).astype(float)
    return MaskProblem(coefficients, bounds, weights, {})


@st.composite
def tie_problems(draw, max_units: int = 10) -> MaskProblem:
    """Small integer coefficients, bounds and weights drawn by hypothesis itself (so a failure
    shrinks to a problem like `1 m0 > 0`): rows met with equality are common, some units matter
    to no row, some cost nothing."""
    n, k = draw(st.integers(1, max_units)), draw(st.integers(1, 5))
    coefficients = np.array(draw(st.lists(st.integers(-2, 3), min_size=k * n, max_size=k * n)), dtype=float).reshape(k, n)
    bounds = np.array(draw(st.lists(st.integers(-1, 3), min_size=k, max_size=k)), dtype=float)
    weights = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=float)
    return MaskProblem(coefficients, bounds, weights, {})


@st.composite
def network_problems(draw) -> NetworkMaskProblem:
    """A ReLU MLP (2-6 inputs, two hidden layers, 3 logits) over 1-5 mask units."""
    rng = _rng(draw)
    n_inputs, n_units = draw(st.integers(2, 6)), draw(st.integers(1, 5))
    widths = [n_inputs, draw(st.integers(1, 5)), draw(st.integers(1, 4)), 3]
    layers = tuple((rng.normal(size=(o, i)), rng.normal(size=o) * 0.3) for i, o in zip(widths, widths[1:]))
    return NetworkMaskProblem(
        base=np.zeros(n_inputs),
        delta=rng.normal(size=n_inputs),
        unit_of=rng.integers(0, n_units, size=n_inputs),
        layers=layers,
        label=int(rng.integers(0, 3)),
        margin=float(draw(st.sampled_from([0.0, 0.1]))),
        weights=np.ones(n_units),
    )


@dataclass(frozen=True)
class FirstLayerProblem:
    """A masking problem smugir built from a model: `problem` keeps `neurons` of `built`'s first
    layer above `gamma` of their rise from the baseline (the baseline-relative formulation)."""

    problem: MaskProblem
    built: Built
    x: np.ndarray
    baseline: np.ndarray
    unit_of: np.ndarray  # (input elements,) the unit of each element, -1 for never masked
    neurons: np.ndarray
    gamma: float

    def masked_input(self, mask: np.ndarray) -> np.ndarray:
        keep = np.append(np.asarray(mask, dtype=bool), True)[self.unit_of].reshape(self.x.shape)
        return np.where(keep, self.x, self.baseline).astype(np.float32)

    def onnxruntime_slack(self, mask: np.ndarray) -> np.ndarray:
        """pre_i(masked) - pre_i(baseline) - gamma (pre_i(x) - pre_i(baseline)) for the kept neurons,
        computed by onnxruntime in float32 on the original model: the problem's rows minus their
        bounds, to float32 precision."""
        from smugir.model import expose_outputs, make_session

        session = make_session(expose_outputs(self.built.proto, [self.built.pre_name]))
        empty = self.masked_input(np.zeros(self.problem.n_units, dtype=bool))
        pre = [session.run([self.built.pre_name], {self.built.input_name: v})[0].reshape(-1)[self.neurons].astype(np.float64)
               for v in (self.masked_input(mask), self.x, empty)]
        return pre[0] - pre[2] - self.gamma * (pre[1] - pre[2])


def _units(layout, max_units: int):
    """The smallest square windows that make at most `max_units` units (one window covers the grid)."""
    from smugir.units import window_units

    window = 1
    while window_units(layout, window).n_units > max_units:
        window += 1
    return window_units(layout, window)


@st.composite
def first_layer_problems(draw, max_units: int = MAX_UNITS) -> FirstLayerProblem:
    """A random ONNX classifier, a random input and baseline (zero or random), the smallest windows
    that make at most `max_units` units, up to 4 of the neurons the input moved, and gamma."""
    from smugir.constraints import eligible_neurons, smug_problem
    from smugir.firstlayer import first_layer
    from smugir.model import load_model
    from smugir.units import input_layout

    built = draw(first_layer_models())
    rng = _rng(draw)
    with tempfile.TemporaryDirectory(prefix="smugir-testing-") as folder:
        path = f"{folder}/m.onnx"
        with open(path, "wb") as stream:
            stream.write(built.proto.SerializeToString())
        model = load_model(path)
    layer = first_layer(model)
    units = _units(input_layout(model.input_shape), max_units)
    x = built.x
    baseline = (rng.normal(size=x.shape) * draw(st.sampled_from([0.0, 1.0]))).astype(np.float32)
    moved = np.flatnonzero(eligible_neurons(layer, x, baseline))
    assume(moved.size > 0)  # smugir keeps only neurons the input moved (else: nothing to explain)
    neurons = rng.choice(moved, size=min(moved.size, draw(st.integers(1, 4))), replace=False)
    gamma = draw(st.sampled_from([0.0, 0.3, 0.5, 0.9]))
    problem = smug_problem(layer, x, baseline, units, neurons, gamma)
    return FirstLayerProblem(problem, built, x, baseline, units.unit_of, neurons, gamma)


def masking_problems(max_units: int = MAX_UNITS) -> st.SearchStrategy[MaskProblem]:
    """Any first-layer masking problem: random, tie-heavy, or made by smugir from a random model."""
    # tie problems first: hypothesis shrinks a failure towards the first strategy, and theirs are the most readable
    return st.one_of(tie_problems(min(max_units, 10)), mask_problems(max_units), first_layer_problems(max_units).map(lambda p: p.problem))


def any_problems(max_units: int = MAX_UNITS) -> st.SearchStrategy[MaskProblem | NetworkMaskProblem]:
    return st.one_of(masking_problems(max_units), network_problems())


@dataclass(frozen=True)
class Solved:
    """A drawn problem and its brute-force truth (`truth.optimum`, `truth.optimal_masks`, ...)."""

    problem: MaskProblem | NetworkMaskProblem
    truth: BruteForce


def solved(problems: st.SearchStrategy[MaskProblem | NetworkMaskProblem] | None = None) -> st.SearchStrategy[Solved]:
    """`problems` (default `masking_problems()`) with the brute-force optimum computed."""
    return (problems if problems is not None else masking_problems()).map(lambda p: Solved(p, brute_force(p)))
