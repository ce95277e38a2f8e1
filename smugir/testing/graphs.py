"""Small ONNX graphs built with onnx.helper: the pieces the model strategies draw from.

`GraphBuilder` names every node and constant so they never collide; `Built` is what a model
strategy returns: the in-memory model, an input for it, and the tensors the first-layer reader
must find (so a test can compare smugir's reading with onnxruntime's values of those tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
N_CLASSES = 3


@dataclass
class Built:
    """A random classifier: `proto` (checked by onnx), a sample input `x` of `input_shape` (batch 1),
    the first linear op's output `pre_name` and its activation's output `post_name`."""

    proto: onnx.ModelProto
    input_shape: tuple[int, ...]  # with batch 1
    pre_name: str
    post_name: str
    description: str
    x: np.ndarray  # float32, input_shape

    @property
    def input_name(self) -> str:
        return self.proto.graph.input[0].name


class GraphBuilder:
    """Accumulates nodes and initializers; names are generated so they never collide."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def model(self, input_name: str, input_shape: list, output: str, n_out: int, opset: int = OPSET,
              batch: int | str = "N") -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "random",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, n_out])],
            self.initializers,
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        proto.ir_version = 8
        onnx.checker.check_model(proto)
        return proto


def random_weights(rng: np.random.Generator, size) -> np.ndarray:
    """Random weights bounded away from 0, so every tap measurably moves its neuron in float32."""
    return (rng.choice([-1.0, 1.0], size=size) * rng.uniform(0.2, 1.5, size=size)).astype(np.float32)


def normalise(b: GraphBuilder, tensor: str, channels: int, channel_axis: int, rank: int) -> str:
    """x -> (x - mean) / std with per-channel constants shaped to broadcast on `channel_axis`."""
    shape = [1] * rank
    shape[channel_axis] = channels
    mean = b.rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
    std = b.rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    return b.node("Div", [b.node("Sub", [tensor, b.const(mean)]), b.const(std)])


def suffix_network(b: GraphBuilder, post: str, features: int, flatten: bool = True, hidden: int = 0) -> tuple[str, int]:
    """The rest of the classifier after the first layer's activation: [Flatten] -> [Gemm -> Relu] -> Gemm."""
    t = b.node("Flatten", [post], axis=1) if flatten else post
    if hidden:
        t = b.node("Relu", [b.node("Gemm", [t, b.const(b.rng.normal(size=(features, hidden)).astype(np.float32))])])
        features = hidden
    w = b.rng.normal(size=(features, N_CLASSES)).astype(np.float32)
    return b.node("Gemm", [t, b.const(w), b.const(np.zeros(N_CLASSES, np.float32))]), N_CLASSES


def sample_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)
