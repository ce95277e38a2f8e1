"""Safe loading of untrusted ONNX files, onnxruntime sessions, and the sub-models later steps need.

A model file may come from anyone: external tensor data is read only from inside the model's own
folder, the checker and shape inference run before anything else looks at the graph, and every
failure becomes a `SmugError` that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.shape_inference
import onnx.utils
import onnxruntime as ort
from onnx import numpy_helper
from google.protobuf.message import DecodeError

from smugir.errors import ModelFileError, UnsafeModelError, UnsupportedModelError
from smugir.folding import FoldingReport, fold_constants


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, or strings for symbolic dims) and numpy dtype of a graph input/output."""

    name: str
    shape: tuple[int | str, ...]
    dtype: np.dtype

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype)}


@dataclass(eq=False)
class Model:
    """A checked ONNX classifier with one data input and one output."""

    path: Path
    proto: onnx.ModelProto
    sha256: str
    data_input: TensorInfo
    output: TensorInfo
    folding: FoldingReport | None = None  # what load_model folded (constant subgraphs)
    _sessions: dict = field(default_factory=dict, repr=False)

    @property
    def input_name(self) -> str:
        return self.data_input.name

    @property
    def output_name(self) -> str:
        return self.output.name

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        """The data input's shape for one sample: a symbolic leading (batch) dim becomes 1."""
        return resolve_batch_shape(self.data_input)

    @property
    def batch_dynamic(self) -> bool:
        """Whether the input's leading dim is symbolic, so one run can hold several samples."""
        return bool(self.data_input.shape) and not isinstance(self.data_input.shape[0], int)

    @property
    def opset(self) -> int:
        return next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 0)

    @cached_property
    def nodes_by_output(self) -> dict[str, onnx.NodeProto]:
        return {out: node for node in self.proto.graph.node for out in node.output}

    def session(self, extra_outputs: tuple[str, ...] = ()) -> ort.InferenceSession:
        """An onnxruntime session (cached), optionally with intermediate tensors as extra outputs."""
        key = tuple(extra_outputs)
        if key not in self._sessions:
            proto = expose_outputs(self.proto, list(extra_outputs)) if extra_outputs else self.proto
            self._sessions[key] = make_session(proto)
        return self._sessions[key]

    def run(self, x: np.ndarray, extra_outputs: tuple[str, ...] = ()) -> list[np.ndarray]:
        """Run one sample of shape `input_shape`; returns [output, *extra_outputs]."""
        feed = {self.input_name: np.asarray(x, dtype=self.data_input.dtype).reshape(self.input_shape)}
        names = [self.output_name, *extra_outputs]
        return self.session(tuple(extra_outputs)).run(names, feed)


def resolve_batch_shape(info: TensorInfo) -> tuple[int, ...]:
    """Concrete per-sample shape; only a leading symbolic dim is allowed (it is the batch)."""
    shape = list(info.shape)
    for axis, dim in enumerate(shape):
        if not isinstance(dim, int) or dim <= 0:
            if axis != 0:
                raise UnsupportedModelError(
                    f"input {info.name!r} has the dynamic dimension {dim!r} at axis {axis}; smugir needs "
                    "every dimension but the leading (batch) one fixed"
                )
            shape[axis] = 1
    return tuple(shape)


_session_threads = 0  # onnxruntime's default: one thread per physical core


def set_session_threads(threads: int) -> None:
    """Threads of every session made from now on; parallel workers use 1 so they do not oversubscribe."""
    global _session_threads
    _session_threads = int(threads)


def make_session(proto: onnx.ModelProto, optimize: bool = False) -> ort.InferenceSession:
    """A CPU session, by default with graph optimisations off: they are not always exact.

    Measured with onnxruntime 1.31.1: a Pad (zeros) followed by MaxPool is fused at the basic level
    into a MaxPool whose padding is -inf, which changes the model's output. A verifier must run the
    graph as ONNX defines it; `optimize=True` is for callers that check the optimised session
    against the plain one (`batched_session`).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = _session_threads
    try:
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidGraph, ...)
        message = str(exc).splitlines()[0]
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} cannot run the model: {message}") from None


def load_model(path: str | os.PathLike) -> Model:
    """Load, check and shape-infer an ONNX classifier, reading external data only from its folder."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist or is not a file")
    raw = _read_bytes(path)
    try:
        proto = onnx.load_model_from_string(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model (protobuf parse failed: {exc})") from None
    if not proto.graph.node:
        raise ModelFileError(f"{str(path)!r} is not an ONNX model (its graph has no nodes)")
    _load_external_data_safely(proto, path)
    try:
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{str(path)!r} fails the ONNX checker: {first_line}") from None
    data_input, output = _single_input_and_output(proto, path)
    proto, folding = fold_constants(proto, data_input.name, make_session)
    return Model(path=path, proto=proto, sha256=hashlib.sha256(raw).hexdigest(), data_input=data_input, output=output, folding=folding)


def model_from_proto(proto: onnx.ModelProto, path: Path, sha256: str) -> Model:
    """A `Model` for a sub-model built in memory from a loaded, checked one (keeps its provenance)."""
    data_input, output = _single_input_and_output(proto, path)
    return Model(path=path, proto=proto, sha256=sha256, data_input=data_input, output=output)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {str(path)!r}: {exc.strerror}") from None


def _load_external_data_safely(proto: onnx.ModelProto, path: Path) -> None:
    """Refuse any external-data location that could leave the model's folder, then load it."""
    folder = path.resolve().parent
    external = [t for t in _all_tensors(proto.graph) if onnx.external_data_helper.uses_external_data(t)]
    for tensor in external:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        pure = Path(location)
        if not location or pure.is_absolute() or ".." in pure.parts or location.startswith(("/", "\\")):
            raise UnsafeModelError(
                f"tensor {tensor.name!r} of {str(path)!r} asks for external data at {location!r}; only "
                "relative locations inside the model's folder are accepted"
            )
        target = (folder / pure).resolve()
        if not target.is_relative_to(folder):
            raise UnsafeModelError(
                f"tensor {tensor.name!r} of {str(path)!r} has external data {location!r} that resolves "
                f"outside the model's folder (to {str(target)!r}); refused"
            )
        if not target.is_file():
            raise ModelFileError(f"external data file {location!r} of tensor {tensor.name!r} is missing next to {str(path)!r}")
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(folder))
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read the external data of {str(path)!r}: {exc}") from None


def _all_tensors(graph: onnx.GraphProto):
    """Every tensor stored in a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for subgraph in attr.graphs:
                yield from _all_tensors(subgraph)


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dims: list[int | str] = []
    for dim in tensor_type.shape.dim:
        dims.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?"))
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type) if tensor_type.elem_type else np.dtype("float32")
    return TensorInfo(value.name, tuple(dims), np.dtype(dtype))


def _single_input_and_output(proto: onnx.ModelProto, path: Path) -> tuple[TensorInfo, TensorInfo]:
    initializers = {t.name for t in proto.graph.initializer}
    data_inputs = [v for v in proto.graph.input if v.name not in initializers]
    if len(data_inputs) != 1:
        names = ", ".join(repr(v.name) for v in data_inputs) or "none"
        raise UnsupportedModelError(
            f"{str(path)!r} has {len(data_inputs)} data inputs ({names}); smugir explains models with exactly one"
        )
    if len(proto.graph.output) != 1:
        names = ", ".join(repr(v.name) for v in proto.graph.output)
        raise UnsupportedModelError(
            f"{str(path)!r} has {len(proto.graph.output)} outputs ({names}); smugir needs exactly one (the class scores)"
        )
    return _tensor_info(data_inputs[0]), _tensor_info(proto.graph.output[0])


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
    """
    to_tensor = to_tensor or proto.graph.output[0].name
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = {v.name for v in proto.graph.input} - initializers
    producers = {out: node for node in proto.graph.node for out in node.output}
    stack, seen, reads_from = [to_tensor], set(), False
    while stack:
        name = stack.pop()
        if name in seen or name in initializers:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is None:
            continue
        for tensor in node.input:
            if tensor == from_tensor:
                reads_from = True
            elif tensor in graph_inputs:
                raise UnsupportedModelError(
                    f"the output {to_tensor!r} is not a function of {from_tensor!r} alone: node {node.name!r} "
                    f"({node.op_type}) also reads the graph input {tensor!r}; no suffix model exists"
                )
            elif tensor:
                stack.append(tensor)
    if not reads_from:
        raise UnsupportedModelError(f"the output {to_tensor!r} does not depend on {from_tensor!r}")
    return onnx.utils.Extractor(proto).extract_model([from_tensor], [to_tensor])


def with_batch_of_one(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose symbolic input/output dims are 1, so shape inference knows every shape."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for value in list(fixed.graph.input) + list(fixed.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    del fixed.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(fixed)


def with_dynamic_batch(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with a symbolic leading dim and Reshape targets that copy it (0 for a leading 1)."""
    batched = onnx.ModelProto()
    batched.CopyFrom(proto)
    graph = batched.graph
    initializers = {t.name for t in graph.initializer}
    data_inputs = [v for v in graph.input if v.name not in initializers]
    for value in data_inputs[:1] + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    reshape_targets = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for tensor in graph.initializer:
        if tensor.name in reshape_targets:
            target = numpy_helper.to_array(tensor).copy()
            if target.size >= 2 and target[0] == 1:
                target[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(target.astype(np.int64), tensor.name))
    del graph.value_info[:]
    return batched


def batched_session(proto: onnx.ModelProto, input_name: str, shape: tuple[int, ...], extra: dict | None = None,
                    optimize: bool = False) -> tuple[ort.InferenceSession, bool]:
    """A session that takes many points at once when the graph allows it, and whether it does.

    The batched (and, with `optimize`, graph-optimised) session is used only if it gives the plain
    session's outputs on two random points (to float32 precision); otherwise the plain one is.
    """
    extra = extra or {}
    single = make_session(proto)
    probe = np.random.default_rng(0).normal(size=(2, *shape[1:])).astype(np.float32)
    apart = [single.run(None, {input_name: p[None], **extra}) for p in probe]
    for optimized in dict.fromkeys((optimize, False)):
        try:
            candidate = make_session(with_dynamic_batch(proto), optimized)
            together = candidate.run(None, {input_name: probe, **extra})
        except Exception:  # noqa: BLE001 (onnxruntime refuses the batched graph, e.g. a Reshape to a fixed size)
            continue
        if all(np.asarray(out).shape[:1] == (2,) for out in together) and all(
                np.allclose(np.asarray(together[k])[i], np.asarray(apart[i][k])[0], rtol=1e-5, atol=1e-6)
                for k in range(len(together)) for i in range(2)):
            return candidate, True
    return single, False
