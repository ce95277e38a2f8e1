"""Pooling: max pools route the gradient to the element the maximum came from, average pools
spread it over their window (a depthwise ConvTranspose), global pools over the whole plane."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from smugir.convolution import node_attributes
from smugir.gradients.rules.linear import conv


def max_pool(b, node, g, need):
    """Route each output gradient to the input element the max came from (MaxPool's indices)."""
    attrs = {k: v for k, v in node_attributes(node).items() if k != "storage_order"}
    values, indices = b.add_many("MaxPool", [node.input[0]], 2, **attrs)
    minus_one = b.ints([-1])
    zeros = b.add("Reshape", [b.zeros_like(node.input[0]), minus_one])
    scattered = b.add("ScatterElements", [zeros, b.add("Reshape", [indices, minus_one]), b.add("Reshape", [g, minus_one])],
                      axis=0, reduction="add")
    return {node.input[0]: b.add("Reshape", [scattered, b.add("Shape", [node.input[0]])])}


def average_pool(b, node, g, need):
    """Each input element receives g / (window size) from every window covering it: a depthwise
    Conv's transpose. Where padding is not counted, g is first divided by the share of each window
    inside the input (the same pool of ones, padding counted)."""
    attrs = node_attributes(node)
    channels = b.shape(node.input[0], node)[1]
    kernel = list(attrs["kernel_shape"])
    if attrs.get("ceil_mode", 0):
        raise _ceil_error(node)
    if not attrs.get("count_include_pad", 0):
        ones = numpy_helper.from_array(np.ones(1, b.np_dtype))
        inside = b.add("AveragePool", [b.add("ConstantOfShape", [b.add("Shape", [node.input[0]])], value=ones)],
                       **{**attrs, "count_include_pad": 1})
        g = b.add("Div", [g, inside])
    weight = b.const(np.full((channels, 1, *kernel), 1.0 / np.prod(kernel)))
    b.facts.shapes[weight] = (channels, 1, *kernel)
    geometry = {k: v for k, v in attrs.items() if k in ("kernel_shape", "strides", "pads", "auto_pad", "dilations")}
    depthwise = helper.make_node("Conv", [node.input[0], weight], list(node.output), name=node.name, group=channels, **geometry)
    return conv(b, depthwise, g, {node.input[0]})


def _ceil_error(node):
    from smugir.errors import UnsupportedOpError

    return UnsupportedOpError(node.name, node.op_type, "with ceil_mode", [f"{node.op_type} with ceil_mode=0"])


def global_average_pool(b, node, g, need):
    area = float(np.prod(b.shape(node.input[0], node)[2:]))
    spread = b.add("Expand", [g, b.add("Shape", [node.input[0]])])
    return {node.input[0]: b.add("Div", [spread, b.const(area)])}


def global_max_pool(b, node, g, need):
    """The gradient goes to the plane's maximum (to each, on ties)."""
    x = node.input[0]
    return {x: b.add("Where", [b.add("Equal", [x, node.output[0]]), g, b.const(0.0)])}


RULES = {"MaxPool": max_pool, "AveragePool": average_pool, "GlobalAveragePool": global_average_pool, "GlobalMaxPool": global_max_pool}
