"""The activation after the first layer: one op (a rule each), or written out in several ops.

Exporters write SiLU as `x * Sigmoid(x)`, HardSwish at opset 13 as `x * HardSigmoid(x, 1/6, 0.5)`,
GELU as `0.5 * x * (1 + Erf(x / sqrt 2))`. Such a region (elementwise ops on the pre-activation and
scalar constants, read outside only through its last tensor) is run on onnxruntime over a grid of
values and named by the known activation it equals there. Anything else is no activation: the
layer's neurons are then its pre-activations and the rest of the network starts from them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from smugir.activations import ACTIVATIONS, Activation
from smugir.convolution import node_attributes
from smugir.errors import UnsupportedModelError
from smugir.model import make_session, run_session
from smugir.reader.graph import ReaderGraph, node_label, text

ActivationRule = Callable[[ReaderGraph, onnx.NodeProto], Activation]


def _clip(graph: ReaderGraph, node: onnx.NodeProto) -> Activation:
    """Clip's min/max: attributes before opset 11, optional (possibly empty) inputs from opset 11."""
    if graph.opset < 11:
        attrs = node_attributes(node)
        low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        bounds = [graph.optional_constant(node, k, role) for k, role in ((1, "minimum"), (2, "maximum"))]
        for value, role in zip(bounds, ("minimum", "maximum")):
            if value is not None and np.size(value) != 1:
                raise UnsupportedModelError(f"Clip node {node_label(node)!r} has a {role} of shape {list(np.shape(value))}; ONNX needs a scalar")
        low = -np.inf if bounds[0] is None else np.ravel(bounds[0])[0]
        high = np.inf if bounds[1] is None else np.ravel(bounds[1])[0]
    for value, role in ((low, "minimum"), (high, "maximum")):
        if np.isnan(float(value)):
            raise UnsupportedModelError(f"Clip node {node_label(node)!r} has a NaN {role}; its output is not defined by a number smugir can bound")
    return Activation("Clip", (float(low), float(high)))


def _gelu(graph: ReaderGraph, node: onnx.NodeProto) -> Activation:
    approximate = text(node_attributes(node).get("approximate", "none"))
    return Activation("GELUTanh" if approximate == "tanh" else "GELU")


ACTIVATION_RULES: dict[str, ActivationRule] = {
    "Relu": lambda graph, node: Activation("Relu"),
    "LeakyRelu": lambda graph, node: Activation("LeakyRelu", (float(node_attributes(node).get("alpha", 0.01)),)),
    "Sigmoid": lambda graph, node: Activation("Sigmoid"),
    "Tanh": lambda graph, node: Activation("Tanh"),
    "Clip": _clip,
    "HardSigmoid": lambda graph, node: Activation(
        "HardSigmoid", (float(node_attributes(node).get("alpha", 0.2)), float(node_attributes(node).get("beta", 0.5)))
    ),
    "HardSwish": lambda graph, node: Activation("HardSwish"),
    "Gelu": _gelu,
}

# Written out: the ops a region may hold, the kinds it may equal, where they are compared.
REGION_OPS = ("Add", "Sub", "Mul", "Div", "Erf", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Relu", "Clip",
              "Pow", "Sqrt", "Neg", "Abs", "Exp", "Min", "Max", "Identity")
MAX_REGION = 12  # nodes
WRITTEN_OUT = ("SiLU", "HardSwish", "GELU", "GELUTanh")
PROBE = np.unique(np.r_[np.linspace(-12.0, 12.0, 4801), -3.0, 3.0, -1e-3, 1e-3]).astype(np.float32)
PROBE_TOLERANCE = 2e-6  # of max(1, |value|): float32 evaluation of the region, and erf's float32 error


def read_activation(graph: ReaderGraph, pre: str) -> tuple[Activation, str]:
    """(the activation, its output tensor); Activation("none") and `pre` itself when there is none."""
    node = graph.sole_consumer(pre)
    if node is not None and node.op_type in ACTIVATION_RULES:
        return ACTIVATION_RULES[node.op_type](graph, node), node.output[0]
    found = _written_out(graph, pre)
    return found if found is not None else (Activation("none"), pre)


def _scalar(graph: ReaderGraph, name: str) -> bool:
    return name in graph.constants and np.size(graph.constants[name]) == 1


def _region(graph: ReaderGraph, pre: str) -> list[onnx.NodeProto]:
    """Elementwise nodes computed from `pre` and scalar constants only, in graph order."""
    nodes, tensors = [], {pre}
    for node in graph.nodes:
        inputs = [n for n in node.input if n]
        if len(nodes) >= MAX_REGION:
            break
        if node.op_type in REGION_OPS and len(node.output) == 1 and any(n in tensors for n in inputs) \
                and all(n in tensors or _scalar(graph, n) for n in inputs):
            nodes.append(node)
            tensors.add(node.output[0])
    return nodes


def _written_out(graph: ReaderGraph, pre: str) -> tuple[Activation, str] | None:
    if pre in graph.outputs or graph.types.get(pre, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
        return None
    region = _region(graph, pre)
    for size in range(len(region), 1, -1):  # the largest region read outside only through its last tensor
        nodes = region[:size]
        out, inside = nodes[-1].output[0], {id(n) for n in nodes}
        tensors = {pre, *(n.output[0] for n in nodes)}
        read_outside = {t for t in tensors if t in graph.outputs or any(id(c) not in inside for c in graph.consumers.get(t, []))}
        if read_outside != {out}:  # pre or a middle tensor read elsewhere: not one activation
            continue
        kind = _equal_kind(graph, nodes, pre, out)
        if kind is not None:
            return Activation(kind), out
    return None


def _equal_kind(graph: ReaderGraph, nodes: list[onnx.NodeProto], pre: str, out: str) -> str | None:
    """The kind of `WRITTEN_OUT` the region computes on onnxruntime over `PROBE`, if any."""
    constants = sorted({n for node in nodes for n in node.input if n in graph.constants})
    model = helper.make_model(
        helper.make_graph(
            list(nodes), "activation",
            [helper.make_tensor_value_info(pre, onnx.TensorProto.FLOAT, [PROBE.size])],
            [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
            [numpy_helper.from_array(np.asarray(graph.constants[n]), n) for n in constants],
        ),
        opset_imports=[helper.make_opsetid("", graph.opset)],
    )
    model.ir_version = graph.proto.ir_version
    try:
        (values,) = run_session(make_session(model), [out], {pre: PROBE})
    except UnsupportedModelError:
        return None
    values = np.asarray(values, dtype=np.float64)
    if values.shape != PROBE.shape:
        return None
    for kind in WRITTEN_OUT:
        expected = ACTIVATIONS[kind].function(PROBE.astype(np.float64))
        if np.all(np.abs(values - expected) <= PROBE_TOLERANCE * np.maximum(1.0, np.abs(expected))):
            return kind
    return None
