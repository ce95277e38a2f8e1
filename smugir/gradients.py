"""Exact gradients from the ONNX graph itself, so models from any framework can be explained.

`GradientGraph` appends reverse-mode nodes to a model (one small rule per op in `RULES`) and runs
the result with onnxruntime, many points per call. `FiniteDifferences` needs nothing but
onnxruntime: batched central differences, for models with ops the rules do not cover and to
cross-check. Both differentiate a class's softmax probability (or its logit) per batch row.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import onnx
import onnx.shape_inference
import onnx.version_converter
from onnx import TensorProto, helper, numpy_helper

from smugir.convolution import conv_window, node_attributes
from smugir.errors import UnsupportedModelError, UnsupportedOpError
from smugir.model import batched_session, equal_to_rounding, make_session, run_session, with_dynamic_batch

TARGETS = ("probability", "logit")
GRAD_OPSET = 17
# Points per onnxruntime call times their size. Measured on EfficientNet-Lite0 (224 x 224): 1 to 8
# points per call are as fast per point as 100, and a call of 111 points held about 4 GB.
BATCH_ELEMENTS = 1 << 20
CLASS_INPUT = "smugir_class_index"
# How far an optimised session's gradient may be from the plain one's (relative L2 norm, per point).
# EfficientNet-Lite0's plain gradient itself moves by 0.3 % when its input moves by one float32 ulp
# (rounding flips ReLU6 kinks), the optimised one is within 0.9 %; a wrong rewrite is off by O(1).
GRADIENT_TOLERANCE = 2e-2


class GradientProvider(Protocol):
    name: str

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(values (B,), gradients (B, *point_shape)) of the target at each point."""


def _logits_and_probability(graph: onnx.GraphProto, output: str) -> tuple[str, str | None]:
    """The logits tensor, and the probability tensor if the graph already ends in Softmax."""
    producer = next((n for n in graph.node if output in n.output), None)
    if producer is not None and producer.op_type == "Softmax":
        return producer.input[0], output
    return output, None


class _Builder:
    """Accumulates the backward nodes; `grad_of` maps a forward tensor to its gradient tensor."""

    def __init__(self, graph: onnx.GraphProto, shapes: dict[str, tuple[int, ...]]):
        self.graph = graph
        self.shapes = shapes
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0
        self.grads: dict[str, str] = {}
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t) if node.attribute[0].HasField("t") else None

    def name(self, hint: str) -> str:
        self.counter += 1
        return f"smugir_grad_{hint}_{self.counter}"

    def add(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, value, dtype=np.float32) -> str:
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def accumulate(self, tensor: str, grad: str) -> None:
        self.grads[tensor] = self.add("Add", [self.grads[tensor], grad]) if tensor in self.grads else grad

    def shape(self, tensor: str, node: onnx.NodeProto) -> tuple[int, ...]:
        if tensor not in self.shapes:
            raise UnsupportedModelError(f"the shape of {tensor!r} (read by node {node.name!r}) is unknown; the gradient rule needs it")
        return self.shapes[tensor]


# --------------------------------------------------------------------------------------------------
# One rule per op: given the node, the gradient of its first output and which inputs need a
# gradient, add nodes and return {input name: gradient tensor}.

Rule = Callable[[_Builder, onnx.NodeProto, str, set], dict]


def _pass(b, node, g, need):
    return {node.input[0]: g}


def _reshape_back(b, node, g, need):
    return {node.input[0]: b.add("Reshape", [g, b.add("Shape", [node.input[0]])])}


def _transpose(b, node, g, need):
    perm = node_attributes(node).get("perm") or list(range(len(b.shape(node.input[0], node))))[::-1]
    return {node.input[0]: b.add("Transpose", [g], perm=list(np.argsort(perm)))}


def _relu(b, node, g, need):
    positive = b.add("Greater", [node.input[0], b.const(0.0)])
    return {node.input[0]: b.add("Where", [positive, g, b.const(0.0)])}


def _leaky_relu(b, node, g, need):
    alpha = float(node_attributes(node).get("alpha", 0.01))
    positive = b.add("Greater", [node.input[0], b.const(0.0)])
    return {node.input[0]: b.add("Where", [positive, g, b.add("Mul", [g, b.const(alpha)])])}


def _sigmoid(b, node, g, need):
    y = node.output[0]
    return {node.input[0]: b.add("Mul", [g, b.add("Mul", [y, b.add("Sub", [b.const(1.0), y])])])}


def _tanh(b, node, g, need):
    y = node.output[0]
    return {node.input[0]: b.add("Mul", [g, b.add("Sub", [b.const(1.0), b.add("Mul", [y, y])])])}


def _clip(b, node, g, need):
    """The gradient passes where the output is the input itself (min <= x <= max, whether the bounds
    are inputs, attributes or absent): one comparison with the forward output, not two and an And."""
    x = node.input[0]
    return {x: b.add("Where", [b.add("Equal", [node.output[0], x]), g, b.const(0.0)])}


def _hard_sigmoid(b, node, g, need):
    """y = max(0, min(1, alpha x + beta)): slope alpha where 0 < alpha x + beta < 1."""
    attrs = node_attributes(node)
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    inner = b.add("Add", [b.add("Mul", [node.input[0], b.const(alpha)]), b.const(beta)])
    inside = b.add("And", [b.add("Greater", [inner, b.const(0.0)]), b.add("Less", [inner, b.const(1.0)])])
    return {node.input[0]: b.add("Where", [inside, b.add("Mul", [g, b.const(alpha)]), b.const(0.0)])}


def _hard_swish(b, node, g, need):
    """y = x max(0, min(1, x/6 + 1/2)): dy/dx = 0 below -3, 1 above 3, x/3 + 1/2 between."""
    x = node.input[0]
    slope = b.add("Add", [b.add("Div", [x, b.const(3.0)]), b.const(0.5)])
    slope = b.add("Where", [b.add("Greater", [x, b.const(3.0)]), b.const(1.0), slope])
    slope = b.add("Where", [b.add("Less", [x, b.const(-3.0)]), b.const(0.0), slope])
    return {x: b.add("Mul", [g, slope])}


def _reduce(b, node, g, need):
    """ReduceSum / ReduceMean: the gradient spreads back over the reduced axes (divided by their size for a mean)."""
    attrs = node_attributes(node)
    x_shape = b.shape(node.input[0], node)
    rank = len(x_shape)
    axes_input = b.constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    if len(node.input) > 1 and node.input[1] and axes_input is None:
        raise UnsupportedOpError(node.name, node.op_type, "with axes computed at run time", [f"{node.op_type} with constant axes"])
    axes = list(attrs.get("axes", [])) if axes_input is None else [int(a) for a in np.ravel(axes_input)]
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return {node.input[0]: g}
        axes = list(range(rank))
    axes = sorted(a % rank for a in axes)
    if not attrs.get("keepdims", 1):
        g = b.add("Unsqueeze", [g, b.const(axes, np.int64)])
    spread = b.add("Expand", [g, b.add("Shape", [node.input[0]])])
    if node.op_type == "ReduceMean":
        spread = b.add("Div", [spread, b.const(float(np.prod([x_shape[a] for a in axes])))])
    return {node.input[0]: spread}


def _unbroadcast(b, node, grad: str, operand: str) -> str:
    """Sum a gradient over the axes along which `operand` was broadcast to the output."""
    out_shape = b.shape(node.output[0], node)
    in_shape = b.shape(operand, node)
    if in_shape == out_shape:
        return grad
    padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    axes = [i for i, (o, s) in enumerate(zip(out_shape, padded)) if s == 1 and o != 1]
    reduced = b.add("ReduceSum", [grad, b.const(axes, np.int64)], keepdims=1) if axes else grad
    return b.add("Reshape", [reduced, b.add("Shape", [operand])])


def _add_sub(b, node, g, need):
    out = {}
    for k, operand in enumerate(node.input[:2]):
        if operand in need:
            grad = g if (node.op_type == "Add" or k == 0) else b.add("Neg", [g])
            out[operand] = _unbroadcast(b, node, grad, operand)
    return out


def _mul(b, node, g, need):
    a, c = node.input[0], node.input[1]
    out = {}
    if a in need:
        out[a] = _unbroadcast(b, node, b.add("Mul", [g, c]), a)
    if c in need:
        out[c] = _unbroadcast(b, node, b.add("Mul", [g, a]), c)
    return out


def _div(b, node, g, need):
    a, c = node.input[0], node.input[1]
    out = {}
    if a in need:
        out[a] = _unbroadcast(b, node, b.add("Div", [g, c]), a)
    if c in need:
        quotient = b.add("Div", [node.output[0], c])
        out[c] = _unbroadcast(b, node, b.add("Neg", [b.add("Mul", [g, quotient])]), c)
    return out


def _gemm(b, node, g, need):
    attrs = node_attributes(node)
    if node.input[1] in need or attrs.get("transA", 0):
        raise UnsupportedOpError(node.name, "Gemm", "with a gradient through its B operand or transA", ["Gemm(A, const B)"])
    return {node.input[0]: b.add("Gemm", [g, node.input[1]], alpha=float(attrs.get("alpha", 1.0)), transB=0 if attrs.get("transB", 0) else 1)}


def _matmul(b, node, g, need):
    a, w = node.input
    if w in need:
        raise UnsupportedOpError(node.name, "MatMul", "with a gradient through its right operand", ["MatMul(x, const W)"])
    if len(b.shape(w, node)) != 2:
        raise UnsupportedOpError(node.name, "MatMul", "with a weight that is not 2-D", ["MatMul(x, 2-D W)"])
    return {a: b.add("MatMul", [g, b.add("Transpose", [w], perm=[1, 0])])}


def _conv(b, node, g, need):
    if node.input[1] in need:
        raise UnsupportedOpError(node.name, "Conv", "with a gradient through its weight", ["Conv(x, const W)"])
    x_shape = b.shape(node.input[0], node)
    g_shape = b.shape(node.output[0], node)
    window = conv_window(node, b.shape(node.input[1], node), x_shape[2:])
    kernel, strides, dilations, begin, end, span = window.kernel, window.strides, window.dilations, window.pads_begin, window.pads_end, window.span
    # ConvTranspose output = s (g - 1) + span - begin - end + output_padding must give back x's size.
    extra = [i - (s * (o - 1) + sp - pb - pe) for i, s, o, sp, pb, pe in zip(x_shape[2:], strides, g_shape[2:], span, begin, end)]
    # Input rows the forward conv never read (floor division) get a zero gradient via output_padding.
    if any(e < 0 or e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise UnsupportedOpError(node.name, "Conv", f"with geometry whose transpose cannot be expressed (output padding {extra})", ["Conv"])
    grad = b.add(
        "ConvTranspose",
        [g, node.input[1]],
        kernel_shape=kernel,
        strides=strides,
        dilations=dilations,
        pads=begin + end,
        output_padding=extra,
        group=int(node_attributes(node).get("group", 1)),
    )
    return {node.input[0]: grad}


def _global_average_pool(b, node, g, need):
    x_shape = b.shape(node.input[0], node)
    area = float(np.prod(x_shape[2:]))
    spread = b.add("Expand", [g, b.add("Shape", [node.input[0]])])
    return {node.input[0]: b.add("Div", [spread, b.const(area)])}


def _average_pool(b, node, g, need):
    """Each input element receives g / kernel size from every window covering it: a depthwise Conv's transpose."""
    attrs = node_attributes(node)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    padded = any(attrs.get("pads", [0])) or (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad).startswith("SAME")
    if padded and not attrs.get("count_include_pad", 0):
        raise UnsupportedOpError(node.name, "AveragePool", "with padding excluded from the average", ["AveragePool without padding, or count_include_pad=1"])
    channels = b.shape(node.input[0], node)[1]
    kernel = list(attrs["kernel_shape"])
    weight = b.const(np.full((channels, 1, *kernel), 1.0 / np.prod(kernel)))
    b.shapes[weight] = (channels, 1, *kernel)
    geometry = {k: v for k, v in attrs.items() if k in ("kernel_shape", "strides", "pads", "auto_pad")}
    depthwise = helper.make_node("Conv", [node.input[0], weight], list(node.output), name=node.name, group=channels, **geometry)
    return _conv(b, depthwise, g, need)


def _max_pool(b, node, g, need):
    """Route each output gradient to the input element the max came from (MaxPool's indices)."""
    attrs = {k: v for k, v in node_attributes(node).items() if k != "storage_order"}
    indices = b.name("maxpool_indices")
    values = b.name("maxpool_values")
    b.nodes.append(helper.make_node("MaxPool", [node.input[0]], [values, indices], name=indices, **attrs))
    flat_shape = b.const([-1], np.int64)
    zeros = b.add("Reshape", [b.add("Mul", [node.input[0], b.const(0.0)]), flat_shape])
    scattered = b.add(
        "ScatterElements",
        [zeros, b.add("Reshape", [indices, flat_shape]), b.add("Reshape", [g, flat_shape])],
        axis=0,
        reduction="add",
    )
    return {node.input[0]: b.add("Reshape", [scattered, b.add("Shape", [node.input[0]])])}


def _batch_norm(b, node, g, need):
    scale, _, _, var = (b.constants.get(n) for n in node.input[1:5])
    if scale is None or var is None:
        raise UnsupportedOpError(node.name, "BatchNormalization", "with parameters computed at run time", ["BatchNormalization with constant parameters"])
    eps = float(node_attributes(node).get("epsilon", 1e-5))
    rank = len(b.shape(node.input[0], node))
    factor = (scale / np.sqrt(var + eps)).reshape((-1,) + (1,) * (rank - 2))
    return {node.input[0]: b.add("Mul", [g, b.const(factor)])}


def _concat(b, node, g, need):
    axis = int(node_attributes(node)["axis"])
    sizes = [b.shape(i, node)[axis] for i in node.input]
    outs = [b.name("split") for _ in node.input]
    b.nodes.append(helper.make_node("Split", [g, b.const(sizes, np.int64)], outs, name=outs[0], axis=axis))
    return {i: o for i, o in zip(node.input, outs) if i in need}


def _pad(b, node, g, need):
    attrs = node_attributes(node)
    mode = attrs.get("mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        raise UnsupportedOpError(node.name, "Pad", "in a mode other than constant", ["Pad(mode=constant)"])
    pads = b.constants.get(node.input[1]) if len(node.input) > 1 else np.array(attrs.get("pads"))
    if pads is None or np.any(pads < 0):
        raise UnsupportedOpError(node.name, "Pad", "with run-time or negative pads", ["Pad with constant non-negative pads"])
    rank = len(pads) // 2
    x_shape = np.array(b.shape(node.input[0], node))
    axes = [axis for axis in range(rank) if pads[axis] or pads[axis + rank]]  # never the batch axis unless padded
    if not axes:
        return {node.input[0]: g}
    starts = pads[axes]
    ends = starts + x_shape[axes]
    return {node.input[0]: b.add("Slice", [g, b.const(starts, np.int64), b.const(ends, np.int64), b.const(axes, np.int64)])}


def _softmax(b, node, g, need):
    axis = int(node_attributes(node).get("axis", -1))
    y = node.output[0]
    dot = b.add("ReduceSum", [b.add("Mul", [g, y]), b.const([axis], np.int64)], keepdims=1)
    return {node.input[0]: b.add("Mul", [y, b.add("Sub", [g, dot])])}


def _log_softmax(b, node, g, need):
    axis = int(node_attributes(node).get("axis", -1))
    total = b.add("ReduceSum", [g, b.const([axis], np.int64)], keepdims=1)
    return {node.input[0]: b.add("Sub", [g, b.add("Mul", [b.add("Exp", [node.output[0]]), total])])}


RULES: dict[str, Rule] = {
    "Identity": _pass, "Dropout": _pass, "Cast": _pass,
    "Flatten": _reshape_back, "Reshape": _reshape_back, "Squeeze": _reshape_back, "Unsqueeze": _reshape_back,
    "Transpose": _transpose,
    "Relu": _relu, "LeakyRelu": _leaky_relu, "Sigmoid": _sigmoid, "Tanh": _tanh, "Clip": _clip,
    "HardSigmoid": _hard_sigmoid, "HardSwish": _hard_swish, "ReduceMean": _reduce, "ReduceSum": _reduce,
    "Add": _add_sub, "Sub": _add_sub, "Mul": _mul, "Div": _div,
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv,
    "MaxPool": _max_pool, "AveragePool": _average_pool, "GlobalAveragePool": _global_average_pool,
    "BatchNormalization": _batch_norm, "Concat": _concat, "Pad": _pad,
    "Softmax": _softmax, "LogSoftmax": _log_softmax,
}
SUPPORTED_OPS = tuple(sorted(RULES)) + ("Constant",)


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims) and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for t in inferred.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    return shapes


def gradient_model(model: onnx.ModelProto, wrt: str, target: str = "probability") -> onnx.ModelProto:
    """A model with inputs (wrt tensor, class index) and outputs (target value per row, gradient)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; accepted: {', '.join(TARGETS)}")
    model = _at_opset(model)
    graph = model.graph
    shapes = _static_shapes(model)
    logits, probability = _logits_and_probability(graph, graph.output[0].name)
    depends = {wrt}
    for node in graph.node:
        if any(i in depends for i in node.input):
            depends.update(node.output)
    if logits not in depends:
        raise UnsupportedModelError(f"the output does not depend on {wrt!r}")
    b = _Builder(graph, shapes)
    one_hot = b.add("OneHot", [CLASS_INPUT, b.const(shapes[logits][-1], np.int64), b.const([0.0, 1.0])], axis=-1)
    if probability is None:
        probability = b.add("Softmax", [logits], axis=-1)
    p_class = b.add("ReduceSum", [b.add("Mul", [probability, one_hot]), b.const([-1], np.int64)], keepdims=0)
    if target == "probability":
        value = p_class
        seed = b.add("Mul", [b.add("Unsqueeze", [p_class, b.const([-1], np.int64)]), b.add("Sub", [one_hot, probability])])
    else:
        value = b.add("ReduceSum", [b.add("Mul", [logits, one_hot]), b.const([-1], np.int64)], keepdims=0)
        seed = b.add("Add", [b.add("Mul", [logits, b.const(0.0)]), one_hot])
    b.grads[logits] = seed
    feeds_logits = _ancestors(graph, logits)
    forward = [n for n in graph.node if n.op_type != "Constant" and any(i in depends for i in n.input)]
    forward = [n for n in forward if n.output[0] in depends and n.output[0] in feeds_logits]
    for node in reversed(forward):
        g = b.grads.get(node.output[0])
        if g is None:
            continue
        rule = RULES.get(node.op_type)
        if rule is None:
            raise UnsupportedOpError(node.name, node.op_type, "in the gradient graph", SUPPORTED_OPS)
        need = {i for i in node.input if i in depends}
        for tensor, grad in rule(b, node, g, need).items():
            if tensor in need:
                b.accumulate(tensor, grad)
    if wrt not in b.grads:
        raise UnsupportedModelError(f"no gradient path from the output to {wrt!r}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.output[:]
    out.graph.input.append(helper.make_tensor_value_info(CLASS_INPUT, TensorProto.INT64, [1]))
    out.graph.node.extend(b.nodes)
    out.graph.initializer.extend(b.initializers)
    out.graph.output.extend([
        helper.make_tensor_value_info(value, TensorProto.FLOAT, None),
        helper.make_tensor_value_info(b.grads[wrt], TensorProto.FLOAT, None),
    ])
    del out.graph.value_info[:]
    return out


def _ancestors(graph: onnx.GraphProto, target: str) -> set[str]:
    """Every tensor `target` is computed from (itself included): one walk back, linear in the graph."""
    producers = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    stack = [target]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is not None:
            stack.extend(i for i in node.input if i and i not in seen)
    return seen


def _at_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The rules emit opset-17 nodes; older models are converted with onnx's version converter."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version >= GRAD_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, GRAD_OPSET)
    except Exception as exc:  # the converter raises several internal types
        raise UnsupportedModelError(f"cannot convert the model from opset {version} to {GRAD_OPSET} for the gradient graph: {exc}") from None


def _optimised_if_equal(proto: onnx.ModelProto, plain, input_name: str, shape: tuple[int, ...], batched: bool):
    """onnxruntime's fully optimised session when it agrees with the plain one on probe points, else
    the plain one (optimisations are not always exact: `smugir.model.make_session`).

    The values must agree to float32 rounding (`equal_to_rounding`), each point's gradient to
    GRADIENT_TOLERANCE in relative L2 norm: a gradient through ReLU-like kinks moves wherever
    rounding puts a value on the other side of a kink, elementwise by a lot. On EfficientNet-Lite0
    the optimised session is 30 % faster, its logits agree to 5e-7 and its gradients to 0.9 %.
    """
    try:
        optimised = make_session(proto, optimize=True)
        probe = np.random.default_rng(1).normal(size=(2 if batched else 1, *shape[1:])).astype(np.float32)
        for class_index in (0, 1):
            feeds = {input_name: probe, CLASS_INPUT: np.array([class_index])}
            (fast_values, fast_grads), (values, grads) = optimised.run(None, feeds), plain.run(None, feeds)
            if not (equal_to_rounding(fast_values, values) and _gradients_agree(fast_grads, grads)):
                return plain
    except Exception:  # an optimiser onnxruntime cannot apply: keep the plain session
        return plain
    return optimised


def _gradients_agree(fast: np.ndarray, slow: np.ndarray) -> bool:
    """Each point's gradient within GRADIENT_TOLERANCE of the plain one, in relative L2 norm."""
    fast, slow = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (fast, slow))
    if fast.shape != slow.shape or not np.all(np.isfinite(fast)):
        return False
    error, size = np.linalg.norm(fast - slow, axis=1), np.linalg.norm(slow, axis=1)
    return bool(np.all(error <= GRADIENT_TOLERANCE * size))


class GradientGraph:
    """Gradients by the appended reverse-mode graph; one onnxruntime call per chunk of points."""

    name = "gradient-graph"

    def __init__(self, model: onnx.ModelProto, wrt: str, target: str = "probability", max_batch_elements: int = BATCH_ELEMENTS):
        self.wrt = wrt
        self.shape = _static_shapes(model).get(wrt)
        if self.shape is None:
            raise UnsupportedModelError(f"the shape of {wrt!r} is not known statically")
        proto = gradient_model(model, wrt, target)
        plain, self.batched = batched_session(proto, wrt, self.shape, {CLASS_INPUT: np.array([0])})
        self.session = _optimised_if_equal(with_dynamic_batch(proto) if self.batched else proto, plain, wrt, self.shape, self.batched)
        self.chunk = max(1, max_batch_elements // max(1, int(np.prod(self.shape)))) if self.batched else 1

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points, dtype=np.float32).reshape((-1, *self.shape[1:]))
        cls = np.array([class_index], dtype=np.int64)
        values, grads = [], []
        for start in range(0, len(points), self.chunk):
            value, grad = run_session(self.session, None, {self.wrt: points[start : start + self.chunk], CLASS_INPUT: cls})
            values.append(np.asarray(value).reshape(-1))
            grads.append(np.asarray(grad).reshape((-1, *self.shape[1:])))
        return np.concatenate(values).astype(np.float64), np.concatenate(grads).astype(np.float64)


class FiniteDifferences:
    """Central differences on onnxruntime, the perturbations of a point run in batches.

    The step is relative, h = eps^(1/3) * max(1, |x|) with float32's eps, balancing truncation
    against rounding; the difference actually taken (after rounding to float32) is divided by.
    """

    name = "finite-differences"

    def __init__(self, model: onnx.ModelProto, target: str = "probability", max_batch_elements: int = BATCH_ELEMENTS):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; accepted: {', '.join(TARGETS)}")
        from smugir.model import expose_outputs

        graph = model.graph
        initializers = {t.name for t in graph.initializer}
        self.input = next(v.name for v in graph.input if v.name not in initializers)
        self.shape = _static_shapes(model)[self.input]
        self.logits, _ = _logits_and_probability(graph, graph.output[0].name)
        exposed = expose_outputs(model, [self.logits])
        del exposed.graph.output[:-1]  # keep only the logits
        self.session, batched = batched_session(exposed, self.input, self.shape, {})
        self.chunk = max(1, max_batch_elements // max(1, int(np.prod(self.shape)))) if batched else 1
        self.max_batch_elements = max_batch_elements
        self.target = target

    def _values(self, inputs: np.ndarray, class_index: int) -> np.ndarray:
        rows = []
        for start in range(0, len(inputs), self.chunk):
            (logits,) = run_session(self.session, None, {self.input: inputs[start : start + self.chunk].astype(np.float32)})
            rows.append(np.asarray(logits, dtype=np.float64).reshape(-1, np.asarray(logits).shape[-1]))
        logits = np.concatenate(rows)
        if self.target == "logit":
            return logits[:, class_index]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p[:, class_index] / p.sum(axis=1)

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points, dtype=np.float64).reshape((-1, *self.shape[1:]))
        eps = float(np.finfo(np.float32).eps) ** (1 / 3)
        grads = []
        for point in points:
            flat = point.reshape(-1)
            steps = eps * np.maximum(1.0, np.abs(flat))
            grad = np.empty(flat.size)
            rows = max(1, self.max_batch_elements // max(1, flat.size))  # perturbed copies held at once
            for start in range(0, flat.size, rows):  # never all n x n perturbations at once
                idx = np.arange(start, min(start + rows, flat.size))
                plus = np.repeat(flat[None], idx.size, axis=0)
                minus = plus.copy()
                plus[np.arange(idx.size), idx] += steps[idx]
                minus[np.arange(idx.size), idx] -= steps[idx]
                plus, minus = plus.astype(np.float32), minus.astype(np.float32)
                taken = plus[np.arange(idx.size), idx].astype(np.float64) - minus[np.arange(idx.size), idx].astype(np.float64)
                f_plus = self._values(plus.reshape((-1, *point.shape)), class_index)
                f_minus = self._values(minus.reshape((-1, *point.shape)), class_index)
                grad[idx] = (f_plus - f_minus) / taken
            grads.append(grad.reshape(point.shape))
        return self._values(points, class_index), np.stack(grads)
