"""Follow the graph as a DAG from the data input to the first linear layer.

Every node reached from the data input (before a Gemm, MatMul or Conv) must have a rule; each
tensor it produces gets its own `InputAffine`. Branches may part (per-channel Gather, Slice,
Split) and join again (Concat); a branch may also end unread. Exactly one linear node must read
what the input became, and nothing else may carry the input past it, or the rest of the network
would not be a function of the first layer's activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from smugir.affine import InputAffine, identity_affine
from smugir.errors import UnsupportedModelError, UnsupportedOpError
from smugir.folding import SHAPE_OPS
from smugir.reader.graph import LINEAR_OPS, LOW_PRECISION, ReaderGraph, check_elements, node_label
from smugir.reader.rules import PREPROCESSING_RULES, VALUE_OPS
from smugir.reader.rules.casts import in_low_precision
from smugir.reader.step import Step


@dataclass(frozen=True)
class Reached:
    """The first linear node, the tensor it reads (z = affine(x')) and that tensor's element type."""

    node: onnx.NodeProto
    tensor: str
    affine: InputAffine
    dtype: int
    described: tuple[str, ...]


def walk_to_linear(graph: ReaderGraph, input_name: str, shape: tuple[int, ...], dtype: int, float32_arithmetic: bool = False) -> Reached:
    """`float32_arithmetic`: float16 Sub/Add/Mul/Div computed in float32 without roundings (onnxruntime's CPU)."""
    check_elements(onnx.NodeProto(name=input_name, op_type="input"), shape)
    affines: dict[str, InputAffine] = {input_name: identity_affine(shape)}
    n_inputs = affines[input_name].index.size
    dtypes, described, linear = {input_name: dtype}, [], []
    for node in graph.nodes:
        followed = [n for n in dict.fromkeys(node.input) if n in affines]
        if not followed or node.op_type in SHAPE_OPS:  # a shape read carries no values of the input
            continue
        if node.op_type in LINEAR_OPS:
            linear.append((node, followed))
            continue
        if linear:
            raise UnsupportedModelError(
                f"node {node_label(node)!r} ({node.op_type}) reads {followed[0]!r}, computed from the data input, besides the "
                f"first linear layer {node_label(linear[0][0])!r}; the rest of the network must read the input only through that layer"
            )
        rule = PREPROCESSING_RULES.get(node.op_type)
        if rule is None:
            where = "right after the data input" if followed == [input_name] else "between the data input and the first linear layer"
            raise UnsupportedOpError(node_label(node), node.op_type, where, tuple(PREPROCESSING_RULES) + LINEAR_OPS)
        step = Step(node, graph, {n: affines[n] for n in followed}, dtypes[followed[0]], n_inputs, float32_arithmetic)
        outputs, label = rule(step)
        to = _output_type(node, step.dtype)
        for name, affine in zip(node.output, outputs):
            if node.op_type in VALUE_OPS and not float32_arithmetic:
                affine = in_low_precision(affine, to, node, n_inputs)
            check_elements(node, affine.shape)
            affines[name], dtypes[name] = affine, to
            if name in graph.outputs:
                raise UnsupportedModelError(f"tensor {name!r} reaches the model output before any linear layer ({', '.join(LINEAR_OPS)})")
        described.append(f"{label} ({node_label(node)}) -> {' + '.join(str(list(a.shape)) for a in outputs)}")
    if input_name in graph.outputs or not linear:
        raise UnsupportedModelError(f"the data input {input_name!r} reaches the model output before any linear layer ({', '.join(LINEAR_OPS)})")
    if len({id(n) for n, _ in linear}) > 1:
        names = ", ".join(f"{node_label(n)!r} ({n.op_type})" for n, _ in linear)
        raise UnsupportedModelError(f"the data input reaches {len(linear)} linear layers ({names}); smugir needs one first layer")
    node, followed = linear[0]
    if len(followed) != 1:
        raise UnsupportedModelError(f"{node.op_type} node {node_label(node)!r} reads the data input through {len(followed)} operands; smugir needs it in one")
    tensor = followed[0]
    if dtypes[tensor] in LOW_PRECISION:
        raise UnsupportedModelError(
            f"{node.op_type} node {node_label(node)!r} computes in {LOW_PRECISION[dtypes[tensor]]}, whose rounding of sums "
            "smugir does not model; it reads first layers computed in float32 or float64"
        )
    return Reached(node, tensor, affines[tensor], dtypes[tensor], tuple(described))


def _output_type(node: onnx.NodeProto, dtype: int) -> int:
    if node.op_type == "Cast":
        return next(a.i for a in node.attribute if a.name == "to")
    return dtype
