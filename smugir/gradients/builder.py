"""The reverse-mode pass: walks the forward graph backwards and asks each node's rule for the
gradients of its inputs, appending the nodes the rules emit to a copy of the model.

The rules live in `smugir.gradients.rules` (one small module per op family); this module gives
them the `Builder`, whose helpers (broadcast sums, index routing, opset-aware reductions) keep each
rule a few lines long.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from smugir.convolution import node_attributes
from smugir.errors import UnsupportedModelError, UnsupportedOpError
from smugir.graph_walk import ancestors
from smugir.gradients.rules import NO_GRADIENT, RULES, SUPPORTED_OPS
from smugir.gradients.shapes import TensorFacts
from smugir.weightless import convert_version
from smugir import weights

TARGETS = ("probability", "logit")
GRAD_OPSET = 17  # the lowest opset the emitted nodes are written for (ScatterElements' reduction)
CLASS_INPUT = "smugir_class_index"
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
MAX_FLOAT_INDEX = 1 << 24  # float32 holds every integer up to here exactly (index routing through float ops)


class Builder:
    """Accumulates the backward nodes; `grads` maps a forward tensor to its gradient tensor."""

    def __init__(self, graph: onnx.GraphProto, facts: TensorFacts, opset: int, dtype: int):
        self.graph = graph
        self.facts = facts
        self.opset = opset
        self.dtype = dtype  # the model's float type: constants and gradients are of it
        self.np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0
        self.grads: dict[str, str] = {}
        self.constants = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = node.attribute[0].t

    # ---- emitting nodes -----------------------------------------------------------------------
    def name(self, hint: str) -> str:
        self.counter += 1
        return f"smugir_grad_{hint}_{self.counter}"

    def add(self, op: str, inputs: list[str], **attrs) -> str:
        return self.add_many(op, inputs, 1, **attrs)[0]

    def add_many(self, op: str, inputs: list[str], outputs: int, **attrs) -> list[str]:
        names = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=names[0], **attrs))
        return names

    def const(self, value, dtype=None) -> str:
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype or self.np_dtype), name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64)

    def accumulate(self, tensor: str, grad: str) -> None:
        self.grads[tensor] = self.add("Add", [self.grads[tensor], grad]) if tensor in self.grads else grad

    # ---- what the rules read --------------------------------------------------------------------
    def shape(self, tensor: str, node: onnx.NodeProto) -> tuple[int, ...]:
        shape = self.facts.shape(tensor)
        if shape is None:
            raise UnsupportedModelError(f"the shape of {tensor!r} (read by node {node.name!r}) is unknown; the gradient rule needs it")
        return shape

    def rank(self, tensor: str, node: onnx.NodeProto) -> int:
        return len(self.shape(tensor, node))

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None (computed at run time)."""
        proto = self.constants.get(tensor)
        return None if proto is None else weights.array(proto)

    def axes(self, node: onnx.NodeProto, input_index: int = 1) -> list[int] | None:
        """A node's axes, from its attribute or its constant input; None when absent."""
        if len(node.input) > input_index and node.input[input_index]:
            value = self.constant(node.input[input_index])
            if value is None:
                raise UnsupportedOpError(node.name, node.op_type, "with axes computed at run time", [f"{node.op_type} with constant axes"])
            return [int(a) for a in np.ravel(value)]
        axes = node_attributes(node).get("axes")
        return None if axes is None else [int(a) for a in axes]

    # ---- helpers shared by the rules ------------------------------------------------------------
    def reduce(self, op: str, x: str, axes: list[int], keepdims: int = 1) -> str:
        """A reduction over constant axes, written for the model's opset (axes became an input in 18)."""
        if op == "ReduceSum" or self.opset >= 18:
            return self.add(op, [x, self.ints(axes)], keepdims=keepdims)
        return self.add(op, [x], axes=list(axes), keepdims=keepdims)

    def zeros_like(self, tensor: str) -> str:
        zero = numpy_helper.from_array(np.zeros(1, self.np_dtype))
        return self.add("ConstantOfShape", [self.add("Shape", [tensor])], value=zero)

    def unbroadcast(self, grad: str, grad_shape: tuple[int, ...], operand: str, node: onnx.NodeProto) -> str:
        """Sum a gradient of shape `grad_shape` over the axes along which `operand` was broadcast."""
        in_shape = self.shape(operand, node)
        if tuple(in_shape) == tuple(grad_shape):
            return grad
        padded = (1,) * (len(grad_shape) - len(in_shape)) + tuple(in_shape)
        axes = [i for i, (o, s) in enumerate(zip(grad_shape, padded)) if s == 1 and o != 1]
        reduced = self.reduce("ReduceSum", grad, axes) if axes else grad
        return self.add("Reshape", [reduced, self.add("Shape", [operand])])

    def route(self, node: onnx.NodeProto, g: str, data: int = 0, through_float: bool = False) -> str:
        """The gradient of an op that only moves or copies elements of input `data` (Gather, Slice,
        Tile, DepthToSpace, ...): run the same op on the element indices of that input, then add
        each output gradient at the index it came from (ScatterElements, reduction add). Exact for
        any attributes and run-time starts, indices or repeats; copies get the sum of their
        gradients. `through_float` runs the op on float indices (for ops with no int64 kernel)."""
        x = node.input[data]
        shape = self.add("Shape", [x])
        flat = self.add("Range", [self.const(0, np.int64), self.add("Size", [x]), self.const(1, np.int64)])
        index = self.add("Reshape", [flat, shape])
        if through_float:
            known = self.facts.shape(x)
            if known is None or np.prod(known) > MAX_FLOAT_INDEX:
                raise UnsupportedOpError(node.name, node.op_type, f"on more than {MAX_FLOAT_INDEX} elements or of unknown size", [node.op_type])
            index = self.add("Cast", [index], to=TensorProto.FLOAT)
        inputs = list(node.input)
        inputs[data] = index
        moved = self.name(f"{node.op_type.lower()}_index")
        outputs = [moved if k == 0 else self.name("unused") for k in range(len(node.output))]
        self.nodes.append(helper.make_node(node.op_type, inputs, outputs, name=moved, domain=node.domain, **node_attributes(node)))
        if through_float:
            moved = self.add("Cast", [moved], to=TensorProto.INT64)
        minus_one = self.ints([-1])
        zeros = self.add("Reshape", [self.zeros_like(x), minus_one])
        summed = self.add("ScatterElements", [zeros, self.add("Reshape", [moved, minus_one]), self.add("Reshape", [g, minus_one])],
                          axis=0, reduction="add")
        return self.add("Reshape", [summed, shape])


def _logits_and_probability(graph: onnx.GraphProto, output: str) -> tuple[str, str | None]:
    """The logits tensor, and the probability tensor if the graph already ends in Softmax."""
    producer = next((n for n in graph.node if output in n.output), None)
    if producer is not None and producer.op_type == "Softmax":
        return producer.input[0], output
    return output, None


def _differentiable(graph: onnx.GraphProto, wrt: str, facts: TensorFacts) -> set[str]:
    """Tensors computed from `wrt` along differentiable paths: not through the ops that pass no
    gradient (Shape, comparisons, ArgMax, ...) and not into integer or boolean tensors."""
    depends = {wrt}
    for node in graph.node:
        if node.op_type in NO_GRADIENT or not any(i in depends for i in node.input):
            continue
        depends.update(o for o in node.output if o and facts.elem_type(o) in (None, *FLOAT_TYPES))
    return depends


def gradient_model(model: onnx.ModelProto, wrt: str, target: str = "probability") -> onnx.ModelProto:
    """A model with inputs (wrt tensor, class index) and outputs (target value per row, gradient)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; accepted: {', '.join(TARGETS)}")
    model = _at_opset(model)
    graph = model.graph
    facts = TensorFacts(model)
    logits, probability = _logits_and_probability(graph, graph.output[0].name)
    depends = _differentiable(graph, wrt, facts)
    if logits not in depends:
        raise UnsupportedModelError(f"the output does not depend on {wrt!r}")
    dtype = facts.elem_type(wrt) or TensorProto.FLOAT
    b = Builder(graph, facts, _opset(model), dtype)
    one_hot = b.add("OneHot", [CLASS_INPUT, b.const(b.shape(logits, graph.node[-1])[-1], np.int64), b.const([0.0, 1.0], np.float32)], axis=-1)
    if dtype != TensorProto.FLOAT:  # onnxruntime's OneHot has no float64 kernel
        one_hot = b.add("Cast", [one_hot], to=dtype)
    if probability is None:
        probability = b.add("Softmax", [logits], axis=-1)
    p_class = b.add("ReduceSum", [b.add("Mul", [probability, one_hot]), b.ints([-1])], keepdims=0)
    if target == "probability":
        value = p_class
        seed = b.add("Mul", [b.add("Unsqueeze", [p_class, b.ints([-1])]), b.add("Sub", [one_hot, probability])])
    else:
        value = b.add("ReduceSum", [b.add("Mul", [logits, one_hot]), b.ints([-1])], keepdims=0)
        seed = b.add("Add", [b.add("Mul", [logits, b.const(0.0)]), one_hot])
    b.grads[logits] = seed
    feeds_logits = ancestors(graph, [logits])
    forward = [n for n in graph.node if n.op_type != "Constant" and any(o in depends and o in feeds_logits for o in n.output)]
    for node in reversed(forward):
        if node.output[0] not in b.grads and not (node.op_type == "Split" and any(o in b.grads for o in node.output)):
            continue
        rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rule is None:
            raise UnsupportedOpError(node.name, node.op_type, "in the gradient graph", SUPPORTED_OPS)
        need = {i for i in node.input if i in depends}
        for tensor, grad in rule(b, node, b.grads.get(node.output[0]), need).items():
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
        helper.make_tensor_value_info(value, dtype, None),
        helper.make_tensor_value_info(b.grads[wrt], dtype, None),
    ])
    del out.graph.value_info[:]
    return out


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _at_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The rules emit nodes valid from opset 17 on; older models are converted with onnx's version converter."""
    version = _opset(model)
    if version >= GRAD_OPSET:
        return model
    try:
        return convert_version(model, GRAD_OPSET)
    except Exception as exc:  # the converter raises several internal types
        raise UnsupportedModelError(f"cannot convert the model from opset {version} to {GRAD_OPSET} for the gradient graph: {exc}") from None
