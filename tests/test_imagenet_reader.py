"""Both EfficientNet-Lite0 exports, read as torch wrote them (constant subgraphs, Pad, BatchNormalization, Clip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smugir.attribution import provider_for
from smugir.firstlayer import ConvLayer, first_layer
from smugir.gradients import RULES, gradient_model
from smugir.model import load_model, suffix_model, with_batch_of_one

ROOT = Path(__file__).parent.parent
EXPORTS = {
    "folded": ROOT / "examples" / "imagenet" / "efficientnet_lite0.onnx",
    "bn": ROOT / "tests" / "data" / "imagenet" / "efficientnet_lite0_bn.onnx",
}


@pytest.fixture(scope="module", params=sorted(EXPORTS))
def export(request):
    model = load_model(EXPORTS[request.param])
    return request.param, model, first_layer(model)


def test_constant_subgraphs_are_folded_and_checked(export):
    name, model, _ = export
    ops = {node.op_type for node in model.proto.graph.node}
    assert ops.isdisjoint({"Constant", "ConstantOfShape", "Concat", "Slice", "Shape", "Gather", "Cast"})
    assert model.folding.checked and model.folding.folded_nodes > 100


def test_stem_is_read_with_its_pad_batch_norm_and_relu6(export):
    name, _, layer = export
    assert isinstance(layer, ConvLayer)
    assert layer.activation.label == "Clip(0, 6)"
    assert layer.output_shape == (1, 32, 112, 112)
    assert (layer.pads_begin, layer.pads_end, layer.strides) == ((0, 0), (1, 1), (2, 2))
    assert layer.folded_after == (("BatchNormalization (/_bn0/BatchNormalization)",) if name == "bn" else ())
    assert layer.receptive_field_size() == 27


def test_preactivations_equal_onnxruntime(export):
    _, model, layer = export
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-1, 1, size=model.input_shape), np.ones(model.input_shape)):
        x = x.astype(np.float32)
        _, pre, post = model.run(x, (layer.pre_name, layer.post_name))
        mine = layer.preactivations(x)
        assert np.abs(mine - pre.reshape(-1)).max() <= 1e-5 * np.abs(pre).max()
        assert np.abs(layer.activations(x) - post.reshape(-1)).max() <= 1e-5 * max(1.0, np.abs(post).max())


def test_neuron_terms_reproduce_preactivations_at_the_padded_border(export):
    _, model, layer = export
    x = np.random.default_rng(1).uniform(-1, 1, size=model.input_shape).astype(np.float32)
    pre = layer.preactivations(x)
    flat = x.reshape(-1).astype(np.float64)
    corner = np.ravel_multi_index((5, 111, 111), layer.output_shape[1:])  # reads the bottom-right pad
    for i in (0, 12345, int(corner), layer.n_neurons - 1):
        terms = layer.neuron(i)
        assert terms.coefficients @ flat[terms.field] + terms.constant == pytest.approx(pre[i], rel=1e-9, abs=1e-9)
    assert layer.neuron(int(corner)).field.size == 3 * 2 * 2


def test_whole_network_takes_the_gradient_graph_path(export):
    """Every op after the stem (depthwise Conv, Clip with inputs, Pad, BatchNormalization, Add,
    GlobalAveragePool, Reshape, Gemm) has a gradient rule: no fallback to finite differences."""
    name, model, layer = export
    sub = with_batch_of_one(suffix_model(model.proto, layer.post_name))
    backward = gradient_model(sub, layer.post_name, "logit")
    assert {n.op_type for n in sub.graph.node} <= set(RULES)
    assert len(backward.graph.node) > len(sub.graph.node)


def test_efficientnet_gradients_match_finite_differences():
    model = load_model(EXPORTS["bn"])
    layer = first_layer(model)
    provider = provider_for(model, layer.post_name, "logit")
    assert provider.name == "gradient-graph" and provider.batched
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=model.input_shape).astype(np.float32)
    h = layer.activations(x).reshape(layer.output_shape[1:])
    (value,), (grad,) = provider(h[None], 7)
    # Along the gradient: (f(h + t u) - f(h - t u)) / 2t = |grad| for the unit vector u = grad / |grad|.
    u = grad / np.linalg.norm(grad)
    step = 1e-2
    (up, down), _ = provider(np.stack([h + step * u, h - step * u]), 7)
    assert (up - down) / (2 * step) == pytest.approx(np.linalg.norm(grad), rel=1e-2)
    # A few single entries, the largest, by central differences (float32 logits: a step of 3e-3).
    step = 3e-3
    for i in np.argsort(-np.abs(grad.ravel()))[:3]:
        bump = np.zeros(h.size)
        bump[i] = step
        (up, down), _ = provider(np.stack([h + bump.reshape(h.shape), h - bump.reshape(h.shape)]), 7)
        assert (up - down) / (2 * step) == pytest.approx(grad.ravel()[i], rel=0.1)
    # the gradient graph runs in onnxruntime's optimised session (checked against the plain one):
    # its float32 sums are ordered differently, 1e-5 apart here
    assert value == pytest.approx(float(model.run(x)[0][0, 7]), rel=1e-4)


def test_both_exports_run_in_optimised_batched_sessions(export):
    """The classifier of the metrics and the input gradients of the baselines run onnxruntime's
    optimised graphs (2.5 and 1.2 times faster here), accepted because they agree with the plain
    session on the probe; the classifier's probabilities then equal the plain model's."""
    import onnxruntime as ort

    from smugir.evaluation.classifier import ImageClassifier
    from smugir.gradients import GradientGraph

    _, model, _ = export
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    classify = ImageClassifier(model)
    assert classify.batched and classify._session[0].get_session_options().graph_optimization_level == level
    gradients = GradientGraph(model.proto, model.input_name, "logit")
    assert gradients.batched and gradients.session.get_session_options().graph_optimization_level == level
    images = np.random.default_rng(3).uniform(-1, 1, size=(4, *classify.image_shape))
    plain = np.concatenate([model.run(classify.to_input(image))[0] for image in images])
    expected = np.exp(plain - plain.max(axis=1, keepdims=True))
    np.testing.assert_allclose(classify(images), expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-7)
