"""Add, Sub, Mul, Div of the followed tensor and a constant: the scale and shift change, the index does not."""

from __future__ import annotations

import numpy as np

from smugir.affine import InputAffine
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import check_elements, short
from smugir.reader.step import Step


def elementwise(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    """The affine map after `z op c` (or `c op z`)."""
    node, op, affine = step.node, step.node.op_type, step.affine
    if len(node.input) != 2 or node.input[0] == node.input[1]:
        raise UnsupportedModelError(f"node {step.label!r} ({op}) combines the input with itself; not affine")
    position = list(node.input).index(step.tensor)
    raw = step.graph.constant(node.input[1 - position], node, "second operand")
    const = raw.astype(np.float64)
    check_elements(node, np.broadcast_shapes(affine.shape, const.shape))
    index, scale, shift = np.broadcast_arrays(affine.index, affine.scale, affine.shift, const)[:3]
    const = np.broadcast_to(const, index.shape)
    if op == "Add":
        shift = shift + const
    elif op == "Sub":
        scale, shift = (scale, shift - const) if position == 0 else (-scale, const - shift)
    elif op == "Mul":
        scale, shift = scale * const, shift * const
    elif position == 0:  # Div by a constant
        if np.any(const == 0):
            raise UnsupportedModelError(f"Div node {step.label!r} divides by a constant that contains 0")
        scale, shift = scale / const, shift / const
    else:
        raise UnsupportedModelError(
            f"Div node {step.label!r} divides a constant by the input, which is not affine; "
            "smugir folds only division of the input by a constant"
        )
    folded = InputAffine(np.ascontiguousarray(index), np.ascontiguousarray(scale), np.ascontiguousarray(shift), affine.roundings)
    return (folded,), f"{op} {short(raw)}"
