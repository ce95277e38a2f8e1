"""The SMUG constraints equal onnxruntime's pre-activations of the masked input, for any mask."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smugir.constraints import FORMULATIONS, base_saliency, eligible_neurons, receptive_units, smug_problem
from smugir.errors import InputError
from smugir.firstlayer import first_layer
from smugir.model import load_model
from smugir.testing import first_layer_models, loaded_with_units
from smugir.units import input_layout, pixel_units, window_units


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(built=first_layer_models(), seed=st.integers(0, 2**16), unit_kind=st.sampled_from(["pixel", "window", "segment"]),
       gamma=st.floats(0, 0.99), formulation=st.sampled_from(FORMULATIONS))
def test_constraint_values_equal_onnxruntime(built, seed, unit_kind, gamma, formulation, tmp_path):
    rng = np.random.default_rng(seed)
    model, layer, units = loaded_with_units(built, tmp_path, rng, unit_kind)
    x = rng.normal(size=model.input_shape).astype(np.float32)
    baseline = rng.normal(size=model.input_shape).astype(np.float32) * rng.integers(0, 2)
    neurons = rng.choice(layer.n_neurons, size=min(layer.n_neurons, 5), replace=False)
    problem = smug_problem(layer, x, baseline, units, neurons, gamma, formulation=formulation)
    assert problem.metadata["formulation"] == formulation
    session = model.session((layer.pre_name,))
    (pre_x,) = session.run([layer.pre_name], {model.input_name: x})
    empty = units.masked_input(x, baseline, np.zeros(units.n_units, dtype=bool)).astype(np.float32)
    (pre_empty,) = session.run([layer.pre_name], {model.input_name: empty})
    pre_x, pre_empty = (p.reshape(-1)[neurons].astype(np.float64) for p in (pre_x, pre_empty))
    # baseline-relative: pre(masked) - pre(b) > gamma (pre(x) - pre(b)); published: pre(masked) > gamma pre(x)
    threshold = pre_empty + gamma * (pre_x - pre_empty) if formulation == "baseline-relative" else gamma * pre_x
    for _ in range(4):
        mask = rng.integers(0, 2, size=units.n_units).astype(bool)
        masked = units.masked_input(x, baseline, mask).astype(np.float32)
        (pre_masked,) = session.run([layer.pre_name], {model.input_name: masked})
        expected = pre_masked.reshape(-1)[neurons].astype(np.float64) - threshold
        got = problem.coefficients @ mask - problem.bounds
        scale = max(1.0, float(np.abs(pre_masked).max()), float(np.abs(pre_x).max()))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(built=first_layer_models(), seed=st.integers(0, 2**16), gamma=st.floats(0, 0.99), window=st.integers(1, 3))
def test_baseline_relative_never_accepts_the_empty_mask(built, seed, gamma, window, tmp_path):
    """Every kept neuron moved (checked on onnxruntime): the empty mask fails, the full mask holds."""
    path = tmp_path / "m.onnx"
    onnx.save(built.proto, path)
    model = load_model(path)
    layer = first_layer(model)
    rng = np.random.default_rng(seed)
    units = window_units(input_layout(model.input_shape), window)
    x = rng.normal(size=model.input_shape).astype(np.float32)
    baseline = (rng.normal(size=model.input_shape) * rng.integers(0, 2)).astype(np.float32)
    moved = np.flatnonzero(eligible_neurons(layer, x, baseline))
    session = model.session((layer.post_name,))
    post = [session.run([layer.post_name], {model.input_name: v})[0].reshape(-1) for v in (x, baseline)]
    np.testing.assert_array_equal(post[0][moved] >= post[1][moved], True)  # moved up on onnxruntime too
    if moved.size == 0:
        return
    neurons = rng.choice(moved, size=min(moved.size, 5), replace=False)
    problem = smug_problem(layer, x, baseline, units, neurons, gamma, formulation="baseline-relative")
    assert not problem.is_satisfied(np.zeros(units.n_units))
    assert problem.is_satisfied(np.ones(units.n_units))


def test_units_cover_the_grid():
    layout = input_layout((1, 3, 5, 7))
    assert (layout.channels, layout.height, layout.width) == (3, 5, 7)
    windows = window_units(layout, 3)
    assert windows.n_units == 2 * 3  # edge windows are smaller, not dropped
    assert np.bincount(windows.unit_of).min() == 3 * 2 * 1  # the corner window: 3 channels x 2 rows x 1 column
    pixels = pixel_units(layout)
    assert pixels.n_units == 35 and np.all(np.bincount(pixels.unit_of) == 3)


def test_flat_mnist_input_is_a_square_image():
    layout = input_layout((1, 784, 1))
    assert (layout.channels, layout.height, layout.width) == (1, 28, 28)
    nhwc = input_layout((1, 32, 32, 3))
    assert nhwc.name == "NHWC" and tuple(nhwc.coords[1]) == (1, 0, 0)


def test_base_saliency_sums_scores_over_covering_neurons():
    layer = first_layer(load_model("tests/data/cifar/resnet_2b.onnx"))
    units = pixel_units(input_layout((1, 3, 32, 32)))
    scores = np.zeros(layer.n_neurons)
    scores[[0, 1]] = [2.0, 3.0]
    saliency = base_saliency(layer, units, np.array([0, 1]), scores)
    covered = receptive_units(layer, units, np.array([0, 1]))
    first, second = (covered.indices[covered.indptr[r] : covered.indptr[r + 1]] for r in (0, 1))
    assert saliency[np.intersect1d(first, second)].min() == 5.0
    assert saliency.sum() == pytest.approx(2.0 * first.size + 3.0 * second.size)


@pytest.mark.parametrize("gamma", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_gamma(gamma):
    layer = first_layer(load_model("tests/data/mnist/mnist-net_256x2.onnx"))
    units = pixel_units(input_layout((1, 784, 1)))
    with pytest.raises(InputError, match="gamma"):
        smug_problem(layer, np.zeros(784), np.zeros(784), units, np.array([0]), gamma)
