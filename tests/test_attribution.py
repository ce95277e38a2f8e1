"""Integrated Gradients on the real models: converged by default, and a top-k set that stays put."""

from __future__ import annotations

import numpy as np
import pytest

from smugir.attribution import ABSOLUTE_FLOOR, MAX_STEPS, TOLERANCE, first_layer_attribution, top_k
from smugir.firstlayer import first_layer
from smugir.model import load_model

SAMPLES_PER_MODEL = 4


def _converged(real_model):
    """(name, model, layer, x, label, default IG result) for the first samples of a real model."""
    name, path, samples = real_model
    model = load_model(path)
    layer = first_layer(model)
    for x in samples[:SAMPLES_PER_MODEL]:
        x = x.reshape(model.input_shape)
        label = int(np.argmax(model.run(x)[0]))
        yield name, model, layer, x, label, first_layer_attribution(model, layer, x, label)


def test_default_ig_is_complete_within_one_percent(real_model):
    for name, _, _, _, _, result in _converged(real_model):
        assert result.converged, (name, result.describe())
        gap = abs(result.scores.sum() - (result.f_h - result.f_0))
        assert result.completeness_error <= TOLERANCE or gap <= ABSOLUTE_FLOOR, (name, result.describe())
        assert result.steps <= MAX_STEPS


def test_top_k_is_stable_when_the_steps_double(real_model):
    for name, model, layer, x, label, converged in _converged(real_model):
        activations = layer.activations(x)
        doubled = first_layer_attribution(model, layer, x, label, steps=2 * converged.steps)
        a = set(top_k(converged.scores, activations, 32).tolist())
        b = set(top_k(doubled.scores, activations, 32).tolist())
        assert len(a & b) >= 0.9 * max(len(a), len(b)), (name, len(a & b), len(a))


@pytest.mark.parametrize("baseline", ["black", "white", "black+white"])
def test_input_ig_agrees_with_pairs_integrated_gradients(baseline):
    """smugir's input-space IG (trapezoid, converged) against PAIR's (Riemann, many steps): two
    independent implementations on cifar10_small, black = 0 and white = 1 as the model sees pixels."""
    from conftest import REAL_MODELS

    from smugir.attribution import input_attribution
    from smugir.evaluation.baselines import saliency_map, setting_for

    path, samples = REAL_MODELS["cifar10_small"]
    model = load_model(path)
    x = samples()[0].reshape(model.input_shape)
    label = int(np.argmax(model.run(x)[0]))
    ours = input_attribution(model, x, label, baseline, steps=512, target="logit").reshape(-1)
    method = {"black": "ig", "white": "ig_white", "black+white": "ig_black_white"}[baseline]
    theirs = saliency_map(method, model, x, label, setting_for(model)).reshape(-1)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert np.abs(ours).sum() == pytest.approx(np.abs(theirs).sum(), rel=0.1)
