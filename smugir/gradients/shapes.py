"""Shapes and element types of a model's tensors, for the gradient rules that need them.

ONNX shape inference (with data propagation, so Reshape targets computed from `Shape` are
followed) knows most of them. Where it does not (dynamo exports, dynamic batch, a Transpose of a
symbolic shape), ONE onnxruntime run on a random input exposes every tensor still unknown: the
model is a suffix with a fixed-size input, so those shapes are those of any input.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from smugir.errors import UnsupportedModelError
from smugir.weightless import infer_shapes


class TensorFacts:
    """`shape(name)` and `elem_type(name)`, from shape inference, else from one probe run."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, int] = {}
        try:
            inferred = infer_shapes(model, data_prop=True)
        except Exception:  # noqa: BLE001 (shape inference raises several internal types; the probe still knows)
            inferred = model
        graph = inferred.graph
        for value in list(graph.value_info) + list(graph.input) + list(graph.output):
            tensor_type = value.type.tensor_type
            if tensor_type.elem_type:
                self.types[value.name] = tensor_type.elem_type
            dims = tensor_type.shape.dim
            if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self.shapes[value.name] = tuple(d.dim_value for d in dims)
        for tensor in graph.initializer:
            self.shapes[tensor.name] = tuple(tensor.dims)
            self.types[tensor.name] = tensor.data_type
        self.probed = False

    def shape(self, name: str) -> tuple[int, ...] | None:
        if name not in self.shapes and not self.probed:
            self.probe()
        return self.shapes.get(name)

    def elem_type(self, name: str) -> int | None:
        return self.types.get(name)

    def probe(self) -> None:
        """One onnxruntime run exposing every tensor whose shape inference left unknown."""
        from smugir.model import make_session, run_session

        self.probed = True
        graph = self.model.graph
        initializers = {t.name for t in graph.initializer}
        produced = [out for node in graph.node if node.op_type != "Constant" for out in node.output if out]
        unknown = [name for name in dict.fromkeys(produced) if name not in self.shapes]
        if not unknown:
            return
        feeds = {}
        rng = np.random.default_rng(0)
        for value in graph.input:
            if value.name in initializers:
                continue
            shape = self.shapes.get(value.name)
            if shape is None:
                return  # no input to probe with: the rule that needs the shape names the tensor
            dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            feeds[value.name] = rng.normal(size=shape).astype(dtype)
        exposed = onnx.ModelProto()
        exposed.CopyFrom(self.model)
        present = {o.name for o in exposed.graph.output}
        exposed.graph.output.extend(onnx.ValueInfoProto(name=name) for name in unknown if name not in present)
        names = [o.name for o in exposed.graph.output]
        try:
            values = run_session(make_session(exposed), names, feeds)
        except UnsupportedModelError:
            return  # onnxruntime cannot run the model: the rule that needs a shape names the tensor
        for name, value in zip(names, values):
            value = np.asarray(value)
            self.shapes.setdefault(name, tuple(value.shape))
            self.types.setdefault(name, helper.np_dtype_to_tensor_dtype(value.dtype))
