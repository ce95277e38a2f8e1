"""Shape inference and opset conversion with the weights set aside give what onnx gives with them."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.shape_inference
import onnx.version_converter
from onnx import TensorProto, helper, numpy_helper

from smugir.weightless import LIGHT_ELEMENTS, convert_version, infer_shapes, set_aside


def conv_net(opset: int = 13) -> onnx.ModelProto:
    """Conv (heavy weight) -> Relu -> Reshape to a target held in a small int64 initializer."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(16, 8, 3, 3)).astype(np.float32), "w")  # 1152 > LIGHT_ELEMENTS
    bias = numpy_helper.from_array(np.zeros(16, np.float32), "b")
    target = numpy_helper.from_array(np.array([1, -1], np.int64), "target")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "target"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, bias, target])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_only_large_float_initializers_are_set_aside_and_the_model_is_untouched():
    model = conv_net()
    before = model.SerializeToString()
    light, heavy = set_aside(model)
    assert [t.name for t in heavy] == ["w"] and LIGHT_ELEMENTS < 16 * 8 * 9
    assert sorted(t.name for t in light.graph.initializer) == ["b", "target"]
    assert [v.name for v in light.graph.input] == ["x", "w"]
    assert model.SerializeToString() == before


def test_inferred_shapes_and_converted_model_equal_onnx_own():
    model = conv_net()
    ours, theirs = infer_shapes(model, data_prop=True), onnx.shape_inference.infer_shapes(model, data_prop=True)
    assert {v.name: v.type for v in ours.graph.value_info} == {v.name: v.type for v in theirs.graph.value_info}
    assert ours.graph.output[0].type == theirs.graph.output[0].type
    assert [v.name for v in ours.graph.input] == ["x"]
    converted, reference = convert_version(model, 17), onnx.version_converter.convert_version(model, 17)
    assert converted.opset_import[0].version == 17
    assert [n.SerializeToString() for n in converted.graph.node] == [n.SerializeToString() for n in reference.graph.node]
    assert {t.name: t.SerializeToString() for t in converted.graph.initializer} == {t.name: t.SerializeToString() for t in reference.graph.initializer}
    onnx.checker.check_model(converted)
