"""Reductions over constant axes (attribute, or input from opset 18): the output gradient is
spread back over the reduced axes, weighted by each reduction's own derivative."""

from __future__ import annotations

import numpy as np

from smugir.convolution import node_attributes


def _spread(b, node, g):
    """(g with the reduced axes back as size 1, the output with them too, the reduced axes), or None for a no-op reduction."""
    attrs = node_attributes(node)
    x = node.input[0]
    rank = b.rank(x, node)
    axes = b.axes(node)
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    axes = sorted(a % rank for a in axes)
    y = node.output[0]
    if not attrs.get("keepdims", 1):
        g = b.add("Unsqueeze", [g, b.ints(axes)])
        y = b.add("Unsqueeze", [y, b.ints(axes)])
    return g, y, axes


def reduce(b, node, g, need):
    spread = _spread(b, node, g)
    if spread is None:
        return {node.input[0]: g}
    g, y, axes = spread
    x = node.input[0]
    shape = b.shape(x, node)
    if node.op_type == "ReduceSum":
        grad = b.add("Expand", [g, b.add("Shape", [x])])
    elif node.op_type == "ReduceMean":
        grad = b.add("Div", [b.add("Expand", [g, b.add("Shape", [x])]), b.const(float(np.prod([shape[a] for a in axes])))])
    elif node.op_type in ("ReduceMax", "ReduceMin"):  # to the extreme element (to each, on ties)
        grad = b.add("Where", [b.add("Equal", [x, y]), g, b.const(0.0)])
    elif node.op_type == "ReduceSumSquare":
        grad = b.add("Mul", [g, b.add("Mul", [x, b.const(2.0)])])
    elif node.op_type == "ReduceL1":
        grad = b.add("Mul", [g, b.add("Sign", [x])])
    elif node.op_type == "ReduceL2":  # x / |x|, 0 where the norm is 0
        safe = b.add("Where", [b.add("Equal", [y, b.const(0.0)]), b.const(1.0), y])
        grad = b.add("Mul", [g, b.add("Div", [x, safe])])
    else:  # ReduceLogSumExp: softmax over the reduced axes
        grad = b.add("Mul", [g, b.add("Exp", [b.add("Sub", [x, y])])])
    return {x: grad}


RULES = {op: reduce for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1", "ReduceL2",
                               "ReduceLogSumExp")}
