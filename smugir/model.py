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
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterator

import numpy as np
import onnx
import onnx.shape_inference
import onnx.utils
import onnxruntime as ort
from onnx import numpy_helper
from google.protobuf.message import DecodeError

from smugir.budget import elements, format_size, require
from smugir.convolution import check_model_convolutions
from smugir.errors import ModelFileError, NotAClassifierError, SmugError, UnsafeModelError, UnsupportedModelError
from smugir.folding import FoldingReport, fold_constants
from smugir.safefiles import file_size, open_regular


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
            require(f"running {str(self.path)!r} on one input (its declared tensors)", self.run_bytes)
            proto = expose_outputs(self.proto, list(extra_outputs)) if extra_outputs else self.proto
            self._sessions[key] = make_session(proto)
        return self._sessions[key]

    @cached_property
    def run_bytes(self) -> int:
        """An upper bound on one run's memory: every tensor the graph declares, at batch 1."""
        graph = self.proto.graph
        total = 0
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim]
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).itemsize if tensor_type.elem_type else 4
            total += elements(dims) * itemsize
        return total

    def run(self, x: np.ndarray, extra_outputs: tuple[str, ...] = ()) -> list[np.ndarray]:
        """Run one sample of shape `input_shape`; returns [output, *extra_outputs]."""
        feed = {self.input_name: np.asarray(x, dtype=self.data_input.dtype).reshape(self.input_shape)}
        names = [self.output_name, *extra_outputs]
        outputs = run_session(self.session(tuple(extra_outputs)), names, feed)
        check_scores(outputs[0], self.output)
        return outputs


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


def make_session(proto: onnx.ModelProto | bytes, optimize: bool = False) -> ort.InferenceSession:
    """A CPU session, by default with graph optimisations off: they are not always exact.

    Measured with onnxruntime 1.31.1: a Pad (zeros) followed by MaxPool is fused at the basic level
    into a MaxPool whose padding is -inf, which changes the model's output. A verifier must run the
    graph as ONNX defines it; `optimize=True` is for callers that check the optimised session
    against the plain one (`batched_session`).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: smugir reports a failed run or load itself (`run_session`)
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = _session_threads
    try:
        data = proto if isinstance(proto, bytes) else proto.SerializeToString()  # bytes: serialised once for several sessions
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except SmugError:  # smugir's own, e.g. a batch input's time limit firing inside onnxruntime's call
        raise
    except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidGraph, ...)
        message = str(exc).splitlines()[0]
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} cannot run the model: {message}") from None


def run_session(session: ort.InferenceSession, names: list[str] | None, feed: dict) -> list:
    """`session.run`, with onnxruntime's failures (a run-time shape error, an allocation it cannot
    make) turned into one named line instead of onnxruntime's own exception types."""
    try:
        return session.run(names, feed)
    except SmugError:  # smugir's own, e.g. a batch input's time limit firing inside onnxruntime's call
        raise
    except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, RuntimeException, ...)
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} failed running the model: {message}") from None


def load_model(path: str | os.PathLike) -> Model:
    """Load, check and shape-infer an ONNX classifier, reading external data only from its folder.

    The gate runs before the ONNX checker or onnxruntime see anything: every tensor that can carry
    external data is found, its data read by smugir from inside the model's folder and put into the
    proto, so the checker and onnxruntime get bytes without a single file reference to resolve.
    """
    path = Path(path)
    return _model_from_bytes(_read_model_file(path), path, external=True)


def load_model_bytes(raw: bytes, name: str) -> Model:
    """`load_model` for a model serialized in memory (`smugir.torch`); `name` stands for its path in
    messages and reports. There is no folder, so a tensor with external data is refused."""
    require(f"parsing the in-memory model {name!r}", PARSE_FACTOR * len(raw))
    return _model_from_bytes(raw, Path(name), external=False)


def _model_from_bytes(raw: bytes, path: Path, external: bool) -> Model:
    try:
        proto = onnx.load_model_from_string(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model (protobuf parse failed: {exc})") from None
    if not proto.graph.node:
        raise ModelFileError(f"{str(path)!r} is not an ONNX model (its graph has no nodes)")
    try:
        if not external and any(_is_external(t) for t, _ in _stored_tensors(proto)):
            raise UnsafeModelError(f"{str(path)!r} refers to external data files; an in-memory model must hold all its tensors")
        ranges = _load_external_data_safely(proto, path) if external else {}
        _check_tensor_sizes(proto, path)
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{str(path)!r} fails the ONNX checker: {first_line}") from None
    except UnicodeDecodeError:  # protobuf and the checker's messages decode names as UTF-8
        raise ModelFileError(f"{str(path)!r} holds a name or string that is not UTF-8 text; not a valid ONNX model") from None
    data_input, output = _single_input_and_output(proto, path)
    check_classifier_output(output, path, proto.graph.output[0].type.tensor_type.HasField("shape"))
    check_model_convolutions(proto)
    proto, folding = fold_constants(proto, data_input.name, make_session)
    return Model(path=path, proto=proto, sha256=model_sha256(raw, ranges), data_input=data_input, output=output, folding=folding)


def model_from_proto(proto: onnx.ModelProto, path: Path, sha256: str) -> Model:
    """A `Model` for a sub-model built in memory from a loaded, checked one (keeps its provenance)."""
    data_input, output = _single_input_and_output(proto, path)
    return Model(path=path, proto=proto, sha256=sha256, data_input=data_input, output=output)


def model_sha256(raw: bytes, ranges: dict[tuple[str, int, int], bytes]) -> str:
    """sha256 of the model file's bytes, then of every external data range read, ordered by
    (location, offset, length), each range once. Without external data: the file's sha256."""
    digest = hashlib.sha256(raw)
    for key in sorted(ranges):
        digest.update(ranges[key])
    return digest.hexdigest()


# A protobuf parse holds the file's bytes and the decoded message, the checker and onnxruntime a
# serialized copy each: about three times the model.
PARSE_FACTOR = 3
MAX_MODEL_BYTES = (2 << 30) - 1  # protobuf cannot serialize a bigger message


def _read_model_file(path: Path) -> bytes:
    with open_regular(path, "model file", ModelFileError) as stream:
        require(f"reading the model file {str(path)!r}", PARSE_FACTOR * file_size(stream))
        try:
            return stream.read()
        except OSError as exc:
            raise ModelFileError(f"cannot read model file {str(path)!r}: {exc.strerror}") from None


def _stored_tensors(message, where: str = "") -> Iterator[tuple[onnx.TensorProto, str]]:
    """Every TensorProto inside `message`, found by walking all its protobuf fields (initializers,
    sparse initializers' values and indices, attributes, Constants, subgraphs, local functions,
    training info: whatever field holds one), with where it sits, for error messages."""
    if isinstance(message, onnx.TensorProto):
        yield message, where
        return
    if isinstance(message, onnx.NodeProto):
        where = f"{where}node {message.name or message.op_type!r} ({message.op_type}), "
    elif isinstance(message, onnx.FunctionProto):
        where = f"{where}function {message.name!r}, "
    elif isinstance(message, onnx.TrainingInfoProto):
        where = f"{where}training info, "
    for descriptor, value in message.ListFields():
        if descriptor.type != descriptor.TYPE_MESSAGE:
            continue
        children = value if descriptor.is_repeated else [value]
        if descriptor.message_type.GetOptions().map_entry:
            continue
        for child in children:
            yield from _stored_tensors(child, where)


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _safe_location(location: str) -> bool:
    """Relative, inside the folder by its spelling: no absolute path, drive, `..`, NUL or backslash."""
    pure = PurePosixPath(location)
    return bool(location) and "\0" not in location and "\\" not in location and not pure.is_absolute() \
        and ".." not in pure.parts and not PureWindowsPath(location).drive


def _load_external_data_safely(proto: onnx.ModelProto, path: Path) -> dict[tuple[str, int, int], bytes]:
    """Read every tensor's external data from inside the model's folder into the proto itself.

    Refused, by name: a location that leaves the folder (absolute, `..`, a symlink out), a file
    that is not a regular file or has other hard links, a range beyond the file's end or of
    another size than the tensor's shape, and data over the memory budget (checked before reading).
    Returns the ranges read, for `model_sha256`.
    """
    folder = path.resolve().parent
    external = [(t, where) for t, where in _stored_tensors(proto) if _is_external(t)]
    plans = []
    for tensor, where in external:
        label = f"tensor {tensor.name!r} ({where}of {str(path)!r})" if where else f"tensor {tensor.name!r} of {str(path)!r}"
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        if not _safe_location(location):
            raise UnsafeModelError(
                f"{label} asks for external data at {location!r}; only relative locations inside the model's folder are accepted"
            )
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UnsafeModelError(f"{label} has external data {location!r} that resolves outside the model's folder (to {str(target)!r}); refused")
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            raise ModelFileError(f"{label} has a non-integer external data offset or length") from None
        plans.append((tensor, label, location, target, offset, length))
    ranges: dict[tuple[str, int, int], bytes] = {}
    if not plans:
        return ranges
    streams: dict[Path, BinaryIO] = {}
    try:
        sized = []
        for tensor, label, location, target, offset, length in plans:
            if target not in streams:
                streams[target] = open_regular(target, f"{label}: its external data file", UnsafeModelError, single_link=True)
            size = file_size(streams[target])
            length = size - offset if length is None else length
            if offset < 0 or length < 0 or offset + length > size:
                raise ModelFileError(f"{label} asks for bytes {offset}..{offset + length} of {location!r}, which has {size} bytes")
            expected = _declared_bytes(tensor)
            if expected is not None and expected != length:
                raise ModelFileError(f"{label} declares shape {list(tensor.dims)} ({expected} bytes) but its external data has {length} bytes")
            require(f"the external data of {label}", PARSE_FACTOR * length)
            sized.append((tensor, location, target, offset, length))
        total = sum(item[-1] for item in sized)
        if total + proto.ByteSize() > MAX_MODEL_BYTES:
            raise UnsupportedModelError(
                f"{str(path)!r} with its external data is {format_size(total + proto.ByteSize())}; smugir checks and runs models "
                f"in memory, up to protobuf's limit of {format_size(MAX_MODEL_BYTES)}"
            )
        require(f"the external data of {str(path)!r} ({len(sized)} tensors)", PARSE_FACTOR * total)
        for tensor, location, target, offset, length in sized:
            key = (location, offset, length)
            if key not in ranges:
                ranges[key] = _read_range(streams[target], offset, length, location)
            tensor.raw_data = ranges[key]
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    finally:
        for stream in streams.values():
            stream.close()
    return ranges


def _read_range(stream: BinaryIO, offset: int, length: int, location: str) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(stream.fileno(), min(length - done, 1 << 30), offset + done)
        if not chunk:
            raise ModelFileError(f"external data file {location!r} ended at byte {offset + done}, before {offset + length}")
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _declared_bytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes a tensor's shape declares, for the fixed-size types (None for strings and the like)."""
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED) or itemsize == 0:
        return None
    if tensor.data_type in _PACKED_4BIT:
        return (elements(tensor.dims) + 1) // 2
    return elements(tensor.dims) * itemsize


_PACKED_4BIT = {getattr(onnx.TensorProto, name) for name in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(onnx.TensorProto, name)}


_KNOWN_TYPES = set(onnx.helper.get_all_tensor_dtypes())


def _check_tensor_sizes(proto: onnx.ModelProto, path: Path) -> None:
    """Raw data of exactly the declared size: a hostile shape must not reach numpy's reshape."""
    for tensor, where in _stored_tensors(proto):
        if tensor.data_type not in _KNOWN_TYPES:  # the checker lets unknown types through
            raise ModelFileError(f"tensor {tensor.name!r} ({where}of {str(path)!r}) has the unknown data type {tensor.data_type}")
        if tensor.HasField("raw_data"):
            expected = _declared_bytes(tensor)
            if expected is not None and expected != len(tensor.raw_data):
                raise ModelFileError(
                    f"tensor {tensor.name!r} ({where}of {str(path)!r}) declares shape {list(tensor.dims)} ({expected} bytes) "
                    f"but holds {len(tensor.raw_data)} bytes"
                )


def check_classifier_output(output: TensorInfo, path: Path | str, has_shape: bool = True) -> None:
    """What the graph says of the output: float class scores, (C,) or (N, C), at least 2 classes."""
    where = f"the output {output.name!r} of {str(path)!r}"
    if not np.issubdtype(output.dtype, np.floating):
        raise NotAClassifierError(f"{where} is {output.dtype}, not float class scores; smugir explains classifiers")
    if not has_shape:
        return
    if len(output.shape) not in (1, 2):
        kind = "a scalar" if not output.shape else f"{len(output.shape)}-D {list(output.shape)}"
        raise NotAClassifierError(f"{where} is {kind}; smugir needs class scores of shape (C,) or (N, C)")
    classes = output.shape[-1]
    if isinstance(classes, int) and classes < 2:
        raise NotAClassifierError(f"{where} has {classes} class{'es' if classes != 1 else ''}; a classifier needs at least 2")


def check_scores(scores: np.ndarray, output: TensorInfo) -> np.ndarray:
    """What the values say of one sample's output: float, (C,) or (1, C), C >= 2, all finite."""
    scores = np.asarray(scores)
    where = f"the model's output {output.name!r}"
    if not np.issubdtype(scores.dtype, np.floating):
        raise NotAClassifierError(f"{where} is {scores.dtype} at run time, not float class scores")
    if scores.ndim not in (1, 2) or (scores.ndim == 2 and scores.shape[0] != 1) or scores.shape[-1] < 2:
        raise NotAClassifierError(f"{where} has shape {list(scores.shape)} for one input; a classifier gives (C,) or (1, C) scores, C >= 2")
    if not np.all(np.isfinite(scores)):
        raise NotAClassifierError(f"{where} has non-finite values ({'NaN' if np.isnan(scores).any() else 'inf'}) on this input")
    return scores


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dims: list[int | str] = []
    for dim in tensor_type.shape.dim:
        dims.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?"))
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type) if tensor_type.elem_type else np.dtype("float32")
    except KeyError:  # a data type number ONNX does not define; the checker lets it through
        raise UnsupportedModelError(f"graph input/output {value.name!r} declares the unknown data type {tensor_type.elem_type}") from None
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


REORDERING_TOLERANCE = 1e-4  # of an output's largest magnitude: what reordered float32 sums change


def equal_to_rounding(fast: np.ndarray, slow: np.ndarray, tolerance: float = REORDERING_TOLERANCE) -> bool:
    """Whether `fast` gives `slow`'s values to `tolerance` of slow's largest magnitude.

    Fused, batched or blocked kernels add float32 terms in another order, which moves every value
    by about 1e-7 of the largest one (EfficientNet-Lite0's logits: 3e-7); a wrong rewrite (the
    Pad-into-MaxPool fusion of `make_session`) moves them by far more. A per-value relative test
    would refuse the first on any value near zero.
    """
    fast, slow = np.asarray(fast, dtype=np.float64), np.asarray(slow, dtype=np.float64)
    if fast.shape != slow.shape:
        return False
    if not (np.all(np.isfinite(fast)) and np.all(np.isfinite(slow))):
        return bool(np.array_equal(fast, slow, equal_nan=True))
    return bool(np.abs(fast - slow).max(initial=0.0) <= tolerance * np.abs(slow).max(initial=0.0))


def batched_session(proto: onnx.ModelProto, input_name: str, shape: tuple[int, ...], extra: dict | None = None,
                    optimize: bool = False) -> tuple[ort.InferenceSession, bool]:
    """A session that takes many points at once when the graph allows it, and whether it does.

    The batched (and, with `optimize`, graph-optimised) session is used only if it gives the plain
    session's outputs on two random points (`equal_to_rounding`); otherwise the plain one is. On
    EfficientNet-Lite0 the optimised session classifies an image in 11 ms, the plain one in 27 ms.
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
                equal_to_rounding(np.asarray(together[k])[i], np.asarray(apart[i][k])[0])
                for k in range(len(together)) for i in range(2)):
            return candidate, True
    return single, False
