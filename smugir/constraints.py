"""Build masking problems from the first-layer IR: SMUG, SMUG_base, and the whole-network variant.

The masked input is x' = b + m_u (x - b) per element (b the baseline), so every first-layer
pre-activation is affine in the mask: pre_i(x') = pre_i(x_b) + sum_u a_iu m_u with
a_iu = sum over elements e of unit u of w_ie (x_e - b_e). All coefficients are computed in float64
from the receptive fields. Two formulations of "keep neuron i active" (`FORMULATIONS`):

- "baseline-relative" (the default): pre_i(x') - pre_i(x_b) > gamma * (pre_i(x) - pre_i(x_b)), i.e.
  the kept units must bring back at least a gamma share of what the input added to the neuron over
  the baseline: sum_u a_iu m_u > gamma * (pre_i(x) - pre_i(x_b)). With gamma >= 0 and neurons the
  input moved up (pre_i(x) > pre_i(x_b)), the empty mask never satisfies it and the full mask always
  does, so the answer always says which units matter.
- "published" (the SMUG paper): pre_i(x') > gamma * pre_i(x). On networks whose first layer carries
  a large bias (BatchNormalization folded into the conv), the baseline alone often satisfies it
  and the minimal mask is empty: the explanation says nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import sparse

from smugir.errors import InputError, UnsupportedModelError
from smugir.firstlayer import DenseLayer, FirstLayer, ReceptiveFields
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.units import MaskUnits

# What one receptive-field term, unit and constraint cost while a problem is built and solved by
# HiGHS, rounded up from measurement (EfficientNet-Lite0, 3000 rows: 46 MB for 50,176 pixel units).
BYTES_PER_NONZERO = 512
BYTES_PER_UNIT = 1024
BYTES_PER_CONSTRAINT = 1024


FORMULATIONS = ("baseline-relative", "published")
DEFAULT_FORMULATION = "baseline-relative"  # measured better: benchmarks/bench_formulation.py, README


def check_formulation(formulation: str) -> str:
    if formulation not in FORMULATIONS:
        raise InputError(f"unknown formulation {formulation!r}; accepted: {', '.join(FORMULATIONS)}")
    return formulation


def check_gamma(gamma: float) -> float:
    if not (0.0 <= float(gamma) < 1.0):
        raise InputError(f"gamma must be in [0, 1), got {gamma}")
    return float(gamma)


def eligible_neurons(layer: FirstLayer, x: np.ndarray, baseline: np.ndarray, formulation: str = DEFAULT_FORMULATION) -> np.ndarray:
    """The neurons a formulation may keep (bool, flat). Published: a positive activation on x.
    Baseline-relative: the neurons the input moved, act(pre_i(x)) > act(pre_i(x_b)) with the layer's
    own activation. For a strictly increasing activation that is pre_i(x) > pre_i(x_b); for ReLU it
    also needs pre_i(x) > 0; for ReLU6 (Clip(0, 6)) pre_i(x) > max(pre_i(x_b), 0) and pre_i(x_b) < 6:
    a neuron dead on x, or saturated at 6 on the baseline already, passes nothing new downstream, so
    asking the mask to raise its pre-activation would constrain what the network does not see.

    The constraints are on pre-activations, so a neuron is also eligible only where the full mask
    meets them: pre_i(x) > pre_i(x_b) (published: pre_i(x) > 0). For a non-monotone activation
    (SiLU, HardSwish, GELU, LeakyRelu with alpha < 0) the activation can rise while the
    pre-activation falls; such a neuron would make the problem infeasible."""
    pre_x = layer.preactivations(x).reshape(-1)
    if check_formulation(formulation) == "published":
        return (layer.activation(pre_x) > 0) & (pre_x > 0)
    pre_base = layer.preactivations(baseline).reshape(-1)
    return (layer.activation(pre_x) > layer.activation(pre_base)) & (pre_x > pre_base)


def smug_problem(
    layer: FirstLayer,
    x: np.ndarray,
    baseline: np.ndarray,
    units: MaskUnits,
    neurons: np.ndarray,
    gamma: float,
    weights: np.ndarray | None = None,
    metadata: Mapping[str, Any] | None = None,
    formulation: str = DEFAULT_FORMULATION,
) -> MaskProblem:
    """minimise sum m s.t. every neuron in `neurons` stays active in the chosen formulation (module doc)."""
    gamma = check_gamma(gamma)
    relative = check_formulation(formulation) == "baseline-relative"
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    base = layer.effective_input(_masked_base(x, baseline, units))
    x = layer.effective_input(x)  # the terms are linear in x' (a float16 graph's rounded input): exact per element
    neurons = np.asarray(neurons, dtype=np.int64)
    fields = layer.fields(neurons)
    pre_x, pre_base = fields.values(x), fields.values(base)
    bounds = gamma * (pre_x - pre_base) if relative else gamma * pre_x - pre_base
    weights = np.ones(units.n_units) if weights is None else np.asarray(weights, dtype=np.float64)
    info = {"variant": "smug", "formulation": formulation, "gamma": gamma, "neurons": neurons.tolist(), "units": units.description, **(metadata or {})}
    return MaskProblem(coefficients=unit_coefficients(fields, units, x - base), bounds=bounds, weights=weights, metadata=info)


def _masked_base(x: np.ndarray, baseline: np.ndarray, units: MaskUnits) -> np.ndarray:
    """The baseline where an element belongs to a unit, x where it is never masked (padding)."""
    return np.where(units.unit_of >= 0, np.asarray(baseline, dtype=np.float64).reshape(-1), x)


def unit_coefficients(fields: ReceptiveFields, units: MaskUnits, delta: np.ndarray) -> sparse.csr_array:
    """a_ru = sum of w_re * delta_e over the elements e of unit u in row r's field, as CSR.

    Built from the (row, element) pairs of the receptive fields only: its memory is the total
    field size, whatever the number of units.
    """
    unit = units.unit_of[fields.field]
    inside = unit >= 0
    values = fields.coefficients[inside] * np.asarray(delta, dtype=np.float64).reshape(-1)[fields.field[inside]]
    return sparse.csr_array((values, (fields.rows()[inside], unit[inside])), shape=(fields.n_rows, units.n_units))


def receptive_units(layer: FirstLayer, units: MaskUnits, neurons: np.ndarray) -> sparse.csr_array:
    """Which mask units each neuron's receptive field touches: a 0/1 CSR array (neurons, n_units)."""
    fields = layer.fields(np.asarray(neurons, dtype=np.int64))
    covered = unit_coefficients(fields, units, np.ones(layer.n_inputs))
    covered.data[:] = 1.0
    return covered


def base_saliency(layer: FirstLayer, units: MaskUnits, neurons: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """SMUG_base map per unit: the sum of the IG scores of the kept neurons whose field covers it."""
    neurons = np.asarray(neurons, dtype=np.int64)
    return receptive_units(layer, units, neurons).T @ np.asarray(scores, dtype=np.float64)[neurons]


def problem_memory(n_constraints: int, field_size: int, n_units: int) -> int:
    """Bytes the SMUG problem of `n_constraints` neurons takes to build and to solve with HiGHS.

    Known before anything is allocated (`field_size` is `FirstLayer.receptive_field_size()`, in
    input elements): every structure is linear in the terms n_constraints x field_size, in the
    units or in the constraints, never in their product. HiGHS's branch-and-bound tree comes on top.
    """
    nnz = int(n_constraints) * int(field_size)
    return BYTES_PER_NONZERO * nnz + BYTES_PER_UNIT * int(n_units) + BYTES_PER_CONSTRAINT * int(n_constraints)


def network_problem(
    layers: list[tuple[np.ndarray, np.ndarray]],
    first: DenseLayer,
    x: np.ndarray,
    baseline: np.ndarray,
    units: MaskUnits,
    label: int,
    margin: float,
    metadata: Mapping[str, Any] | None = None,
) -> NetworkMaskProblem:
    """The whole-network encoding of a ReLU MLP: the label's logit beats every other by `margin`.

    `layers` are the dense layers after the first one; the first layer's preprocessing is folded in,
    so the problem's inputs are the raw model inputs.
    """
    if not isinstance(first, DenseLayer) or first.activation.kind != "Relu":
        raise UnsupportedModelError("the whole-network encoding needs a ReLU MLP (dense first layer with Relu)")
    if margin < 0:
        raise InputError(f"margin (delta) must be >= 0, got {margin}")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    base = first.effective_input(_masked_base(x, baseline, units))
    x = first.effective_input(x)
    unit_of = np.where(units.unit_of >= 0, units.unit_of, 0)
    delta = np.where(units.unit_of >= 0, x - base, 0.0)
    return NetworkMaskProblem(
        base=base,
        delta=delta,
        unit_of=unit_of,
        layers=((first.weight, first.bias), *layers),
        label=int(label),
        margin=float(margin),
        weights=np.ones(units.n_units),
        metadata={"variant": "network", "units": units.description, **(metadata or {})},
    )
