"""Read a whole ReLU MLP (after its first layer) as dense layers, for the whole-network encoding.

Only the chain post-activation -> (Gemm | MatMul[+Add]) -> Relu -> ... -> last dense layer is
accepted, with Flatten/Identity/Reshape-to-2-D as no-ops; the last layer's output must be the
model output (a trailing Softmax is allowed: it does not change which logit is largest).
"""

from __future__ import annotations

import numpy as np

from smugir.errors import UnsupportedModelError, UnsupportedOpError
from smugir.firstlayer import DenseLayer, FirstLayer
from smugir.model import Model
from smugir import weights

_NO_OPS = ("Identity", "Flatten", "Reshape", "Dropout")
_ACCEPTED = ("Gemm", "MatMul", "Add", "Relu", "Softmax", *_NO_OPS)


def mlp_layers(model: Model, first: FirstLayer) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (out, in), b (out,)) float64 of every dense layer after the first, in order."""
    if not isinstance(first, DenseLayer) or first.activation.kind != "Relu":
        raise UnsupportedModelError("the whole-network encoding needs a ReLU MLP: a dense first layer followed by Relu")
    constants = {t.name: weights.array(t).astype(np.float64) for t in model.proto.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.proto.graph.node:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    tensor, pending_relu = first.post_name, True
    while tensor != model.output_name:
        nodes = consumers.get(tensor, [])
        if len(nodes) != 1:
            raise UnsupportedModelError(f"tensor {tensor!r} is read by {len(nodes)} nodes; the whole-network encoding needs a plain MLP chain")
        node = nodes[0]
        op = node.op_type
        if op not in _ACCEPTED:
            raise UnsupportedOpError(node.name, op, "in the MLP after the first layer", _ACCEPTED)
        if op == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            if "transA" in attrs and attrs["transA"].i:
                raise UnsupportedModelError(f"Gemm node {node.name!r} uses transA; not supported in the whole-network encoding")
            alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
            beta = attrs["beta"].f if "beta" in attrs else 1.0
            w = _constant(constants, node.input[1], node)
            w = w if ("transB" in attrs and attrs["transB"].i) else w.T
            b = beta * _constant(constants, node.input[2], node).reshape(-1) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
            layers.append((alpha * w, np.broadcast_to(b, (w.shape[0],)).copy()))
            pending_relu = False
        elif op == "MatMul":
            w = _constant(constants, node.input[1], node).T
            layers.append((w, np.zeros(w.shape[0])))
            pending_relu = False
        elif op == "Add":
            if not layers or pending_relu:
                raise UnsupportedModelError(f"Add node {node.name!r} does not follow a MatMul; not an MLP bias")
            other = node.input[1] if node.input[0] == tensor else node.input[0]
            w, b = layers[-1]
            layers[-1] = (w, b + _constant(constants, other, node).reshape(-1))
        elif op == "Relu":
            if pending_relu:
                raise UnsupportedModelError(f"Relu node {node.name!r} follows another Relu")
            pending_relu = True
        elif op == "Softmax" and node.output[0] != model.output_name:
            raise UnsupportedModelError(f"Softmax node {node.name!r} is not the last node")
        tensor = node.output[0]
    if pending_relu:
        raise UnsupportedModelError(
            "the model ends with a Relu on its class scores; the whole-network encoding compares raw logits, "
            "so it needs the last dense layer's output (or a Softmax of it) as the model output"
        )
    if not layers:
        raise UnsupportedModelError("no dense layer follows the first layer")
    return layers


def _constant(constants: dict[str, np.ndarray], name: str, node) -> np.ndarray:
    if name not in constants:
        raise UnsupportedModelError(f"node {node.name!r} ({node.op_type}) reads {name!r}, which is not an initializer")
    return constants[name]
