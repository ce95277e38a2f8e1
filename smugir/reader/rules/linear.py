"""The first linear layer itself: Gemm, MatMul (weight and bias) and Conv (kernel, bias, geometry)."""

from __future__ import annotations

import numpy as np
import onnx

from smugir.affine import CONSTANT_ELEMENT, InputAffine
from smugir.budget import require
from smugir.convolution import conv_window, node_attributes
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import ReaderGraph, node_label


def dense_params(node: onnx.NodeProto, graph: ReaderGraph, tensor: str, affine: InputAffine) -> tuple[np.ndarray, np.ndarray]:
    """(W (N, K), b (N,)) of a Gemm or MatMul; a bias Add after a MatMul is folded by AFTER_LINEAR_RULES."""
    shape = affine.shape
    if node.op_type == "Gemm":
        attrs = node_attributes(node)
        if node.input[0] != tensor:
            raise UnsupportedModelError(f"Gemm node {node_label(node)!r} takes the input as its B operand; smugir needs it as A")
        b_mat = graph.constant(node.input[1], node, "weight B").astype(np.float64)
        b_mat = b_mat.T if attrs.get("transB", 0) else b_mat  # (K, N)
        if len(shape) != 2 or (shape[1] if attrs.get("transA", 0) else shape[0]) != 1:
            raise UnsupportedModelError(f"Gemm node {node_label(node)!r} gets an input of shape {list(shape)}; smugir needs one sample (one row)")
        _check_features(node, b_mat.shape[0], shape)
        weight = attrs.get("alpha", 1.0) * b_mat.T
        bias = np.zeros(weight.shape[0])
        c = graph.optional_constant(node, 2, "bias C")
        if c is not None:
            c = c.astype(np.float64)
            if np.broadcast_shapes(c.shape, (1, weight.shape[0])) != (1, weight.shape[0]):
                raise UnsupportedModelError(f"Gemm node {node_label(node)!r} has a bias C of shape {list(c.shape)}; one row of {weight.shape[0]} needs (N,) or (1, N)")
            bias = attrs.get("beta", 1.0) * np.broadcast_to(c, (1, weight.shape[0]))[0]
        return weight, bias
    if node.input[0] != tensor:
        raise UnsupportedModelError(f"MatMul node {node_label(node)!r} takes the input as its right operand; smugir needs it on the left")
    b_mat = graph.constant(node.input[1], node, "weight").astype(np.float64)
    if len(shape) < 2:
        raise UnsupportedModelError(
            f"MatMul node {node_label(node)!r} multiplies a 1-D input {list(shape)}, whose product has no batch axis; "
            "smugir needs one row with a leading batch axis, e.g. an input of shape [1, K]"
        )
    if b_mat.ndim != 2 or int(np.prod(shape[:-1])) != 1:
        raise UnsupportedModelError(
            f"MatMul node {node_label(node)!r} multiplies {list(shape)} by {list(b_mat.shape)}; smugir needs one row times a 2-D weight"
        )
    _check_features(node, b_mat.shape[0], shape)
    return b_mat.T, np.zeros(b_mat.shape[1])


def _check_features(node: onnx.NodeProto, k: int, shape: tuple[int, ...]) -> None:
    if k != int(np.prod(shape)):
        raise UnsupportedModelError(
            f"{node.op_type} node {node_label(node)!r} has a weight for {k} input features but receives {list(shape)}"
        )


def fold_dense(weight: np.ndarray, bias: np.ndarray, affine: InputAffine, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """W_raw[:, index[k]] += W[:, k] * scale[k]; b_raw = b + W @ shift (constant elements add only to b)."""
    index, scale, shift = (a.reshape(-1) for a in (affine.index, affine.scale, affine.shift))
    require(f"the folded first-layer weight ({weight.shape[0]} x {n_inputs}, float64)", 16 * weight.shape[0] * n_inputs)
    folded = np.zeros((weight.shape[0], n_inputs))
    if np.array_equal(index, np.arange(index.size)):
        folded[:, : index.size] = weight * scale
    else:
        reads = index >= 0
        np.add.at(folded.T, index[reads], (weight[:, reads] * scale[reads]).T)
    return folded, bias + weight @ shift


def conv_params(node: onnx.NodeProto, graph: ReaderGraph, affine: InputAffine) -> tuple[np.ndarray, np.ndarray, dict, InputAffine]:
    """(weight, bias, geometry, affine): a zero border of z in front of the Conv becomes its own padding."""
    attrs = node_attributes(node)
    shape = affine.shape
    weight = graph.constant(node.input[1], node, "weight").astype(np.float64)
    nk = weight.ndim - 2
    if nk not in (1, 2) or len(shape) != nk + 2 or shape[0] != 1:
        raise UnsupportedModelError(
            f"Conv node {node_label(node)!r} is {nk}-D on an input of shape {list(shape)}; smugir reads 1-D and 2-D convolutions of one sample"
        )
    group = int(attrs.get("group", 1))
    if shape[1] != weight.shape[1] * group or weight.shape[0] % group:
        raise UnsupportedModelError(f"Conv node {node_label(node)!r}: weight {list(weight.shape)} and group {group} do not fit {shape[1]} input channels")
    window = conv_window(node, weight.shape, shape[2:])
    out_spatial = window.output_spatial(shape[2:])
    if min(out_spatial) < 1:
        raise UnsupportedModelError(f"Conv node {node_label(node)!r} produces an empty output from {list(shape[2:])}")
    affine, extra_begin, extra_end = zero_border_as_padding(affine)
    bias = np.zeros(weight.shape[0])
    conv_bias = graph.optional_constant(node, 2, "bias")
    if conv_bias is not None:
        bias = conv_bias.astype(np.float64)
    geometry = dict(
        output_shape=(1, weight.shape[0], *out_spatial),
        strides=tuple(window.strides),
        dilations=tuple(window.dilations),
        pads_begin=tuple(p + e for p, e in zip(window.pads_begin, extra_begin)),
        pads_end=tuple(p + e for p, e in zip(window.pads_end, extra_end)),
        group=group,
    )
    return weight, bias, geometry, affine


def zero_border_as_padding(affine: InputAffine) -> tuple[InputAffine, list[int], list[int]]:
    """Strip spatial border slabs that are constant 0 in z: a conv pads them itself (exactly the same)."""
    rank = len(affine.shape)
    begin, end = [0] * (rank - 2), [0] * (rank - 2)
    if affine.index.min(initial=0) >= 0:
        return affine, begin, end
    for k, axis in enumerate(range(2, rank)):
        zero = (affine.index == CONSTANT_ELEMENT) & (affine.shift == 0)
        slab = zero.all(axis=tuple(a for a in range(rank) if a != axis))
        size = slab.size
        lead = int(np.argmin(slab)) if not slab.all() else size - 1
        trail = int(np.argmin(slab[::-1])) if not slab.all() else 0
        begin[k], end[k] = lead, trail
        keep = [slice(None)] * rank
        keep[axis] = slice(lead, size - trail)
        affine = affine.layout(lambda a: a[tuple(keep)])
    return affine, begin, end
