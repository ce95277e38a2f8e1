"""Ops that only move elements: each output element reads one element of the input (or a constant)."""

from __future__ import annotations

import numpy as np

from smugir.affine import InputAffine
from smugir.errors import UnsupportedModelError
from smugir.reader.step import Step


def identity(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    return (step.affine,), step.node.op_type


def flatten(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    shape = step.affine.shape
    axis = step.attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    outer = int(np.prod(shape[:axis]))
    return (step.affine.layout(lambda a: a.reshape(outer, -1)),), "Flatten"


def reshape(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    shape = step.affine.shape
    target = [int(v) for v in np.ravel(step.graph.constant(step.node.input[1], step.node, "target shape"))]
    if not step.attrs.get("allowzero", 0):
        target = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(target)]
    try:
        return (step.affine.layout(lambda a: a.reshape(target)),), "Reshape"
    except ValueError:
        raise UnsupportedModelError(f"Reshape node {step.label!r} cannot reshape {list(shape)} to {target}") from None


def _axes(step: Step, position: int = 1) -> list[int]:
    node = step.node
    if step.graph.opset >= 13 and len(node.input) > position and node.input[position]:
        return [int(v) for v in np.ravel(step.graph.constant(node.input[position], node, "axes"))]
    return list(step.attrs.get("axes", []))


def squeeze_unsqueeze(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    shape, axes = step.affine.shape, _axes(step)
    if step.node.op_type == "Squeeze":
        axes = axes or [i for i, s in enumerate(shape) if s == 1]
        try:
            return (step.affine.layout(lambda a: np.squeeze(a, axis=tuple(ax % len(shape) for ax in axes))),), "Squeeze"
        except ValueError:
            raise UnsupportedModelError(f"Squeeze node {step.label!r} squeezes axes {axes} of {list(shape)}, which are not 1") from None
    rank = len(shape) + len(axes)
    return (step.affine.layout(lambda a: np.expand_dims(a, tuple(ax % rank for ax in axes))),), "Unsqueeze"


def transpose(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    perm = step.attrs.get("perm") or list(range(len(step.affine.shape)))[::-1]
    return (step.affine.layout(lambda a: np.ascontiguousarray(np.transpose(a, perm))),), "Transpose"


def gather(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    """Gather with constant indices along one axis (torchvision's per-channel x[:, 0] reads)."""
    if step.node.input[0] != step.tensor:
        raise UnsupportedModelError(f"Gather node {step.label!r} uses the input as its indices; smugir folds only Gather of the input by constant indices")
    shape = step.affine.shape
    axis = int(step.attrs.get("axis", 0)) % len(shape)
    indices = np.asarray(step.graph.constant(step.node.input[1], step.node, "indices")).astype(np.int64)
    if indices.size and (indices.min() < -shape[axis] or indices.max() >= shape[axis]):
        raise UnsupportedModelError(f"Gather node {step.label!r} has indices outside [-{shape[axis]}, {shape[axis]}) on axis {axis}")
    indices = np.where(indices < 0, indices + shape[axis], indices)
    return (step.affine.layout(lambda a: np.ascontiguousarray(np.take(a, indices, axis=axis))),), f"Gather axis {axis} {indices.tolist()}"


def slice_(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    """Slice with constant starts, ends, axes and steps (opset 10+ inputs, attributes before)."""
    node, graph, shape = step.node, step.graph, step.affine.shape
    if graph.opset < 10:
        starts, ends = step.attrs.get("starts", []), step.attrs.get("ends", [])
        axes, steps = step.attrs.get("axes") or list(range(len(starts))), [1] * len(starts)
    else:
        starts, ends = (list(np.ravel(graph.constant(node.input[k], node, role))) for k, role in ((1, "starts"), (2, "ends")))
        axes_value, steps_value = graph.optional_constant(node, 3, "axes"), graph.optional_constant(node, 4, "steps")
        axes = list(range(len(starts))) if axes_value is None else list(np.ravel(axes_value))
        steps = [1] * len(starts) if steps_value is None else list(np.ravel(steps_value))
    selector = [slice(None)] * len(shape)
    for start, end, axis, stride in zip(starts, ends, axes, steps):
        if int(stride) == 0:
            raise UnsupportedModelError(f"Slice node {step.label!r} has a step of 0")
        size = shape[int(axis) % len(shape)]
        start, end = (int(np.clip(v, -size - 1, size + 1)) for v in (start, end))
        if int(stride) < 0 and end < -size:  # past the first element backwards: Python spells it None
            end = None
        selector[int(axis) % len(shape)] = slice(start, end, int(stride))
    return (step.affine.layout(lambda a: np.ascontiguousarray(a[tuple(selector)])),), "Slice"


def split(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    """Split into parts of constant sizes (the `split` input or attribute, or equal parts)."""
    node, graph, shape = step.node, step.graph, step.affine.shape
    axis = int(step.attrs.get("axis", 0)) % len(shape)
    sizes = graph.optional_constant(node, 1, "split sizes") if graph.opset >= 13 else step.attrs.get("split")
    count = len(node.output)
    if sizes is None or np.size(sizes) == 0:
        parts = int(step.attrs.get("num_outputs", count))
        chunk = -(-shape[axis] // parts)
        sizes = [min(chunk, shape[axis] - k * chunk) for k in range(parts)]
    sizes = [int(v) for v in np.ravel(sizes)]
    if sum(sizes) != shape[axis] or len(sizes) != count or min(sizes, default=0) < 0:
        raise UnsupportedModelError(f"Split node {step.label!r} splits {shape[axis]} elements on axis {axis} into {sizes} for {count} outputs")
    bounds = np.cumsum([0, *sizes])
    pieces = tuple(step.affine.layout(lambda a, b=b, e=e: np.ascontiguousarray(np.take(a, np.arange(b, e), axis=axis)))
                   for b, e in zip(bounds[:-1], bounds[1:]))
    return pieces, f"Split axis {axis} {sizes}"
