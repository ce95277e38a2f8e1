"""Shape and indexing ops: reshapes and permutations move the gradient back; selections (Gather,
Slice, Tile, DepthToSpace, ...) add it back where each element came from (`Builder.route`);
Concat / Split exchange roles; Expand sums over the axes it broadcast."""

from __future__ import annotations

import numpy as np

from smugir.convolution import node_attributes
from smugir.errors import UnsupportedOpError


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
    """Constant mode with constant non-negative pads: the gradient sliced back; reflect / edge /
    wrap modes and negative (cropping) pads: routed by index, the pad value dropped."""
    attrs = node_attributes(node)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    x = node.input[0]
    pads = b.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("pads")
    has_axes = len(node.input) > 3 and bool(node.input[3])
    axes = b.constant(node.input[3]) if has_axes else None
    if mode != "constant" or (pads is not None and np.all(np.asarray(pads) <= 0)):
        copy = type(node)()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend([x, node.input[1], "", node.input[3]] if has_axes else [x, node.input[1]])
        return {x: b.route(copy, g)}
    if pads is None or (has_axes and axes is None) or np.any(np.asarray(pads) < 0):
        raise UnsupportedOpError(node.name, "Pad", "in constant mode with run-time or mixed-sign pads", ["Pad with constant pads"])
    pads = np.asarray(pads, dtype=np.int64)
    count = len(pads) // 2
    rank = b.rank(x, node)
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in np.ravel(axes)]
    shape = np.array(b.shape(x, node))
    padded = [(axis, int(pads[k]), int(pads[k + count])) for k, axis in enumerate(axes[:count]) if pads[k] or pads[k + count]]
    if not padded:
        return {x: g}
    starts = [begin for _, begin, _ in padded]
    ends = [begin + int(shape[axis]) for axis, begin, _ in padded]
    return {x: b.add("Slice", [g, b.ints(starts), b.ints(ends), b.ints([axis for axis, _, _ in padded])])}


RULES = {
    "Reshape": reshape_back, "Flatten": reshape_back, "Squeeze": reshape_back, "Unsqueeze": reshape_back,
    "Transpose": transpose, "Gather": route, "GatherElements": route, "GatherND": route, "Tile": route,
    "DepthToSpace": route_float, "SpaceToDepth": route_float,
    "Slice": slice_, "Split": split, "Concat": concat, "Expand": expand, "Pad": pad,
}
