"""Arithmetic and elementwise maths: broadcasting binary ops (the gradient is summed back over
the broadcast axes) and the unary functions of LayerNorm written out, GELU and friends."""

from __future__ import annotations

import math

import numpy as np


def _binary(b, node, need, grads):
    """{operand: its gradient unbroadcast}, for the operands in `need`; `grads` maps operand index to a thunk."""
    out_shape = b.shape(node.output[0], node)
    return {node.input[k]: b.unbroadcast(make(), out_shape, node.input[k], node)
            for k, make in grads.items() if node.input[k] in need}


def add_sub(b, node, g, need):
    negate = node.op_type == "Sub"
    return _binary(b, node, need, {0: lambda: g, 1: lambda: b.add("Neg", [g]) if negate else g})


def mul(b, node, g, need):
    x, y = node.input[:2]
    return _binary(b, node, need, {0: lambda: b.add("Mul", [g, y]), 1: lambda: b.add("Mul", [g, x])})


def div(b, node, g, need):
    x, y = node.input[:2]
    return _binary(b, node, need, {
        0: lambda: b.add("Div", [g, y]),
        1: lambda: b.add("Neg", [b.add("Mul", [g, b.add("Div", [node.output[0], y])])]),
    })


def pow_(b, node, g, need):
    """d x^e / dx = e x^(e-1); d x^e / de = x^e log x (only where the exponent is computed)."""
    x, e = node.input[:2]
    exponent = b.constant(e)

    def slope():
        if exponent is None:
            return b.add("Mul", [e, b.add("Pow", [x, b.add("Sub", [e, b.const(1.0)])])])
        if np.all(exponent == 2):  # x ** 2, as LayerNorm written out squares
            return b.add("Mul", [x, b.const(2.0)])
        return b.add("Mul", [b.const(exponent), b.add("Pow", [x, b.const(exponent - 1.0)])])

    return _binary(b, node, need, {
        0: lambda: b.add("Mul", [g, slope()]),
        1: lambda: b.add("Mul", [g, b.add("Mul", [node.output[0], b.add("Log", [x])])]),
    })


def max_min(b, node, g, need):
    """The gradient goes to the operand that is the result (variadic; ties go to every tied operand)."""
    out_shape = b.shape(node.output[0], node)
    zero = b.const(0.0)
    return {x: b.unbroadcast(b.add("Where", [b.add("Equal", [x, node.output[0]]), g, zero]), out_shape, x, node)
            for x in node.input if x in need}


def sum_(b, node, g, need):
    out_shape = b.shape(node.output[0], node)
    return {x: b.unbroadcast(g, out_shape, x, node) for x in node.input if x in need}


def where(b, node, g, need):
    condition = node.input[0]
    zero = b.const(0.0)
    return _binary(b, node, need, {
        1: lambda: b.add("Where", [condition, g, zero]),
        2: lambda: b.add("Where", [condition, zero, g]),
    })


def _unary(factor):
    """A rule g * factor(b, node) for a unary elementwise op."""
    def rule(b, node, g, need):
        return {node.input[0]: b.add("Mul", [g, factor(b, node)])}
    return rule


def cast(b, node, g, need):
    """Between float types the gradient is cast back; into or out of integers none passes (see NO_GRADIENT)."""
    source = b.facts.elem_type(node.input[0])
    return {node.input[0]: g if source in (None, b.dtype) else b.add("Cast", [g], to=source)}


def identity(b, node, g, need):
    return {node.input[0]: g}


def _recip(b, node):  # d(1/x) = -1/x^2 = -y^2
    return b.add("Neg", [b.add("Mul", [node.output[0], node.output[0]])])


def _abs(b, node):  # sign(x): 0 at 0
    return b.add("Sign", [node.input[0]])


def _sqrt(b, node):  # 1 / (2 sqrt x)
    return b.add("Div", [b.const(0.5), node.output[0]])


def _exp(b, node):
    return node.output[0]


def _log(b, node):
    return b.add("Reciprocal", [node.input[0]])


def _neg(b, node):
    return b.const(-1.0)


def _erf(b, node):  # 2 / sqrt(pi) exp(-x^2)
    x = node.input[0]
    return b.add("Mul", [b.const(2.0 / math.sqrt(math.pi)), b.add("Exp", [b.add("Neg", [b.add("Mul", [x, x])])])])


def _sin(b, node):
    return b.add("Cos", [node.input[0]])


def _cos(b, node):
    return b.add("Neg", [b.add("Sin", [node.input[0]])])


RULES = {
    "Add": add_sub, "Sub": add_sub, "Mul": mul, "Div": div, "Pow": pow_, "Max": max_min, "Min": max_min, "Sum": sum_,
    "Where": where, "Cast": cast, "Identity": identity, "Dropout": identity,
    "Neg": _unary(_neg), "Abs": _unary(_abs), "Reciprocal": _unary(_recip), "Sqrt": _unary(_sqrt),
    "Exp": _unary(_exp), "Log": _unary(_log), "Erf": _unary(_erf), "Sin": _unary(_sin), "Cos": _unary(_cos),
}
