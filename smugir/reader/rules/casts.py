"""Cast between float types, and the rounding a float16 (or bfloat16) tensor applies to its values.

Rounding is elementwise, so it is exact for masking when every element of the tensor that reads raw
element i reads it through the same scale and shift: then x'_i = round(scale_i * x_i + shift_i) is
one value per raw element (on x or on the baseline) and the tensor is x'[index] afterwards.
"""

from __future__ import annotations

import numpy as np
import onnx

from smugir.affine import InputAffine, Rounding, round_to
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import FLOAT_TYPES, LOW_PRECISION, node_label
from smugir.reader.step import Step


def cast(step: Step) -> tuple[tuple[InputAffine, ...], str]:
    to = step.attrs.get("to")
    if to not in FLOAT_TYPES:
        raise UnsupportedModelError(
            f"node {step.label!r} casts the input to a non-float type ({to}); smugir folds only casts between float types"
        )
    affine = step.affine
    if step.float32_arithmetic and to in LOW_PRECISION and _into_float32_arithmetic(step):
        return (affine,), f"Cast to {LOW_PRECISION[to]} (onnxruntime computes on in float32: no rounding)"
    if to in LOW_PRECISION and step.dtype != to:
        affine = rounded(affine, LOW_PRECISION[to], step.node, step.n_inputs)
        return (affine,), f"Cast to {LOW_PRECISION[to]} (rounding modelled)"
    return (affine,), "Cast"


def _into_float32_arithmetic(step: Step) -> bool:
    """onnxruntime's CPU has no float16 Sub/Add/Mul/Div: it casts their operands to float32 and then
    drops the Cast(float16) -> Cast(float32) pair, so a Cast read only by them rounds nothing."""
    from smugir.reader.rules import VALUE_OPS

    readers = step.graph.consumers.get(step.node.output[0], [])
    return bool(readers) and all(node.op_type in VALUE_OPS for node in readers) and step.node.output[0] not in step.graph.outputs


def rounded(affine: InputAffine, dtype: str, node: onnx.NodeProto, size: int) -> InputAffine:
    """The tensor after its values are rounded to `dtype`: a new rounding stage of the raw elements it reads."""
    reads = affine.index >= 0
    index, scale, shift = affine.index[reads], affine.scale[reads], affine.shift[reads]
    where = np.zeros(size, dtype=bool)
    stage_scale, stage_shift = np.ones(size), np.zeros(size)
    where[index], stage_scale[index], stage_shift[index] = True, scale, shift
    if not (np.array_equal(stage_scale[index], scale) and np.array_equal(stage_shift[index], shift)):
        raise UnsupportedModelError(
            f"node {node_label(node)!r} ({node.op_type}) rounds to {dtype} a tensor that reads some input element "
            "through different scales or shifts; smugir models a rounding of one value per input element"
        )
    return InputAffine(
        affine.index,
        np.where(reads, 1.0, 0.0),
        np.where(reads, 0.0, round_to(affine.shift, dtype)),
        (*affine.roundings, Rounding(dtype, where, stage_scale, stage_shift)),
    )


def in_low_precision(affine: InputAffine, dtype: int, node: onnx.NodeProto, size: int) -> InputAffine:
    """The result of arithmetic done in float16/bfloat16 is rounded to it too."""
    if dtype not in LOW_PRECISION:
        return affine
    return rounded(affine, LOW_PRECISION[dtype], node, size)


