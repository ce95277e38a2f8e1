"""Normalisations: BatchNormalization at inference (a constant per-channel scale), and
LayerNormalization / InstanceNormalization, whose mean and variance depend on the input."""

from __future__ import annotations

import numpy as np

from smugir.convolution import node_attributes
from smugir.errors import UnsupportedOpError


def batch_norm(b, node, g, need):
    scale, var = b.constant(node.input[1]), b.constant(node.input[4])
    if scale is None or var is None or any(i in need for i in node.input[1:]):
        raise UnsupportedOpError(node.name, "BatchNormalization", "with parameters computed at run time", ["BatchNormalization with constant parameters"])
    eps = float(node_attributes(node).get("epsilon", 1e-5))
    rank = b.rank(node.input[0], node)
    factor = (scale / np.sqrt(var + eps)).reshape((-1,) + (1,) * (rank - 2))
    return {node.input[0]: b.add("Mul", [g, b.const(factor)])}


def _standardised_gradient(b, x, gy, axes, eps):
    """For y = (x - mean) / sqrt(var + eps) over `axes`, given dL/dy = gy: dL/dx and y itself.
    dx = (gy - mean(gy) - y mean(gy y)) / sqrt(var + eps)."""
    mean = b.reduce("ReduceMean", x, axes)
    centred = b.add("Sub", [x, mean])
    inverse = b.add("Reciprocal", [b.add("Sqrt", [b.add("Add", [b.reduce("ReduceMean", b.add("Mul", [centred, centred]), axes), b.const(eps)])])])
    normal = b.add("Mul", [centred, inverse])
    inner = b.add("Sub", [b.add("Sub", [gy, b.reduce("ReduceMean", gy, axes)]), b.add("Mul", [normal, b.reduce("ReduceMean", b.add("Mul", [gy, normal]), axes)])])
    return b.add("Mul", [inner, inverse]), normal


def layer_norm(b, node, g, need):
    """y = scale (x - mean) / sqrt(var + eps) + bias over the axes from `axis` on."""
    attrs = node_attributes(node)
    x = node.input[0]
    rank = b.rank(x, node)
    axes = list(range(int(attrs.get("axis", -1)) % rank, rank))
    scale = node.input[1]
    grad, normal = _standardised_gradient(b, x, b.add("Mul", [g, scale]), axes, float(attrs.get("epsilon", 1e-5)))
    out_shape = b.shape(node.output[0], node)
    out = {x: grad}
    if scale in need:
        out[scale] = b.unbroadcast(b.add("Mul", [g, normal]), out_shape, scale, node)
    if len(node.input) > 2 and node.input[2] in need:
        out[node.input[2]] = b.unbroadcast(g, out_shape, node.input[2], node)
    return out


def instance_norm(b, node, g, need):
    """LayerNorm over each channel's spatial plane, with a per-channel scale (and bias)."""
    x = node.input[0]
    rank = b.rank(x, node)
    if any(i in need for i in node.input[1:]):
        raise UnsupportedOpError(node.name, node.op_type, "with scale or bias computed from the input", [f"{node.op_type} with constant scale and bias"])
    scale = b.add("Reshape", [node.input[1], b.ints([-1] + [1] * (rank - 2))])
    eps = float(node_attributes(node).get("epsilon", 1e-5))
    grad, _ = _standardised_gradient(b, x, b.add("Mul", [g, scale]), list(range(2, rank)), eps)
    return {x: grad}


RULES = {"BatchNormalization": batch_norm, "LayerNormalization": layer_norm, "InstanceNormalization": instance_norm}
