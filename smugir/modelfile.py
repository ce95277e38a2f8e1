"""Reading an untrusted ONNX file: its bytes and every tensor's external data, from inside its folder only.

External tensor data is read by smugir itself, checked (location, links, range, declared size,
memory budget) and put into the proto, so the checker and onnxruntime never resolve a file
reference; every failure is a `SmugError` that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterator

import numpy as np
import onnx

from smugir import weights
from smugir.budget import elements, format_size, require
from smugir.errors import ModelFileError, UnsafeModelError, UnsupportedModelError
from smugir.safefiles import file_size, open_regular


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


def read_model_file(path: Path) -> bytes:
    with open_regular(path, "model file", ModelFileError) as stream:
        require(f"reading the model file {str(path)!r}", PARSE_FACTOR * file_size(stream))
        try:
            return stream.read()
        except OSError as exc:
            raise ModelFileError(f"cannot read model file {str(path)!r}: {exc.strerror}") from None


def stored_tensors(message, where: str = "") -> Iterator[tuple[onnx.TensorProto, str]]:
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
            yield from stored_tensors(child, where)


def is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _safe_location(location: str) -> bool:
    """Relative, inside the folder by its spelling: no absolute path, drive, `..`, NUL or backslash."""
    pure = PurePosixPath(location)
    return bool(location) and "\0" not in location and "\\" not in location and not pure.is_absolute() \
        and ".." not in pure.parts and not PureWindowsPath(location).drive


def load_external_data_safely(proto: onnx.ModelProto, path: Path) -> dict[tuple[str, int, int], bytes]:
    """Read every tensor's external data from inside the model's folder into the proto itself.

    Refused, by name: a location that leaves the folder (absolute, `..`, a symlink out), a file
    that is not a regular file or has other hard links, a range beyond the file's end or of
    another size than the tensor's shape, and data over the memory budget (checked before reading).
    Returns the ranges read, for `model_sha256`.
    """
    folder = path.resolve().parent
    external = [(t, where) for t, where in stored_tensors(proto) if is_external(t)]
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


def check_tensor_sizes(proto: onnx.ModelProto, path: Path) -> None:
    """Raw data of exactly the declared size: a hostile shape must not reach numpy's reshape."""
    for tensor, where in stored_tensors(proto):
        if tensor.data_type not in _KNOWN_TYPES:  # the checker lets unknown types through
            raise ModelFileError(f"tensor {tensor.name!r} ({where}of {str(path)!r}) has the unknown data type {tensor.data_type}")
        if tensor.HasField("raw_data") and not weights.is_heavy(tensor):  # `weights.share` checks those, holding their bytes
            expected = _declared_bytes(tensor)
            if expected is not None and expected != len(tensor.raw_data):
                raise ModelFileError(
                    f"tensor {tensor.name!r} ({where}of {str(path)!r}) declares shape {list(tensor.dims)} ({expected} bytes) "
                    f"but holds {len(tensor.raw_data)} bytes"
                )
