"""Suffix models of graphs that read the input's shape (dynamic batch at opset 17, issue 20 item 2).

The suffix from the first layer's activations to the logits must give the whole model's logits
on onnxruntime at every batch size, with the input's shape read from the activations' shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from smugir.errors import UnsupportedModelError
from smugir.model import expose_outputs, load_model, make_session, suffix_model, with_batch_of_one
from smugir.reader import first_layer

ZOO = Path(__file__).parent / "data" / "zoo"


def _model(channels: int, size: int, start: int | None, end: int | None, use_size: bool, seed: int, opset: int = 17) -> onnx.ModelProto:
    """x (N, C, S, S) -> Conv -> Relu -> h; logits = Gemm(Reshape(h, [Shape(x)[0], -1])), plus a shape read by
    Shape(x, start, end) or Size(x) that scales the logits (so the rewrite of each is needed and checked)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(4, channels, 3, 3)).astype(np.float32)
    features = 4 * (size - 2) ** 2
    fc = rng.normal(size=(features, 3)).astype(np.float32)
    shape_attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["pre"], name="conv"),
        helper.make_node("Relu", ["pre"], ["h"], name="relu"),
        helper.make_node("Shape", ["x"], ["shape_x"], name="shape_x"),
        helper.make_node("Gather", ["shape_x", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["h", "target"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "fc"], ["raw"], name="fc"),
    ]
    if use_size:
        nodes.append(helper.make_node("Size", ["x"], ["count"], name="size_x"))
    else:
        nodes.append(helper.make_node("Shape", ["x"], ["part"], name="shape_part", **shape_attrs))
        nodes.append(helper.make_node("ReduceSum", ["part"], ["count"], name="sum_part", keepdims=0))
    nodes += [
        helper.make_node("Cast", ["count"], ["countf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Log", ["countf"], ["scale"], name="log"),  # Log(0) = -inf would break the check: counts are >= 1
        helper.make_node("Mul", ["raw", "scale"], ["logits"], name="scale_logits"),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 3), size=st.integers(3, 6), start=st.sampled_from([None, 0, 1, -2, -4]),
       end=st.sampled_from([None, 1, 3, -1]), use_size=st.booleans(), seed=st.integers(0, 2**16), batch=st.integers(1, 4))
def test_suffix_of_shape_reads_matches_onnxruntime(tmp_path_factory, channels, size, start, end, use_size, seed, batch) -> None:
    proto = _model(channels, size, start, end, use_size, seed)
    if not use_size and len(range(4)[slice(start, end)]) == 0:
        return  # an empty Shape slice sums to 0 and Log(0) is -inf
    path = tmp_path_factory.mktemp("m") / "dyn.onnx"
    onnx.save(proto, path)
    model = load_model(path)
    layer = first_layer(model)
    suffix = suffix_model(model.proto, layer.post_name)
    assert {v.name for v in suffix.graph.input} == {layer.post_name}
    x = np.random.default_rng(seed + 1).normal(size=(batch, channels, size, size)).astype(np.float32)
    expected, h = make_session(expose_outputs(model.proto, [layer.post_name])).run(["logits", layer.post_name], {"x": x})
    (got,) = make_session(suffix).run(["logits"], {layer.post_name: h})
    np.testing.assert_array_equal(got, expected)
    with_batch_of_one(suffix)  # shape inference knows every shape at batch 1


def test_a_shape_of_the_input_not_fixed_given_the_batch_is_refused(tmp_path: Path) -> None:
    proto = _model(2, 5, None, None, False, 0)
    del proto.graph.value_info[:]
    path = tmp_path / "dyn.onnx"
    onnx.save(proto, path)
    model = load_model(path)
    layer = first_layer(model)
    for value in model.proto.graph.input:  # what a hostile graph could declare: a second symbolic dim
        value.type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(UnsupportedModelError, match="not fixed given the batch"):
        suffix_model(model.proto, layer.post_name)


@pytest.mark.parametrize("name", ["efficientnet_lite1_ts17dyn.onnx", "vit_b_16_ts17dyn.onnx"])
def test_zoo_dynamic_batch_suffix(name: str) -> None:
    model = load_model(ZOO / name)
    layer = first_layer(model)
    suffix = suffix_model(model.proto, layer.post_name)
    x = np.random.default_rng(0).normal(size=(3, *model.input_shape[1:])).astype(np.float32)
    expected, h = make_session(expose_outputs(model.proto, [layer.post_name])).run([model.output_name, layer.post_name],
                                                                                    {model.input_name: x})
    (got,) = make_session(suffix).run([model.output_name], {layer.post_name: h})
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_activations_without_a_known_batch_give_a_batch_one_suffix(tmp_path: Path) -> None:
    path = tmp_path / "dyn.onnx"
    onnx.save(_model(2, 5, None, None, False, 3), path)
    model = load_model(path)
    layer = first_layer(model)
    for value in model.proto.graph.value_info:  # the activations' shape unknown: their leading dim cannot stand for the batch
        if value.name == layer.post_name:
            value.type.tensor_type.ClearField("shape")
    suffix = suffix_model(model.proto, layer.post_name)
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 5)).astype(np.float32)
    expected, h = make_session(expose_outputs(model.proto, [layer.post_name])).run(["logits", layer.post_name], {"x": x})
    np.testing.assert_array_equal(make_session(suffix).run(["logits"], {layer.post_name: h})[0], expected)
