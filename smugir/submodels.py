"""Sub-models of a loaded graph: tensors exposed as outputs, the suffix from a tensor to the output, batch 1."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.shape_inference
import onnx.utils

from smugir.errors import UnsupportedModelError
from smugir.graph_walk import ancestors, node_reads
from smugir.budget import require
from smugir.sessions import declared_bytes, equal_to_rounding, make_session, run_session
from smugir.suffix_shapes import rewrite_shape_reads, shape_reads_before
from smugir.weightless import infer_shapes


def expose_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of the model that also outputs the named intermediate tensors."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {v.name: v for v in exposed.graph.value_info}
    present = {o.name for o in exposed.graph.output}
    produced = {out for node in exposed.graph.node for out in node.output}
    for name in names:
        if name in present:
            continue
        if name not in produced:
            raise UnsupportedModelError(f"tensor {name!r} is not produced by any node of the model")
        value = onnx.ValueInfoProto()
        if name in known:
            value.CopyFrom(known[name])
        else:
            value.name = name
        exposed.graph.output.append(value)
        present.add(name)
    return exposed


def suffix_model(proto: onnx.ModelProto, from_tensor: str, to_tensor: str | None = None) -> onnx.ModelProto:
    """The part of the graph from `from_tensor` to the output, as a model whose only input is that tensor.

    Raises `UnsupportedModelError` naming the node that also reads a graph input (e.g. a skip
    connection from the raw input), because then the output is not a function of that tensor alone.
    Reads of the input's shape (a dynamic batch) are rewritten from `from_tensor`'s shape
    (`smugir.suffix_shapes`) and the suffix is then checked against the whole model on onnxruntime.
    """
    to_tensor = to_tensor or proto.graph.output[0].name
    reads = shape_reads_before(proto, from_tensor, to_tensor)
    if reads:
        rewritten, batched = rewrite_shape_reads(proto, from_tensor, reads)
        suffix = _suffix(rewritten, from_tensor, to_tensor)
        _check_suffix(proto, suffix, from_tensor, to_tensor, batched)
        return suffix
    return _suffix(proto, from_tensor, to_tensor)


def _suffix(proto: onnx.ModelProto, from_tensor: str, to_tensor: str) -> onnx.ModelProto:
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = {v.name for v in proto.graph.input} - initializers
    needed = ancestors(proto.graph, [to_tensor], stop_at=initializers | {from_tensor})
    for node in proto.graph.node:
        if from_tensor in node.output or not any(t in needed for t in node.output):
            continue
        for tensor in node_reads(node):
            if tensor in graph_inputs and tensor != from_tensor:
                raise UnsupportedModelError(
                    f"the output {to_tensor!r} is not a function of {from_tensor!r} alone: node {node.name!r} "
                    f"({node.op_type}) also reads the graph input {tensor!r}; no suffix model exists"
                )
    if from_tensor not in needed or from_tensor == to_tensor:
        raise UnsupportedModelError(f"the output {to_tensor!r} does not depend on {from_tensor!r}")
    return onnx.utils.Extractor(proto).extract_model([from_tensor], [to_tensor])


def _check_suffix(whole: onnx.ModelProto, suffix: onnx.ModelProto, from_tensor: str, to_tensor: str, batched: bool) -> None:
    """The rewritten suffix on the whole model's `from_tensor` gives its `to_tensor` (batch 1, and 2 if it reads the batch)."""
    initializers = {t.name for t in whole.graph.initializer}
    data = next(v for v in whole.graph.input if v.name not in initializers)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in data.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(data.type.tensor_type.elem_type)
    require(f"checking the suffix model from {from_tensor!r} on onnxruntime (every tensor the model declares, batch 2)",
            4 * declared_bytes(whole))
    whole_session = make_session(expose_outputs(whole, [from_tensor]) if from_tensor not in {o.name for o in whole.graph.output} else whole)
    suffix_session = make_session(suffix)
    rng = np.random.default_rng(0)
    for batch in (1, 2) if dims and dims[0] is None and batched else (1,) if dims and dims[0] is None else (None,):
        shape = [batch if d is None and axis == 0 else d for axis, d in enumerate(dims)]
        if any(d is None for d in shape):
            return  # a symbolic dim other than the batch: the reader refuses such inputs itself
        x = rng.normal(size=shape).astype(dtype) if np.issubdtype(dtype, np.floating) else np.zeros(shape, dtype)  # token ids: 0
        expected, h = run_session(whole_session, [to_tensor, from_tensor], {data.name: x})
        (got,) = run_session(suffix_session, [to_tensor], {from_tensor: h})
        if not equal_to_rounding(got, expected):
            raise UnsupportedModelError(
                f"the suffix model from {from_tensor!r} to {to_tensor!r}, with the input's shape read from {from_tensor!r}, "
                f"does not reproduce the model on onnxruntime at batch {batch or shape[0]}; no suffix model exists"
            )


def with_batch_of_one(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose symbolic input/output dims are 1, so shape inference knows every shape."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for value in list(fixed.graph.input) + list(fixed.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    del fixed.graph.value_info[:]
    return infer_shapes(fixed)  # the weights set aside: seconds on a 100 MB model
