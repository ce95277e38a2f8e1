"""The first-layer IR against onnxruntime: real models on real samples, and random models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smugir.firstlayer import ConvLayer, DenseLayer, first_layer
from smugir.model import Model, load_model, make_session, suffix_model
from smugir.testing import conv_models, dense_models, first_layer_models


def _load(proto: onnx.ModelProto, tmp_path) -> Model:
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    return load_model(path)


def _assert_close(ir: np.ndarray, ort: np.ndarray) -> None:
    ort = ort.astype(np.float64).reshape(ir.shape)
    scale = max(1.0, float(np.abs(ort).max()))
    np.testing.assert_allclose(ir, ort, rtol=1e-5, atol=1e-5 * scale)


def test_real_models_preactivations_match_onnxruntime(real_model):
    name, path, samples = real_model
    model = load_model(path)
    layer = first_layer(model)
    for x in samples:
        _, pre, post = model.run(x, (layer.pre_name, layer.post_name))
        _assert_close(layer.preactivations(x), pre)
        _assert_close(layer.activations(x), post)


def test_real_models_neuron_terms_reproduce_preactivations(real_model):
    name, path, samples = real_model
    layer = first_layer(load_model(path))
    x = samples[0].astype(np.float64).reshape(-1)
    pre = layer.preactivations(x)
    for i in np.linspace(0, layer.n_neurons - 1, 25).astype(int):
        terms = layer.neuron(i)
        assert np.all(np.diff(terms.field) > 0) and np.all(terms.coefficients != 0)
        assert terms.coefficients @ x[terms.field] + terms.constant == pytest.approx(pre[i], rel=1e-9, abs=1e-9)


def test_real_model_kinds():
    expected = {
        "mnist-net_256x2": ("dense", 256, 784),
        "mnist_relu_9_200": ("dense", 200, 784),
        "cifar10_small": ("conv2d", 8 * 15 * 15, 4 * 4 * 3),
        "resnet_2b": ("conv2d", 8 * 16 * 16, 3 * 3 * 3),
    }
    from conftest import REAL_MODELS

    for name, (kind, neurons, field) in expected.items():
        layer = first_layer(load_model(REAL_MODELS[name][0]))
        assert (layer.kind, layer.n_neurons, layer.receptive_field_size()) == (kind, neurons, field)
        assert layer.activation.kind == "Relu"


def test_batched_preactivations_equal_single(real_model):
    _, path, samples = real_model
    layer = first_layer(load_model(path))
    batch = layer.preactivations(samples[:3])
    for row, x in zip(batch, samples[:3]):
        np.testing.assert_allclose(row, layer.preactivations(x), rtol=1e-12)


def test_suffix_model_maps_activations_to_logits(real_model):
    _, path, samples = real_model
    model = load_model(path)
    layer = first_layer(model)
    suffix = make_session(suffix_model(model.proto, layer.post_name))
    logits, post = model.run(samples[0], (layer.post_name,))
    (again,) = suffix.run(None, {layer.post_name: post})
    np.testing.assert_allclose(again, logits, rtol=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(built=first_layer_models(), seed=st.integers(0, 2**16))
def test_random_models_match_onnxruntime_and_receptive_fields_are_exact(built, seed, tmp_path):
    model = _load(built.proto, tmp_path)
    layer = first_layer(model)
    assert isinstance(layer, ConvLayer if built.description.startswith("conv") else DenseLayer), built.description
    assert (layer.pre_name, layer.post_name) == (built.pre_name, built.post_name)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=built.input_shape).astype(np.float32)
    session = model.session((layer.pre_name,))
    n = layer.n_inputs
    # Row 0 is x; row j+1 moves input element j by 1: a neuron moves iff j is in its receptive field.
    batch = np.repeat(x.reshape(1, n), n + 1, axis=0)
    batch[np.arange(1, n + 1), np.arange(n)] += 1.0
    _, pre = session.run(None, {model.input_name: batch.reshape((n + 1, *built.input_shape[1:]))})
    pre = pre.reshape(n + 1, -1).astype(np.float64)
    _assert_close(layer.preactivations(x), pre[0])
    moved = np.abs(pre[1:] - pre[0]) > 1e-4 * max(1.0, np.abs(pre).max())  # (inputs, neurons)
    for i in range(layer.n_neurons):
        terms = layer.neuron(i)
        assert set(terms.field.tolist()) == set(np.flatnonzero(moved[:, i]).tolist()), (built.description, i)
        np.testing.assert_allclose(terms.coefficients, pre[1 + terms.field, i] - pre[0, i], rtol=1e-3, atol=1e-4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(built=st.one_of(dense_models(), conv_models()))
def test_batched_inputs_equal_onnxruntime_batch(built, tmp_path):
    model = _load(built.proto, tmp_path)
    layer = first_layer(model)
    xs = np.random.default_rng(0).normal(size=(4, *built.input_shape[1:])).astype(np.float32)
    (pre,) = model.session((layer.pre_name,)).run([layer.pre_name], {model.input_name: xs})
    _assert_close(layer.preactivations(xs), pre.reshape(4, -1))
