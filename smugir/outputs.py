"""Which output holds the class scores, for models with several (skl2onnx writes a label and probabilities).

A model with one output is read as it is. With several, the float class scores are chosen by type
and shape ((C,) or (N, C) float), or by name (`--output NAME`); a ZipMap output (a sequence of
maps, as skl2onnx writes probabilities) stands for its float tensor input. The graph is then cut
to what the chosen scores need, so every later step sees a model with one output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from smugir.errors import NotAClassifierError, UnsupportedModelError
from smugir.graph_walk import ancestors


@dataclass(frozen=True)
class Candidate:
    """A graph output and the float tensor that stands for it (itself, or a ZipMap's input)."""

    name: str
    tensor: str
    value: onnx.ValueInfoProto
    note: str  # how `smug inspect` and the messages describe it

    @property
    def scores(self) -> bool:
        """Float class scores by type and shape: (C,) or (N, C), C >= 2 or symbolic."""
        tensor_type = self.value.type.tensor_type
        if not self.value.type.HasField("tensor_type") or tensor_type.elem_type not in _FLOATS:
            return False
        if not tensor_type.HasField("shape"):
            return True
        dims = tensor_type.shape.dim
        return len(dims) in (1, 2) and not (dims[-1].HasField("dim_value") and dims[-1].dim_value < 2)


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def choose_output(proto: onnx.ModelProto, path: str, name: str | None = None) -> tuple[onnx.ModelProto, str]:
    """`proto` cut to its class-score output (the named one, or the only float scores among several),
    and how that choice reads in `smug inspect` ('' for a model with one output)."""
    outputs = list(proto.graph.output)
    if name is None and len(outputs) == 1:
        return proto, ""
    candidates = [_candidate(proto, value) for value in outputs]
    listing = ", ".join(f"{c.name!r} ({c.note})" for c in candidates)
    if name is not None:
        chosen = [c for c in candidates if name in (c.name, c.tensor)]
        if not chosen:
            raise UnsupportedModelError(f"{path!r} has no output {name!r}; its outputs: {listing}")
        if not chosen[0].scores:
            raise NotAClassifierError(f"the output {name!r} of {path!r} is {chosen[0].note}, not float class scores (C,) or (N, C)")
    else:
        chosen = [c for c in candidates if c.scores]
        if len(chosen) != 1:
            what = "none is float class scores" if not chosen else f"{len(chosen)} are float class scores"
            raise UnsupportedModelError(
                f"{path!r} has {len(outputs)} outputs ({listing}); {what}; choose the class scores with --output NAME"
            )
    others = [c.name for c in candidates if c is not chosen[0]]
    what = f"the float scores of the ZipMap output {chosen[0].name!r}" if chosen[0].tensor != chosen[0].name else "chosen"
    note = f"{what}{' by --output' if name is not None else ' by type and shape'}; not explained: {', '.join(map(repr, others)) or 'none'}"
    return _cut_to(proto, chosen[0]), note


def _candidate(proto: onnx.ModelProto, value: onnx.ValueInfoProto) -> Candidate:
    producer = next((n for n in proto.graph.node if value.name in n.output), None)
    if producer is not None and producer.op_type == "ZipMap" and producer.domain == "ai.onnx.ml":
        tensor = producer.input[0]
        known = {v.name: v for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
        inner = known.get(tensor) or onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
        return Candidate(value.name, tensor, inner, f"ZipMap of the float tensor {tensor!r}: {_describe(inner)}")
    return Candidate(value.name, value.name, value, _describe(value))


def _describe(value: onnx.ValueInfoProto) -> str:
    if not value.type.HasField("tensor_type"):
        return f"a {value.type.WhichOneof('value') or 'value'} of non-tensor type"
    tensor_type = value.type.tensor_type
    try:
        dtype = str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)))
    except (KeyError, TypeError, ValueError):
        dtype = f"type {tensor_type.elem_type}"
    if not tensor_type.HasField("shape"):
        return f"{dtype}, shape unknown"
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
    return f"{dtype} {dims}"


def _cut_to(proto: onnx.ModelProto, chosen: Candidate) -> onnx.ModelProto:
    """A copy with `chosen.tensor` as the only output and only the nodes and initializers it needs."""
    cut = onnx.ModelProto()
    cut.CopyFrom(proto)
    graph = cut.graph
    needed = ancestors(graph, [chosen.tensor])
    kept = [node for node in graph.node if any(out in needed for out in node.output)]
    del graph.node[:]
    graph.node.extend(kept)
    dropped = {t.name for t in graph.initializer if t.name not in needed}
    initializers = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    inputs = [v for v in graph.input if v.name not in dropped]  # IR < 4 lists initializers as inputs too
    del graph.input[:]
    graph.input.extend(inputs)
    value = onnx.ValueInfoProto()
    value.CopyFrom(chosen.value)
    del graph.output[:]
    graph.output.append(value)
    domains = {node.domain or "" for node in kept} | {""}
    opsets = [o for o in cut.opset_import if (o.domain or "") in domains or o.domain == "ai.onnx"]
    del cut.opset_import[:]
    cut.opset_import.extend(opsets)
    return cut
