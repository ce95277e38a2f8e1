"""A loaded ONNX classifier: its one data input, its class scores, its sessions.

A model file may come from anyone: `smugir.modelfile` reads it (external data only from inside the
model's folder), the checker and shape inference run before anything else looks at the graph, and
every failure becomes a `SmugError` that names the file and the problem. Sessions live in
`smugir.sessions`, sub-models in `smugir.submodels`; their public names are importable from here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
import onnx.shape_inference
from google.protobuf.message import DecodeError

from smugir.budget import require
from smugir.convolution import check_model_convolutions
from smugir.errors import ModelFileError, NotAClassifierError, UnsafeModelError, UnsupportedModelError
from smugir.folding import FoldingReport, fold_constants
from smugir.outputs import choose_output
from smugir.modelfile import (PARSE_FACTOR, check_tensor_sizes, is_external, load_external_data_safely, model_sha256,
                              read_model_file, stored_tensors)
from smugir.sessions import (REORDERING_TOLERANCE, Session, batched_session, declared_bytes, equal_to_rounding, make_session, run_session,
                             set_session_threads, with_dynamic_batch)
from smugir.submodels import expose_outputs, suffix_model, with_batch_of_one
from smugir.weights import WeightSizeError, checkable, lighten

__all__ = [
    "Model", "TensorInfo", "load_model", "load_model_bytes", "model_from_proto", "resolve_batch_shape", "check_classifier_output", "check_scores",
    "make_session", "run_session", "set_session_threads", "batched_session", "equal_to_rounding", "REORDERING_TOLERANCE",
    "with_dynamic_batch", "expose_outputs", "suffix_model", "with_batch_of_one", "model_sha256", "declared_bytes",
]


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
    sha256: str  # of the file and its external data (and of the chosen output, when the file has several)
    data_input: TensorInfo
    output: TensorInfo
    folding: FoldingReport | None = None  # what load_model folded (constant subgraphs)
    output_note: str = ""  # how the scores were chosen among several outputs (`smugir.outputs`)
    weights: dict = field(default_factory=dict, repr=False)  # the arrays of the graph's placeholders (`smugir.weights`)
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

    def session(self, extra_outputs: tuple[str, ...] = ()) -> Session:
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
        return declared_bytes(self.proto)

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


def load_model(path: str | os.PathLike, output: str | None = None) -> Model:
    """Load, check and shape-infer an ONNX classifier, reading external data only from its folder.

    The gate runs before the ONNX checker or onnxruntime see anything: every tensor that can carry
    external data is found, its data read by smugir from inside the model's folder and put into the
    proto, so the checker and onnxruntime get bytes without a single file reference to resolve.
    `output` names the class scores of a model with several outputs (`smugir.outputs`).
    """
    path = Path(path)
    return _model_from_bytes(read_model_file(path), path, external=True, output=output)


def load_model_bytes(raw: bytes, name: str, output: str | None = None) -> Model:
    """`load_model` for a model serialized in memory (`smugir.torch`); `name` stands for its path in
    messages and reports. There is no folder, so a tensor with external data is refused."""
    require(f"parsing the in-memory model {name!r}", PARSE_FACTOR * len(raw))
    return _model_from_bytes(raw, Path(name), external=False, output=output)


def _model_from_bytes(raw: bytes, path: Path, external: bool, output: str | None) -> Model:
    try:
        proto = onnx.load_model_from_string(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{str(path)!r} is not a readable ONNX model (protobuf parse failed: {exc})") from None
    if not proto.graph.node:
        raise ModelFileError(f"{str(path)!r} is not an ONNX model (its graph has no nodes)")
    try:
        if not external and any(is_external(t) for t, _ in stored_tensors(proto)):
            raise UnsafeModelError(f"{str(path)!r} refers to external data files; an in-memory model must hold all its tensors")
        ranges = load_external_data_safely(proto, path) if external else {}
        check_tensor_sizes(proto, path)
        digest = model_sha256(raw, ranges)
        del raw  # the file's bytes are not needed again (a model's weights are held once: `smugir.weights`)
        proto, held = lighten(proto)  # from here on every copy of the graph is cheap (`smugir.weights`)
        # the checker sees the graph without the large weights: parsing VGG-11's 507 MB again in a
        # fresh process cost it 3-10 s of page faults, and their sizes were checked by `lighten`
        onnx.checker.check_model(checkable(proto))
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except WeightSizeError as exc:
        raise ModelFileError(f"tensor {exc.name!r} (of {str(path)!r}) {exc}") from None
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{str(path)!r} fails the ONNX checker: {first_line}") from None
    except UnicodeDecodeError:  # protobuf and the checker's messages decode names as UTF-8
        raise ModelFileError(f"{str(path)!r} holds a name or string that is not UTF-8 text; not a valid ONNX model") from None
    several = len(proto.graph.output) > 1
    proto, output_note = choose_output(proto, str(path), output)
    data_input, scores = _single_input_and_output(proto, path)
    check_classifier_output(scores, path, proto.graph.output[0].type.tensor_type.HasField("shape"))
    check_model_convolutions(proto)
    proto, folding = fold_constants(proto, data_input.name, make_session)
    proto, held = lighten(proto)  # the folded constants too
    if several:  # what is explained is the file and its chosen output: no cache may mix two outputs' results
        digest = hashlib.sha256(f"{digest}\noutput {scores.name}".encode("utf-8", errors="surrogatepass")).hexdigest()
    return Model(path=path, proto=proto, sha256=digest, data_input=data_input, output=scores, folding=folding, output_note=output_note,
                 weights=held)


def model_from_proto(proto: onnx.ModelProto, path: Path, sha256: str) -> Model:
    """A `Model` for a sub-model built in memory from a loaded, checked one (keeps its provenance)."""
    proto, held = lighten(proto)
    data_input, output = _single_input_and_output(proto, path)
    return Model(path=path, proto=proto, sha256=sha256, data_input=data_input, output=output, weights=held)


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
