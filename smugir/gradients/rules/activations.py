"""Activation functions: the ReLU family, sigmoid-like gates, GELU (opset 20) and its relatives.
Kinked ones pass the gradient where the function's slope is that of the branch taken. Saturating
ones are written from e^-|x|, not from their output, where 1 - tanh(x)^2 or y + alpha would cancel
in float32 (onnxruntime's Sigmoid itself is accurate to 1e-7 absolute, not relative)."""

from __future__ import annotations

import math


from smugir.convolution import node_attributes


def _where_positive(b, node, g, below):
    """g where x > 0, else `below` (a tensor)."""
    return {node.input[0]: b.add("Where", [b.add("Greater", [node.input[0], b.const(0.0)]), g, below])}


def relu(b, node, g, need):
    return _where_positive(b, node, g, b.const(0.0))


def leaky_relu(b, node, g, need):
    alpha = float(node_attributes(node).get("alpha", 0.01))
    return _where_positive(b, node, g, b.add("Mul", [g, b.const(alpha)]))


def prelu(b, node, g, need):
    """y = x for x > 0, slope * x below; the slope is a (broadcast) weight, not differentiated."""
    if node.input[1] in need:
        raise _weight_error(node)
    return _where_positive(b, node, g, b.add("Mul", [g, node.input[1]]))


def _weight_error(node):
    from smugir.errors import UnsupportedOpError

    return UnsupportedOpError(node.name, node.op_type, "with a gradient through its slope", [f"{node.op_type}(x, constant slope)"])


def _logistic(b, x: str, scale: float = 1.0) -> tuple[str, str]:
    """s(z) = 1 / (1 + e^-z) and s(z) s(-z) at z = scale x, as e^min(z, 0) / (1 + e^-|z|) and
    e^-|z| / (1 + e^-|z|)^2: relatively exact on both sides."""
    z = b.add("Mul", [x, b.const(scale)])
    e = b.add("Exp", [b.add("Neg", [b.add("Abs", [z])])])
    denominator = b.add("Add", [b.const(1.0), e])
    value = b.add("Div", [b.add("Exp", [b.add("Min", [z, b.const(0.0)])]), denominator])
    return value, b.add("Div", [e, b.add("Mul", [denominator, denominator])])


def elu(b, node, g, need):
    """Below 0, y = alpha (e^x - 1): slope alpha e^x."""
    alpha = float(node_attributes(node).get("alpha", 1.0))
    return _where_positive(b, node, g, b.add("Mul", [g, b.add("Mul", [b.add("Exp", [node.input[0]]), b.const(alpha)])]))


def selu(b, node, g, need):
    attrs = node_attributes(node)
    alpha, gamma = float(attrs.get("alpha", 1.67326319217681884765625)), float(attrs.get("gamma", 1.05070102214813232421875))
    below = b.add("Mul", [g, b.add("Mul", [b.add("Exp", [node.input[0]]), b.const(alpha * gamma)])])
    return _where_positive(b, node, b.add("Mul", [g, b.const(gamma)]), below)


def celu(b, node, g, need):
    alpha = float(node_attributes(node).get("alpha", 1.0))
    below = b.add("Mul", [g, b.add("Exp", [b.add("Div", [node.input[0], b.const(alpha)])])])
    return _where_positive(b, node, g, below)


def sigmoid(b, node, g, need):
    """y (1 - y), from the output: cheap on SiLU networks (EfficientNet-B0's gradient runs take 40 %
    longer with the e^-|x| form) and as exact as onnxruntime's own Sigmoid, 1e-7 absolute."""
    y = node.output[0]
    return {node.input[0]: b.add("Mul", [g, b.add("Mul", [y, b.add("Sub", [b.const(1.0), y])])])}


def tanh(b, node, g, need):
    """1 - tanh(x)^2 = 4 s(2x) s(-2x)."""
    return {node.input[0]: b.add("Mul", [g, b.add("Mul", [_logistic(b, node.input[0], 2.0)[1], b.const(4.0)])])}


def softplus(b, node, g, need):
    """d log(1 + e^x) = sigmoid(x)."""
    return {node.input[0]: b.add("Mul", [g, _logistic(b, node.input[0])[0]])}


def softsign(b, node, g, need):
    """d x / (1 + |x|) = 1 / (1 + |x|)^2."""
    denominator = b.add("Add", [b.const(1.0), b.add("Abs", [node.input[0]])])
    return {node.input[0]: b.add("Div", [g, b.add("Mul", [denominator, denominator])])}


def mish(b, node, g, need):
    """y = x tanh(softplus(x)): slope t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)); 1 - t^2
    stays: it nears 0 only where t (near 1) dominates the slope."""
    x = node.input[0]
    t = b.add("Tanh", [b.add("Softplus", [x])])
    slope = b.add("Add", [t, b.add("Mul", [b.add("Mul", [x, _logistic(b, x)[0]]), b.add("Sub", [b.const(1.0), b.add("Mul", [t, t])])])])
    return {x: b.add("Mul", [g, slope])}


def gelu(b, node, g, need):
    """Exact: Phi(x) + x phi(x) (Phi from Erf: below x = -5 it keeps 1e-7 absolute, ONNX has no Erfc);
    tanh approximation: 0.5 (1 + t) + 0.5 x (1 - t^2) u', t = tanh(u), u = c (x + 0.044715 x^3),
    as s(2u) + 2 x u' s(2u) s(-2u)."""
    x = node.input[0]
    approximate = node_attributes(node).get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        x2 = b.add("Mul", [x, x])
        u = b.add("Mul", [b.const(c), b.add("Add", [x, b.add("Mul", [b.const(0.044715), b.add("Mul", [x2, x])])])])
        du = b.add("Mul", [b.const(c), b.add("Add", [b.const(1.0), b.add("Mul", [b.const(3 * 0.044715), x2])])])
        value, slope_u = _logistic(b, u, 2.0)
        slope = b.add("Add", [value, b.add("Mul", [b.add("Mul", [b.const(2.0), x]), b.add("Mul", [slope_u, du])])])
    else:
        cdf = b.add("Mul", [b.const(0.5), b.add("Add", [b.const(1.0), b.add("Erf", [b.add("Mul", [x, b.const(1 / math.sqrt(2.0))])])])])
        pdf = b.add("Mul", [b.const(1 / math.sqrt(2 * math.pi)), b.add("Exp", [b.add("Mul", [b.add("Mul", [x, x]), b.const(-0.5)])])])
        slope = b.add("Add", [cdf, b.add("Mul", [x, pdf])])
    return {x: b.add("Mul", [g, slope])}


def clip(b, node, g, need):
    """The gradient passes where the output is the input itself (min <= x <= max, whether the bounds
    are inputs, attributes or absent): one comparison with the forward output, not two and an And."""
    x = node.input[0]
    return {x: b.add("Where", [b.add("Equal", [node.output[0], x]), g, b.const(0.0)])}


def hard_sigmoid(b, node, g, need):
    """y = max(0, min(1, alpha x + beta)): slope alpha where 0 < alpha x + beta < 1."""
    attrs = node_attributes(node)
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    inner = b.add("Add", [b.add("Mul", [node.input[0], b.const(alpha)]), b.const(beta)])
    inside = b.add("And", [b.add("Greater", [inner, b.const(0.0)]), b.add("Less", [inner, b.const(1.0)])])
    return {node.input[0]: b.add("Where", [inside, b.add("Mul", [g, b.const(alpha)]), b.const(0.0)])}


def hard_swish(b, node, g, need):
    """y = x max(0, min(1, x/6 + 1/2)): dy/dx = 0 below -3, 1 above 3, x/3 + 1/2 between."""
    x = node.input[0]
    slope = b.add("Add", [b.add("Div", [x, b.const(3.0)]), b.const(0.5)])
    slope = b.add("Where", [b.add("Greater", [x, b.const(3.0)]), b.const(1.0), slope])
    slope = b.add("Where", [b.add("Less", [x, b.const(-3.0)]), b.const(0.0), slope])
    return {x: b.add("Mul", [g, slope])}


RULES = {
    "Relu": relu, "LeakyRelu": leaky_relu, "PRelu": prelu, "Elu": elu, "Selu": selu, "Celu": celu,
    "Sigmoid": sigmoid, "Tanh": tanh, "Softplus": softplus, "Softsign": softsign, "Mish": mish, "Gelu": gelu,
    "Clip": clip, "HardSigmoid": hard_sigmoid, "HardSwish": hard_swish,
}

