"""Constant-mode Pad in front of the first linear layer: padded elements read no input."""

from __future__ import annotations

import numpy as np

from smugir.affine import CONSTANT_ELEMENT, InputAffine
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import check_elements, text
from smugir.reader.step import Step


def pad(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    """Constant-mode Pad: padded elements read no input and hold the pad value in the tensor Pad sees.

    Later elementwise ops (a normalisation after the Pad) carry that value exactly; at a Conv, a
    border that is 0 in z becomes the conv's own zero padding (`zero_border_as_padding` in `rules.linear`).
    """
    node, attrs, graph, affine = step.node, step.attrs, step.graph, step.affine
    mode = text(attrs.get("mode", "constant"))
    if mode != "constant":
        raise UnsupportedModelError(
            f"Pad node {step.label!r} pads in mode {mode!r}; smugir reads only constant-mode padding in front of "
            "the first linear layer"
        )
    rank = len(affine.shape)
    if graph.opset < 11:
        pads, value, axes = list(attrs.get("pads", [])), float(attrs.get("value", 0.0)), list(range(rank))
    else:
        pads = [int(v) for v in np.ravel(graph.constant(node.input[1], node, "pads"))]
        constant_value = graph.optional_constant(node, 2, "pad value")
        value = 0.0 if constant_value is None else float(np.ravel(constant_value)[0]) if np.size(constant_value) == 1 else None
        axes_value = graph.optional_constant(node, 3, "axes")
        axes = list(range(rank)) if axes_value is None else [int(a) % rank for a in np.ravel(axes_value)]
        if value is None:
            raise UnsupportedModelError(f"Pad node {step.label!r} has a pad value that is not a scalar")
    if len(pads) != 2 * len(axes):
        raise UnsupportedModelError(f"Pad node {step.label!r} gives {len(pads)} pads for {len(axes)} axes of a {list(affine.shape)} input")
    begin, end = [0] * rank, [0] * rank
    for k, axis in enumerate(axes):
        begin[axis], end[axis] = pads[k], pads[k + len(axes)]
    crop = tuple(slice(max(0, -b), s - max(0, -e)) for b, e, s in zip(begin, end, affine.shape))
    affine = affine.layout(lambda a: a[crop])
    if min(affine.shape, default=1) < 1:
        raise UnsupportedModelError(f"Pad node {step.label!r} crops the input {list(step.affine.shape)} to nothing")
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    check_elements(node, tuple(s + b + e for s, (b, e) in zip(affine.shape, width)))
    padded = InputAffine(
        np.pad(affine.index, width, constant_values=CONSTANT_ELEMENT),
        np.pad(affine.scale, width, constant_values=0.0),
        np.pad(affine.shift, width, constant_values=value),
        affine.roundings,
    )
    return (padded,), f"Pad {pads} value {value:g}"
