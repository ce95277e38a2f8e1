"""What the op rules ask of the graph: constants, who reads a tensor, element types, names to show."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from smugir.budget import elements, require
from smugir.errors import UnsupportedModelError
from smugir import weights

LINEAR_OPS = ("Gemm", "MatMul", "Conv")
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
LOW_PRECISION = {onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16"}
AFFINE_BYTES = 24  # per element: the int64 index, float64 scale and shift of `InputAffine`


class ReaderGraph:
    """Constant lookup, consumer lists and element types of one (per-sample) graph."""

    def __init__(self, proto: onnx.ModelProto, opset: int):
        graph = proto.graph
        self.proto = proto
        self.opset = opset
        self.nodes = list(graph.node)
        self.constants: dict[str, np.ndarray] = {t.name: weights.array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = constant_node_value(node)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in dict.fromkeys(node.input):
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}
        self.types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}

    def constant(self, name: str, node: onnx.NodeProto, role: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        raise UnsupportedModelError(
            f"node {node_label(node)!r} ({node.op_type}) takes its {role} from {name!r}, which is only known at run "
            "time; smugir needs it to be a constant (initializer, Constant node or a subgraph of constants whose size "
            "is known before it runs)"
        )

    def optional_constant(self, node: onnx.NodeProto, position: int, role: str) -> np.ndarray | None:
        """The constant at an optional input position, or None when the input is absent or empty."""
        if len(node.input) > position and node.input[position]:
            return self.constant(node.input[position], node, role)
        return None

    def sole_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The one node reading `tensor`, if exactly one does and it is not a graph output."""
        consumers = self.consumers.get(tensor, [])
        return consumers[0] if len(consumers) == 1 and tensor not in self.outputs else None


def constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.array(onnx.helper.get_attribute_value(attr))
        if attr.name in ("value_floats", "value_ints"):
            return np.array(list(onnx.helper.get_attribute_value(attr)))
    raise UnsupportedModelError(f"Constant node {node.name!r} has no tensor, float or int value smugir can read")


def node_label(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}->{node.output[0]}"


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def short(constant: np.ndarray) -> str:
    """A constant as `smug inspect` shows it: its values when there are few, else its shape."""
    values = np.asarray(constant, dtype=np.float64)
    if values.size == 1:
        return f"{values.item():.6g}"
    if values.size <= 4:
        return "[" + ", ".join(f"{v:.6g}" for v in values.ravel()) + "]"
    return f"<constant of shape {list(values.shape)}>"


def check_elements(node: onnx.NodeProto, shape: tuple[int, ...]) -> None:
    """The walk keeps three float64/int64 arrays of z's shape: refuse a shape that would not fit the budget."""
    require(f"the first layer's map of the input after node {node_label(node)!r} ({node.op_type}) {list(shape)}",
            AFFINE_BYTES * elements(shape))
