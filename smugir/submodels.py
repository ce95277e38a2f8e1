"""Sub-models of a loaded graph: tensors exposed as outputs, the suffix from a tensor to the output, batch 1."""

from __future__ import annotations

import onnx
import onnx.shape_inference
import onnx.utils

from smugir.errors import UnsupportedModelError


def expose_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of the model that also outputs the named intermediate tensors."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {v.name: v for v in exposed.graph.value_info}
    present = {o.name for o in exposed.graph.output}
    produced = {out for node in exposed.graph.node for out in node.output}
    for name in names:
        if name in present:
            continue
        if name not in produced:
            raise UnsupportedModelError(f"tensor {name!r} is not produced by any node of the model")
        value = onnx.ValueInfoProto()
        if name in known:
            value.CopyFrom(known[name])
        else:
            value.name = name
        exposed.graph.output.append(value)
        present.add(name)
    return exposed


def suffix_model(proto: onnx.ModelProto, from_tensor: str, to_tensor: str | None = None) -> onnx.ModelProto:
    """The part of the graph from `from_tensor` to the output, as a model whose only input is that tensor.

    Raises `UnsupportedModelError` naming the node that also reads a graph input (e.g. a skip
    connection from the raw input), because then the output is not a function of that tensor alone.
    """
    to_tensor = to_tensor or proto.graph.output[0].name
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = {v.name for v in proto.graph.input} - initializers
    producers = {out: node for node in proto.graph.node for out in node.output}
    stack, seen, reads_from = [to_tensor], set(), False
    while stack:
        name = stack.pop()
        if name in seen or name in initializers:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is None:
            continue
        for tensor in node.input:
            if tensor == from_tensor:
                reads_from = True
            elif tensor in graph_inputs:
                raise UnsupportedModelError(
                    f"the output {to_tensor!r} is not a function of {from_tensor!r} alone: node {node.name!r} "
                    f"({node.op_type}) also reads the graph input {tensor!r}; no suffix model exists"
                )
            elif tensor:
                stack.append(tensor)
    if not reads_from:
        raise UnsupportedModelError(f"the output {to_tensor!r} does not depend on {from_tensor!r}")
    return onnx.utils.Extractor(proto).extract_model([from_tensor], [to_tensor])


def with_batch_of_one(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose symbolic input/output dims are 1, so shape inference knows every shape."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for value in list(fixed.graph.input) + list(fixed.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    del fixed.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(fixed)
