"""Shape and indexing ops: reshapes and permutations move the gradient back; selections (Gather,
Slice, Tile, DepthToSpace, ...) add it back where each element came from (`Builder.route`);
Concat / Split exchange roles; Expand sums over the axes it broadcast."""

from __future__ import annotations

import numpy as np

from smugir.convolution import node_attributes


def reshape_back(b, node, g, need):
    return {node.input[0]: b.add("Reshape", [g, b.add("Shape", [node.input[0]])])}


def transpose(b, node, g, need):
    perm = node_attributes(node).get("perm") or list(range(b.rank(node.input[0], node)))[::-1]
    return {node.input[0]: b.add("Transpose", [g], perm=[int(p) for p in np.argsort(perm)])}


def route(b, node, g, need):
    """Gather, GatherElements, GatherND, Tile: with constant or data-dependent indices (those get no gradient)."""
    return {node.input[0]: b.route(node, g)}


def route_float(b, node, g, need):
    """DepthToSpace / SpaceToDepth (channel shuffles): onnxruntime has no int64 kernel, so the indices go through float."""
    return {node.input[0]: b.route(node, g, through_float=True)}


def slice_(b, node, g, need):
    """Unit steps with constant bounds: the gradient padded back with zeros; else routed by index."""
    x = node.input[0]
    params = [b.constant(i) if i else None for i in list(node.input[1:5]) + [""] * (4 - len(node.input[1:5]))]
    starts, ends, axes, steps = params
    shape = b.facts.shape(x)
    given = [bool(i) for i in list(node.input[3:5]) + [""] * (2 - len(node.input[3:5]))]
    if starts is None or ends is None or shape is None or (given[0] and axes is None) or (given[1] and steps is None) \
            or (steps is not None and np.any(steps != 1)):
        return {x: b.route(node, g)}
    rank = len(shape)
    axes = range(len(starts)) if axes is None else [int(a) % rank for a in axes]
    pads = [0] * (2 * rank)
    for axis, start, end in zip(axes, starts, ends):
        size = shape[axis]
        start = int(np.clip(start + size if start < 0 else start, 0, size))
        end = int(np.clip(end + size if end < 0 else end, 0, size))
        pads[axis], pads[rank + axis] = start, size - max(start, end)
    return {x: b.add("Pad", [g, b.ints(pads)])}


def split(b, node, g, need):
    """The outputs' gradients concatenated back (zeros for outputs nothing reads)."""
    axis = int(node_attributes(node).get("axis", 0))
    parts = [b.grads.get(o) or b.zeros_like(o) for o in node.output]
    return {node.input[0]: b.add("Concat", parts, axis=axis)}


def concat(b, node, g, need):
    axis = int(node_attributes(node)["axis"])
    sizes = [b.shape(i, node)[axis] for i in node.input]
    parts = b.add_many("Split", [g, b.ints(sizes)], len(sizes), axis=axis)
    return {i: part for i, part in zip(node.input, parts) if i in need}


def expand(b, node, g, need):
    return {node.input[0]: b.unbroadcast(g, b.shape(node.output[0], node), node.input[0], node)}


def pad(b, node, g, need):
    """Constant mode: the gradient padded by the opposite pads (cropped where x was padded, zeros
    where x was cropped), for constant or run-time pads alike. Reflect / edge / wrap: routed by
    index."""
    mode = node_attributes(node).get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    x, pads = node.input[0], node.input[1]
    axes = list(node.input[3:4])
    if mode == "constant":
        return {x: b.add("Pad", [g, b.add("Neg", [pads]), "", *axes])}
    copy = type(node)()
    copy.CopyFrom(node)
    del copy.input[:]
    copy.input.extend([x, pads, "", *axes] if axes else [x, pads])
    return {x: b.route(copy, g)}


RULES = {
    "Reshape": reshape_back, "Flatten": reshape_back, "Squeeze": reshape_back, "Unsqueeze": reshape_back,
    "Transpose": transpose, "Gather": route, "GatherElements": route, "GatherND": route, "Tile": route,
    "DepthToSpace": route_float, "SpaceToDepth": route_float,
    "Slice": slice_, "Split": split, "Concat": concat, "Expand": expand, "Pad": pad,
}
