"""What exporters emit around the first layer, on random small models, against onnxruntime.

Each model is drawn by `smugir.testing.exporter_models`: constant subgraphs computing a Pad's pads (the
torch "same"-padding pattern, with Shape/Gather of the data), constant-mode Pad before or after a
normalisation with zero and non-zero values, BatchNormalization after the linear op, and each
activation in the opset form exporters write. The reader's pre-activations and activations must
equal onnxruntime's on the ORIGINAL file to float32 precision.
"""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smugir.firstlayer import CONSTANT_ELEMENT, ConvLayer, first_layer
from smugir.model import expose_outputs, load_model, make_session
from smugir.testing import exporter_models


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(built=exporter_models(), seed=st.integers(0, 2**16))
def test_first_layer_equals_onnxruntime_on_the_original_graph(built, seed, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(built.proto, path)
    model = load_model(path)
    layer = first_layer(model)
    assert (layer.pre_name, layer.post_name) == (built.pre_name, built.post_name), built.description
    assert layer.activation.label == built.activation_label
    assert any("BatchNormalization" in step for step in layer.folded_after) == built.batch_norm
    if built.pad_is_conv_padding:
        assert isinstance(layer, ConvLayer) and layer.affine.index.min() != CONSTANT_ELEMENT
    names = list(dict.fromkeys([built.pre_name, built.post_name]))
    original = make_session(expose_outputs(built.proto, names))
    rng = np.random.default_rng(seed)
    batch = 3 if model.batch_dynamic else 1
    x = (rng.normal(size=(batch, *built.input_shape[1:])) * 2).astype(np.float32)
    _, *values = original.run(None, {"x": x})
    pre, post = values[0], values[-1]
    pre, post = pre.reshape(batch, -1), post.reshape(batch, -1)
    mine_pre = layer.preactivations(x if batch > 1 else x[0])
    mine_post = layer.activations(x if batch > 1 else x[0])
    scale = max(1.0, float(np.abs(pre).max()))
    np.testing.assert_allclose(np.reshape(mine_pre, pre.shape), pre, rtol=1e-5, atol=1e-5 * scale, err_msg=built.description)
    np.testing.assert_allclose(np.reshape(mine_post, post.shape), post, rtol=1e-5, atol=1e-5 * scale, err_msg=built.description)
    flat = x[0].reshape(-1).astype(np.float64)
    for i in rng.choice(layer.n_neurons, size=min(6, layer.n_neurons), replace=False):
        terms = layer.neuron(int(i))
        value = terms.coefficients @ flat[terms.field] + terms.constant
        assert abs(value - pre[0, i]) <= 1e-5 * scale, (built.description, i)
    # the folded model every later step runs gives the original's outputs, batched too
    np.testing.assert_allclose(model.session().run(None, {"x": x})[0], original.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
