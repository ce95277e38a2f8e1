"""Shape reads of the input for a suffix model: `Shape(x)` rewritten as a function of the first layer.

A dynamic-batch export computes shapes from the data input (`x.view(x.size(0), -1)` is Shape ->
Gather -> Unsqueeze -> Concat -> Reshape; pad arithmetic; ViT's class-token Expand). The suffix
model from the first layer's activations h to the logits has no x, but every such shape is fixed
given the batch N, and N is h's leading dim: `Shape(t)` of a tensor t in front of h becomes
`Concat(Gather(Shape(h), 0), t's per-sample dims)` (a constant when the batch is fixed or not read).
`suffix_model` checks the rewritten suffix against the whole model on onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from smugir.errors import UnsupportedModelError
from smugir.graph_walk import ancestors, descendants

SHAPE_READS = ("Shape", "Size")
PREFIX = "smugir_shape"  # names of the nodes and constants the rewrite adds


def shape_reads_before(proto: onnx.ModelProto, from_tensor: str, to_tensor: str) -> list[onnx.NodeProto]:
    """The Shape/Size nodes the output needs whose operand is not computed from `from_tensor`."""
    initializers = {t.name for t in proto.graph.initializer}
    after = descendants(proto.graph, from_tensor)
    found: list[onnx.NodeProto] = []

    def descend(node: onnx.NodeProto) -> bool:
        if node.op_type in SHAPE_READS and node.input[0] not in after and node.input[0] not in initializers:
            found.append(node)
            return False
        return True

    ancestors(proto.graph, [to_tensor], stop_at=initializers | {from_tensor}, descend=descend)
    return found


def rewrite_shape_reads(proto: onnx.ModelProto, from_tensor: str, reads: list[onnx.NodeProto]) -> tuple[onnx.ModelProto, bool]:
    """A copy of `proto` where each node of `reads` computes its value from `from_tensor`'s shape, and
    whether the batch is read from it (False: `from_tensor`'s leading dim is not the input's batch, so
    the shapes are written for a batch of 1, the suffix's own batch)."""
    dims = _static_dims(proto)
    batch = _batch_param(proto)
    from_dims = dims.get(from_tensor)
    batch_known = batch is not None and from_dims is not None and from_dims[:1] == [batch]
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(proto)
    graph = rewritten.graph
    replaced = {id(node): node for node in reads}
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(proto.graph.node):
        if id(node) not in replaced:
            nodes.append(node)
            continue
        tensor = node.input[0]
        shape = dims.get(tensor)
        if shape is None or any(not isinstance(d, int) for d in shape[1:]) or (shape and not isinstance(shape[0], int) and shape[0] != batch):
            raise UnsupportedModelError(
                f"node {node.name or node.op_type!r} ({node.op_type}) reads the shape of {tensor!r}, computed from the data input "
                f"in front of the first layer, and that shape is not fixed given the batch ({shape}); no suffix model exists"
            )
        nodes.extend(_replacement(node, shape, from_tensor, from_dims if batch_known else None, f"{PREFIX}/{index}", graph))
    del graph.node[:]
    graph.node.extend(_topological(nodes, {t.name for t in graph.initializer} | {v.name for v in graph.input}))
    return rewritten, batch_known


def _replacement(node: onnx.NodeProto, shape: list, from_tensor: str, from_dims: list | None, prefix: str,
                 graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes that compute `node`'s output; `from_dims` is None when the batch is taken as 1."""
    out = node.output[0]
    dynamic = from_dims is not None and not isinstance(shape[0], int) if shape else False
    values = [1 if not isinstance(d, int) else d for d in shape]

    def constant(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), f"{prefix}/{name}"))
        return f"{prefix}/{name}"

    if node.op_type == "Size":
        if not dynamic:
            return [helper.make_node("Identity", [constant("size", np.array(int(np.prod(values))))], [out], name=prefix)]
        if any(not isinstance(d, int) for d in from_dims[1:]):
            raise UnsupportedModelError(f"node {node.name!r} (Size) reads a size smugir cannot write from {from_tensor!r}'s shape")
        return [
            helper.make_node("Size", [from_tensor], [f"{prefix}/from_size"], name=f"{prefix}/from_size"),
            helper.make_node("Mul", [f"{prefix}/from_size", constant("per_sample", np.array(int(np.prod(values[1:]))))],
                             [f"{prefix}/scaled"], name=f"{prefix}/scaled"),
            helper.make_node("Div", [f"{prefix}/scaled", constant("from_per_sample", np.array(int(np.prod(from_dims[1:]))))],
                             [out], name=prefix),
        ]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axes = list(range(len(values)))[slice(attrs.get("start", 0), attrs.get("end", None))]
    if not dynamic or 0 not in axes:
        return [helper.make_node("Identity", [constant("shape", np.array([values[a] for a in axes], dtype=np.int64))], [out], name=prefix)]
    nodes = [
        helper.make_node("Shape", [from_tensor], [f"{prefix}/from_shape"], name=f"{prefix}/from_shape"),
        helper.make_node("Gather", [f"{prefix}/from_shape", constant("zero", np.array([0]))],
                         [f"{prefix}/batch" if len(axes) > 1 else out], name=f"{prefix}/batch", axis=0),
    ]
    if len(axes) > 1:
        rest = constant("rest", np.array([values[a] for a in axes[1:]], dtype=np.int64))
        nodes.append(helper.make_node("Concat", [f"{prefix}/batch", rest], [out], name=prefix, axis=0))
    return nodes


def _static_dims(proto: onnx.ModelProto) -> dict[str, list]:
    """Every tensor's dims as shape inference left them: ints, or the symbol's name ('' if unnamed)."""
    graph = proto.graph
    dims = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            dims[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
    return dims


def _batch_param(proto: onnx.ModelProto) -> str | None:
    """The data input's symbolic leading dim, or None when it is fixed."""
    initializers = {t.name for t in proto.graph.initializer}
    value = next(v for v in proto.graph.input if v.name not in initializers)
    dims = value.type.tensor_type.shape.dim
    return dims[0].dim_param or None if dims and not dims[0].HasField("dim_value") else None


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """`nodes` in an order where each comes after the producers of its inputs (stable otherwise)."""
    available = set(available) | {""}
    ordered, pending = [], list(nodes)
    while pending:
        ready = [n for n in pending if all(t in available for t in n.input)]
        if not ready:  # a cycle or a missing producer: keep the rest as it was, the checker will name it
            return ordered + pending
        ready_ids = {id(n) for n in ready}
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered
