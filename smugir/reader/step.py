"""One node on the way from the data input to the first linear layer, as the op rules see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import onnx

from smugir.affine import InputAffine
from smugir.convolution import node_attributes
from smugir.errors import UnsupportedModelError
from smugir.reader.graph import ReaderGraph, node_label


@dataclass(frozen=True)
class Step:
    """`node` reads the tensors in `affines` (z = affine(x') each); its other inputs must be constants."""

    node: onnx.NodeProto
    graph: ReaderGraph
    affines: dict[str, InputAffine]
    dtype: int  # element type of the tensors the walk follows into the node
    n_inputs: int  # raw input elements
    float32_arithmetic: bool = False  # read float16 arithmetic as onnxruntime's CPU runs it (`smugir.reader.rules.casts`)

    @property
    def tensor(self) -> str:
        """The one followed input of a single-input rule."""
        if len(self.affines) != 1:
            names = ", ".join(repr(n) for n in self.affines)
            raise UnsupportedModelError(
                f"node {self.label!r} ({self.node.op_type}) combines several tensors computed from the input ({names}); "
                f"smugir folds {self.node.op_type} with one such tensor and constants"
            )
        return next(iter(self.affines))

    @property
    def affine(self) -> InputAffine:
        return self.affines[self.tensor]

    @property
    def attrs(self) -> dict:
        return node_attributes(self.node)

    @property
    def label(self) -> str:
        return node_label(self.node)


# -> (the affine map of each output, how inspect names the op)
PreprocessingRule = Callable[[Step], "tuple[tuple[InputAffine, ...], str]"]
