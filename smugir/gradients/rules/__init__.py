"""The gradient rules, one per op, gathered from one small module per op family.

A rule takes (builder, forward node, gradient of the node's first output, the inputs that need a
gradient), emits backward nodes through the builder and returns {input name: gradient tensor}.
`NO_GRADIENT` lists the plumbing ops whose outputs carry no gradient (shape arithmetic,
comparisons, integer casts' consumers): the reverse pass does not follow them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import onnx

from smugir.gradients.rules import activations, elementwise, linear, normalization, pooling, reductions, shape, softmax

if TYPE_CHECKING:
    from smugir.gradients.builder import Builder

Rule = Callable[["Builder", onnx.NodeProto, str, set], dict]

FAMILIES = (elementwise, activations, linear, pooling, normalization, reductions, shape, softmax)
RULES: dict[str, Rule] = {op: rule for family in FAMILIES for op, rule in family.RULES.items()}
NO_GRADIENT = frozenset({
    "Shape", "Size", "ConstantOfShape", "Range", "EyeLike", "NonZero", "OneHot",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
    "ArgMax", "ArgMin", "Sign", "Floor", "Ceil", "Round",
})
SUPPORTED_OPS = tuple(sorted(set(RULES) | NO_GRADIENT | {"Constant"}))
