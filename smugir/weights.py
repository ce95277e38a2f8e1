"""One copy of a model's weights per process: initializers held as arrays, the graphs hold placeholders.

Every step copies the graph (cutting it to an output, folding constants, the suffix from the first
layer, the gradient graph, a dynamic batch) and every onnxruntime session used to be made from
the serialised model. On VGG-11 (531 MB of weights) that was 93 s and 6.4 GB for one explanation,
most of it protobuf copying the same weights. So a loaded model's large float initializers become
placeholders: the tensor's name, type and dims, and a reference (its content's sha256) into a
process-wide table of read-only arrays. Graph copies are then cheap; `array` reads a value and
`smugir.sessions.make_session` feeds the arrays to onnxruntime (fed as inputs, or handed over as
external initializers, never written to a file). An array lives as long as some holder (a `Model`,
a session) keeps the dict `lighten` returned.

A placeholder's location starts with a NUL byte, so nothing can ever open it as a file: an
accidental read of one fails instead of reading whatever the current directory holds.
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from smugir.budget import elements
from smugir.weightless import LIGHT_ELEMENTS

PREFIX = "\x00smugir-weights/"
TYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16}
_VALUE_FIELDS = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data", TensorProto.FLOAT16: "int32_data"}  # one value each
_TABLE: weakref.WeakValueDictionary[str, np.ndarray] = weakref.WeakValueDictionary()


class WeightSizeError(ValueError):
    """A tensor's data is not the size its shape declares (`str`: how; `name`: the tensor's)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name


def is_placeholder(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL and any(
        e.key == "location" and e.value.startswith(PREFIX) for e in tensor.external_data)


def _key(tensor: TensorProto) -> str:
    return next(e.value for e in tensor.external_data if e.key == "location")[len(PREFIX):]


def array(tensor: TensorProto) -> np.ndarray:
    """The tensor's value, a placeholder's read from the table (read-only)."""
    if not is_placeholder(tensor):
        return numpy_helper.to_array(tensor)
    found = _TABLE.get(_key(tensor))
    if found is None:
        raise RuntimeError(f"the weights of {tensor.name!r} were released while a graph still refers to them")
    return found


def is_heavy(tensor: TensorProto) -> bool:
    return (tensor.data_type in TYPES and tensor.data_location != TensorProto.EXTERNAL
            and int(np.prod(tensor.dims, dtype=np.int64)) > LIGHT_ELEMENTS)


def _placeholder(tensor: TensorProto, key: str) -> TensorProto:
    light = TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims, data_location=TensorProto.EXTERNAL)
    light.external_data.add(key="location", value=PREFIX + key)
    return light


def share(tensor: TensorProto) -> tuple[str, np.ndarray]:
    """The table's key and array for a tensor with its data (the array is shared with any earlier
    tensor of the same content: sha256 of the bytes, dtype and dims)."""
    dtype = np.dtype(TYPES[tensor.data_type])
    expected = elements(tensor.dims) * dtype.itemsize
    data = tensor.raw_data if tensor.HasField("raw_data") else None  # checked here, where the bytes are at hand (reading copies them)
    held = len(data) if data is not None else len(getattr(tensor, _VALUE_FIELDS[tensor.data_type])) * dtype.itemsize
    if held != expected:
        raise WeightSizeError(tensor.name, f"declares shape {list(tensor.dims)} ({expected} bytes) but holds {held} bytes")
    if data is None:
        data = numpy_helper.to_array(tensor).astype(dtype).tobytes()
    key = f"{hashlib.sha256(data).hexdigest()}-{dtype.str}-{'x'.join(map(str, tensor.dims))}"
    found = _TABLE.get(key)
    if found is None:
        found = np.frombuffer(data, dtype=dtype).reshape(tuple(tensor.dims))  # read-only, on `data`'s memory
        _TABLE[key] = found
    return key, found


def lighten(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """`proto` with its large float initializers as placeholders (changed in place), and the arrays
    of all its placeholders by name: whoever keeps the dict keeps the weights."""
    held: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(proto.graph.initializer):
        if is_heavy(tensor):
            key, held[tensor.name] = share(tensor)
            proto.graph.initializer[index].CopyFrom(_placeholder(tensor, key))
        elif is_placeholder(tensor):
            held[tensor.name] = array(tensor)
    return proto, held


def checkable(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for the ONNX checker: placeholders become empty tensors of their name and type. The
    checker would try to open a placeholder's location as a file; the data's size was checked when
    it was shared, and the checker (without its full check) does not compare dims with consumers."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for index, tensor in enumerate(copy.graph.initializer):
        if is_placeholder(tensor):
            copy.graph.initializer[index].CopyFrom(TensorProto(name=tensor.name, data_type=tensor.data_type, dims=[0]))
    return copy


def placeholders(proto: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in proto.graph.initializer if is_placeholder(t)]
