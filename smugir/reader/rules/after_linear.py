"""After the linear op: per-channel affine ops folded into its weight and bias (exactly, in float64).

A Keras or tf2onnx export puts a layout op between the Conv and its bias (Conv -> Transpose to NHWC
-> Cast -> Add(bias) -> Cast -> Relu). The walk follows such layout ops tentatively, tracking which
neuron each element of the tensor is (`order`), and keeps them only when a bias, a scale or an
activation follows: the layer's neurons are then numbered as that tensor lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx

from smugir.affine import InputAffine
from smugir.convolution import node_attributes
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import ReaderGraph, node_label, short
from smugir.reader.rules.layout import flatten, identity, reshape, squeeze_unsqueeze, transpose
from smugir.reader.step import Step

# Ops that only move neurons around; a Cast keeps float32 values when it casts to float32 or float64.
LAYOUT_RULES = {"Identity": identity, "Dropout": identity, "Flatten": flatten, "Reshape": reshape,
                "Squeeze": squeeze_unsqueeze, "Unsqueeze": squeeze_unsqueeze, "Transpose": transpose, "Cast": identity}
WIDE_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


@dataclass(frozen=True)
class Linear:
    """The layer so far: weight rows and bias per output channel; `order` numbers the current tensor's neurons."""

    weight: np.ndarray
    bias: np.ndarray
    order: np.ndarray  # the current tensor's shape: the neuron index of each element
    channel_of: np.ndarray  # (n_neurons,) the output channel of each neuron (its weight row)

    def per_channel(self, value: np.ndarray) -> np.ndarray | None:
        """The constant as one value per output channel, or None if it varies otherwise or reshapes the tensor."""
        value = np.asarray(value, dtype=np.float64)
        shape = self.order.shape
        try:
            if np.broadcast_shapes(value.shape, shape) != shape:
                return None
        except ValueError:
            return None
        values = np.broadcast_to(value, shape).reshape(-1)
        channels = self.channel_of[self.order.reshape(-1)]
        per = np.zeros(self.weight.shape[0])
        per[channels] = values
        return per if np.array_equal(per[channels], values) else None

    def scaled(self, factor: np.ndarray, shift: np.ndarray) -> "Linear":
        """factor * pre + shift, per channel."""
        weight = self.weight * factor.reshape((-1,) + (1,) * (self.weight.ndim - 1))
        return Linear(weight, self.bias * factor + shift, self.order, self.channel_of)


AfterLinearRule = Callable[[ReaderGraph, onnx.NodeProto, str, Linear], "tuple[Linear, str] | None"]


def _arithmetic(graph: ReaderGraph, node: onnx.NodeProto, pre: str, layer: Linear) -> tuple[Linear, str] | None:
    """pre + c, pre - c, c - pre, pre * c, pre / c with c one constant per output channel."""
    if len(node.input) != 2 or node.input[0] == node.input[1]:
        return None
    other = node.input[1] if node.input[0] == pre else node.input[0]
    if other not in graph.constants:
        return None
    c = layer.per_channel(graph.constants[other])
    if c is None:
        return None
    op, first, label = node.op_type, node.input[0] == pre, short(graph.constants[other])
    ones, zeros = np.ones_like(c), np.zeros_like(c)
    if op == "Add":
        return layer.scaled(ones, c), f"Add {label}"
    if op == "Sub":
        return (layer.scaled(ones, -c), "Sub") if first else (layer.scaled(-ones, c), "Sub (from a constant)")
    if op == "Mul":
        return layer.scaled(c, zeros), f"Mul {label}"
    if op == "Div" and first and np.all(c != 0):
        return layer.scaled(1.0 / c, zeros), f"Div {label}"
    return None


def _batch_norm(graph: ReaderGraph, node: onnx.NodeProto, pre: str, layer: Linear) -> tuple[Linear, str] | None:
    """Inference BatchNormalization: y = (pre - mean) / sqrt(var + eps) * scale + B, per channel (axis 1)."""
    attrs = node_attributes(node)
    shape = layer.order.shape
    if node.input[0] != pre or attrs.get("training_mode", 0) or any(node.output[1:]) or len(shape) < 2:
        return None
    if not all(name in graph.constants for name in node.input[1:5]):
        return None
    scale, b, mean, var = (np.ravel(graph.constants[n]).astype(np.float64) for n in node.input[1:5])
    if not all(v.size == shape[1] for v in (scale, b, mean, var)):
        return None
    on_axis = (-1,) + (1,) * (len(shape) - 2)
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    factor_c, shift_c = layer.per_channel(factor.reshape(on_axis)), layer.per_channel((b - mean * factor).reshape(on_axis))
    if factor_c is None or shift_c is None:
        return None
    return layer.scaled(factor_c, shift_c), "BatchNormalization"


AFTER_LINEAR_RULES: dict[str, AfterLinearRule] = {
    "Add": _arithmetic,
    "Sub": _arithmetic,
    "Mul": _arithmetic,
    "Div": _arithmetic,
    "BatchNormalization": _batch_norm,
}


def relayout(graph: ReaderGraph, node: onnx.NodeProto, tensor: str, layer: Linear) -> Linear | None:
    """The layer seen through a layout op (None when the op is not one, or drops the batch axis)."""
    rule = LAYOUT_RULES.get(node.op_type)
    if rule is None or (node.op_type == "Cast" and node_attributes(node).get("to") not in WIDE_FLOATS):
        return None
    if node.op_type == "Dropout" and any(node.output[1:]):
        return None
    order = layer.order
    try:
        (moved,), _ = rule(Step(node, graph, {tensor: InputAffine(order, np.zeros(order.shape), np.zeros(order.shape))}, 0, 0))
    except UnsupportedModelError:  # not a layout smugir follows (a run-time shape, a reshape that cannot be): stop here
        return None
    if not moved.shape or moved.shape[0] != 1:
        return None
    return Linear(layer.weight, layer.bias, moved.index, layer.channel_of)


def fold_after_linear(graph: ReaderGraph, linear: onnx.NodeProto, layer: Linear,
                      is_activation: Callable[[str], bool]) -> tuple[Linear, str, tuple[str, ...]]:
    """Fold the per-channel ops after the linear op, through layout ops that a fold or an activation follows.

    Returns the layer, the pre-activation tensor (the last op kept) and what was folded."""
    pre, after = linear.output[0], []
    tensor, current, moves = pre, layer, []
    while (node := graph.sole_consumer(tensor)) is not None:
        moved = relayout(graph, node, tensor, current)
        if moved is not None:
            tensor, current = node.output[0], moved
            moves.append(f"{node.op_type} ({node_label(node)})")
            continue
        rule = AFTER_LINEAR_RULES.get(node.op_type)
        folded = rule(graph, node, tensor, current) if rule is not None else None
        if folded is None:
            break
        current, label = folded
        after.extend([*moves, f"{label} ({node_label(node)})"])
        tensor = pre = node.output[0]
        layer, moves = current, []
    if moves and is_activation(tensor):  # layout ops right before the activation: keep them
        pre, layer, after = tensor, current, [*after, *moves]
    return layer, pre, tuple(after)
