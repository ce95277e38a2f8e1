"""Concat: branches of the input (per-channel Gather/Slice/Split, each normalised) joined again.

torchvision's GoogLeNet and Inception-v3 with `transform_input=True` read each colour channel with
a Gather, scale and shift it, and Concat the three in front of the first Conv: each element of the
result still reads one raw element through its own scale and shift, which is all a first layer needs.
"""

from __future__ import annotations

import numpy as np

from smugir.affine import CONSTANT_ELEMENT, InputAffine, same_roundings
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import check_elements
from smugir.reader.step import Step


def concat(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    node = step.node
    parts = []
    for name in node.input:
        if name in step.affines:
            parts.append(step.affines[name])
        else:
            value = np.asarray(step.graph.constant(name, node, "operand"), dtype=np.float64)
            parts.append(InputAffine(np.full(value.shape, CONSTANT_ELEMENT, np.int64), np.zeros(value.shape), value))
    followed = [step.affines[n] for n in dict.fromkeys(node.input) if n in step.affines]
    if any(not same_roundings(followed[0].roundings, p.roundings) for p in followed[1:]):
        raise UnsupportedModelError(
            f"Concat node {step.label!r} joins branches that round the input differently (float16 in one, not in another); "
            "smugir models one rounding per input element"
        )
    rank = len(parts[0].shape)
    axis = int(step.attrs.get("axis", 0)) % max(rank, 1)
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    check_elements(node, tuple(shape))
    try:
        joined = [np.concatenate([getattr(p, a) for p in parts], axis=axis) for a in ("index", "scale", "shift")]
    except ValueError:
        raise UnsupportedModelError(f"Concat node {step.label!r} joins shapes {[list(p.shape) for p in parts]} on axis {axis}") from None
    return (InputAffine(*joined, followed[0].roundings),), f"Concat of {len(parts)} on axis {axis}"
