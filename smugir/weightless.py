"""onnx's shape inference and opset converter run on the graph without its weights.

Both serialise the whole model, weights included, and parse it back: on a full-size ResNet-50
(100 MB) each call took 1-2 s of the gradient graph's build, though neither reads a weight's
values. Here every float initializer of more than LIGHT_ELEMENTS values is set aside as a graph
input of its type and shape while onnx works, and put back after; shapes never depend on a float
tensor's values, and the integer tensors that shapes are computed from (Reshape targets, Slice
bounds, pads) stay in place.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.shape_inference
import onnx.version_converter
from onnx import TensorProto, helper

LIGHT_ELEMENTS = 1024
_FLOATS = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)


def _heavy(tensor: onnx.TensorProto) -> bool:
    return tensor.data_type in _FLOATS and int(np.prod(tensor.dims, dtype=np.int64)) > LIGHT_ELEMENTS


def set_aside(model: onnx.ModelProto, names: list[str] | None = None) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """(a copy of `model` whose heavy initializers (or the named ones) are graph inputs instead,
    those initializers); `model` itself is not changed, and nothing heavy is copied."""
    heavy = [t for t in model.graph.initializer if (_heavy(t) if names is None else t.name in names)]
    if not heavy:
        return model, []
    light = onnx.ModelProto()
    for field, value in model.ListFields():
        if field.name == "graph":
            continue
        if field.is_repeated:
            getattr(light, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(light, field.name).CopyFrom(value)
        else:
            setattr(light, field.name, value)
    graph, names = model.graph, {t.name for t in heavy}
    for field, value in graph.ListFields():
        if field.name == "initializer":
            light.graph.initializer.extend(t for t in value if t.name not in names)
        elif field.is_repeated:
            getattr(light.graph, field.name).extend(value)
        else:
            setattr(light.graph, field.name, value)
    listed = {v.name for v in graph.input}  # before IR 4 initializers are graph inputs too
    light.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in heavy if t.name not in listed)
    return light, heavy


def put_back(light: onnx.ModelProto, heavy: list[onnx.TensorProto]) -> onnx.ModelProto:
    """`light` (as onnx returned it) with the set-aside initializers in place of their inputs."""
    if not heavy:
        return light
    names = {t.name for t in heavy}
    inputs = [v for v in light.graph.input if v.name not in names]
    del light.graph.input[:]
    light.graph.input.extend(inputs)
    light.graph.initializer.extend(heavy)
    return light


def infer_shapes(model: onnx.ModelProto, **options) -> onnx.ModelProto:
    """`onnx.shape_inference.infer_shapes(model, **options)`, the weights set aside."""
    light, heavy = set_aside(model)
    return put_back(onnx.shape_inference.infer_shapes(light, **options), heavy)


def convert_version(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """`onnx.version_converter.convert_version(model, opset)`, the weights set aside."""
    light, heavy = set_aside(model)
    return put_back(onnx.version_converter.convert_version(light, opset), heavy)
