"""Exact gradients from the ONNX graph itself, so models from any framework can be explained.

`gradient_model` (in `builder`) appends reverse-mode nodes to a model, one small rule per op
from the table in `smugir.gradients.rules`; `GradientGraph` runs the result with onnxruntime,
many points per call; `FiniteDifferences` is the bounded fallback and the cross-check.
"""

from smugir.gradients.builder import CLASS_INPUT, GRAD_OPSET, TARGETS, gradient_model
from smugir.gradients.providers import BATCH_ELEMENTS, FiniteDifferences, GradientGraph, GradientProvider, fallback_reason
from smugir.gradients.rules import NO_GRADIENT, RULES, SUPPORTED_OPS

__all__ = [
    "BATCH_ELEMENTS", "CLASS_INPUT", "GRAD_OPSET", "NO_GRADIENT", "RULES", "SUPPORTED_OPS", "TARGETS",
    "FiniteDifferences", "GradientGraph", "GradientProvider", "fallback_reason", "gradient_model",
]
