"""The first layer smugir reads from a model: the IR (`smugir.layers`, `smugir.affine`) and its reader
(`smugir.reader`), under the names the rest of smugir and its users import."""

from __future__ import annotations

from smugir.affine import CONSTANT_ELEMENT, InputAffine, Rounding
from smugir.layers import ConvLayer, DenseLayer, FirstLayer, NeuronTerms, ReceptiveFields
from smugir.reader import first_layer
from smugir.reader.graph import FLOAT_TYPES, LINEAR_OPS

__all__ = ["CONSTANT_ELEMENT", "FLOAT_TYPES", "LINEAR_OPS", "ConvLayer", "DenseLayer", "FirstLayer", "InputAffine",
           "NeuronTerms", "ReceptiveFields", "Rounding", "first_layer"]
