"""Softmax and LogSoftmax along one axis (opset 13 semantics; older models are converted first)."""

from __future__ import annotations

from smugir.convolution import node_attributes


def softmax(b, node, g, need):
    axis = int(node_attributes(node).get("axis", -1))
    y = node.output[0]
    dot = b.add("ReduceSum", [b.add("Mul", [g, y]), b.ints([axis])], keepdims=1)
    return {node.input[0]: b.add("Mul", [y, b.add("Sub", [g, dot])])}


def log_softmax(b, node, g, need):
    axis = int(node_attributes(node).get("axis", -1))
    total = b.add("ReduceSum", [g, b.ints([axis])], keepdims=1)
    return {node.input[0]: b.add("Sub", [g, b.add("Mul", [b.add("Exp", [node.output[0]]), total])])}


RULES = {"Softmax": softmax, "LogSoftmax": log_softmax}
