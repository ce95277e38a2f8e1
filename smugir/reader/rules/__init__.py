"""The reader's op rules, one module per op family (as `onnx.reference` keeps `ops/`).

PREPROCESSING_RULES map z = affine(x') through an op in front of the linear layer; `after_linear`
folds per-channel ops into the layer; `activations` reads the activation that follows.
"""

from __future__ import annotations

from smugir.reader.rules.branches import concat
from smugir.reader.rules.casts import cast
from smugir.reader.rules.elementwise import elementwise
from smugir.reader.rules.layout import flatten, gather, identity, reshape, slice_, split, squeeze_unsqueeze, transpose
from smugir.reader.rules.padding import pad
from smugir.reader.step import PreprocessingRule

PREPROCESSING_RULES: dict[str, PreprocessingRule] = {
    "Identity": identity,
    "Cast": cast,
    "Flatten": flatten,
    "Reshape": reshape,
    "Squeeze": squeeze_unsqueeze,
    "Unsqueeze": squeeze_unsqueeze,
    "Transpose": transpose,
    "Gather": gather,
    "Slice": slice_,
    "Split": split,
    "Concat": concat,
    "Sub": elementwise,
    "Add": elementwise,
    "Mul": elementwise,
    "Div": elementwise,
    "Pad": pad,
}
VALUE_OPS = ("Sub", "Add", "Mul", "Div")  # compute new values: rounded again in a float16 graph
