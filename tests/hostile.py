"""Builders of hostile inputs for the gate tests and the fuzz suite: small valid models whose tensors
point at external data (through every kind of tensor), odd outputs, bomb archives and images, and a
current directory full of code that must never run."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(path: Path, nodes, inputs, outputs, initializers=(), sparse=(), functions=(), opsets=OPSET) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers), sparse_initializer=list(sparse))
    proto = helper.make_model(graph, opset_imports=list(opsets), functions=list(functions))
    proto.ir_version = 8
    onnx.save(proto, path)
    return path


def externalise(tensor: TensorProto, location: str, length: int | None = None, offset: int = 0) -> TensorProto:
    """Move a tensor's values out of the proto: it now names `location` (relative to the model)."""
    nbytes = len(numpy_helper.to_array(tensor).tobytes())
    for name in ("raw_data", "float_data", "int64_data", "int32_data", "double_data"):
        tensor.ClearField(name)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(nbytes if length is None else length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def x_input(shape=(1, 4)):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))


def y_output(shape=(1, 3), elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info("y", elem, None if shape is None else list(shape))


def dense(folder: Path, weight=None, name="m.onnx", input_shape=(1, 4)) -> Path:
    """Gemm(4 -> 3) with weight `w` (all ones unless given)."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float32) if weight is None else weight, "w")
    return save(folder / name, [helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm")], [x_input(input_shape)], [y_output()], [w])


def external_via(kind: str, folder: Path, location: str, values=(0.0, 0.0, 0.0), length: int | None = None) -> Path:
    """A model whose constant `c` (3 floats added to the logits) is stored externally at `location`,
    held by a tensor of the given kind: initializer, sparse (values or indices), constant (a Constant
    node's attribute), function (a Constant inside a model-local function), subgraph (an If branch)."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    c = numpy_helper.from_array(np.asarray(values, np.float32), "c")
    gemm = helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm")
    add = helper.make_node("Add", ["g", "c"], ["y"], name="add")
    inputs, outputs = [x_input()], [y_output()]
    if kind == "initializer":
        return save(folder / "m.onnx", [gemm, add], inputs, outputs, [w, externalise(c, location, length)])
    if kind in ("sparse-values", "sparse-indices"):
        dense_values = np.asarray(values, np.float32)
        where = np.arange(3, dtype=np.int64)
        vals = numpy_helper.from_array(dense_values, "c")
        idx = numpy_helper.from_array(where, "c_indices")
        externalise(vals if kind == "sparse-values" else idx, location, length)
        sparse = helper.make_sparse_tensor(vals, idx, [3])
        return save(folder / "m.onnx", [gemm, add], inputs, outputs, [w], sparse=[sparse])
    constant = helper.make_node("Constant", [], ["c"], name="const", value=externalise(c, location, length))
    if kind == "constant":
        return save(folder / "m.onnx", [constant, gemm, add], inputs, outputs, [w])
    if kind == "function":
        body = [constant, helper.make_node("Add", ["a", "c"], ["b"])]
        function = helper.make_function("local", "AddC", ["a"], ["b"], body, OPSET)
        call = helper.make_node("AddC", ["g"], ["y"], name="call", domain="local")
        return save(folder / "m.onnx", [gemm, call], inputs, outputs, [w], functions=[function],
                    opsets=OPSET + [helper.make_opsetid("local", 1)])
    if kind == "subgraph":
        flag = numpy_helper.from_array(np.array(True), "flag")
        branch = helper.make_graph([constant, helper.make_node("Add", ["g", "c"], ["b"])], "then", [],
                                   [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3])])
        other = helper.make_graph([helper.make_node("Identity", ["g"], ["b2"])], "else", [], [helper.make_tensor_value_info("b2", TensorProto.FLOAT, [1, 3])])
        node = helper.make_node("If", ["flag"], ["y"], name="if", then_branch=branch, else_branch=other)
        return save(folder / "m.onnx", [gemm, node], inputs, outputs, [w, flag])
    raise ValueError(kind)


EXTERNAL_KINDS = ("initializer", "sparse-values", "sparse-indices", "constant", "function", "subgraph")


def odd_output(folder: Path, kind: str) -> Path:
    """Models that are not classifiers: scalar, 1-wide, 3-D, integer, zero-class outputs."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    gemm = helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm")
    if kind == "scalar":
        nodes, out = [gemm, helper.make_node("ReduceSum", ["g"], ["y"], keepdims=0)], y_output(())
    elif kind == "one-wide":
        nodes, out = [gemm, helper.make_node("ReduceSum", ["g"], ["y"], keepdims=1, axes=None)], y_output((1, 1))
        nodes[1] = helper.make_node("ReduceSum", ["g", "axes"], ["y"], keepdims=1)
    elif kind == "3-d":
        shape = numpy_helper.from_array(np.array([1, 1, 3], np.int64), "shape")
        nodes, out = [gemm, helper.make_node("Reshape", ["g", "shape"], ["y"])], y_output((1, 1, 3))
        return save(folder / f"{kind}.onnx", nodes, [x_input()], [out], [w, shape])
    elif kind == "integer":
        nodes, out = [gemm, helper.make_node("ArgMax", ["g"], ["y"], axis=1)], y_output((1, 1), TensorProto.INT64)
    elif kind == "zero-classes":
        w0 = numpy_helper.from_array(np.ones((4, 0), np.float32), "w")
        return save(folder / f"{kind}.onnx", [gemm, helper.make_node("Identity", ["g"], ["y"])], [x_input()], [y_output((1, 0))], [w0])
    elif kind == "nan":
        nan = numpy_helper.from_array(np.full((4, 3), np.nan, np.float32), "w")
        return save(folder / f"{kind}.onnx", [helper.make_node("Gemm", ["x", "w"], ["y"])], [x_input()], [y_output()], [nan])
    else:
        raise ValueError(kind)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    return save(folder / f"{kind}.onnx", nodes, [x_input()], [out], [w, axes])


ODD_OUTPUTS = ("scalar", "one-wide", "3-d", "integer", "zero-classes", "nan")


def conv_model(path: Path, side: int, channels: int = 3) -> Path:
    """A tiny Conv classifier (a few hundred bytes) that declares an input of side x side pixels."""
    w = numpy_helper.from_array(np.ones((2, channels, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    return save(path, nodes, [x_input((1, channels, side, side))], [y_output((1, 2))], [w])


def png(width: int, height: int, depth: int = 8, color: int = 0, rows: bytes | None = None) -> bytes:
    """A PNG file by hand, so its header can declare what its data does not hold (bombs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]  # 3: palette (no PLTE chunk: hostile)
        row = b"\0" + bytes(width * channels * depth // 8)
        compressor = zlib.compressobj(9)
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    else:
        data = zlib.compress(rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------------
# A hostile current directory: code that must never run

HOSTILE_MODULES = ("pickle", "numpy", "json", "socket", "selectors", "runpy", "signal", "struct", "ortools", "onnx", "scipy", "z3")


def every_module_name() -> list[str]:
    """Every top-level name Python or an installed package could import (the long campaign plants all)."""
    import importlib.metadata
    import sys

    names = set(sys.stdlib_module_names) | {"smugir"}
    for distribution in importlib.metadata.distributions():
        names.update(part.removesuffix(".py") for part in (f.parts[0] for f in distribution.files or ()) if "." not in part.removesuffix(".py"))
    return sorted(n for n in names if n.isidentifier() and n not in ("this", "antigravity"))
MODULE_SOURCE = "open({marker!r}, 'a').write({name!r} + '\\n')\n"
LIBRARY_SOURCE = """
#include <stdio.h>
__attribute__((constructor)) static void hostile(void) {{ FILE *f = fopen("{marker}", "a"); if (f) {{ fputs("libz3\\n", f); fclose(f); }} }}
"""


def hostile_folder(folder: Path, marker: Path, modules=HOSTILE_MODULES) -> list[str]:
    """Fill `folder` with Python modules named like what smugir and Python import (pickle.py,
    numpy.py, ...) and fake `libz3.so*` libraries (when gcc is there), each of which appends its
    name to `marker` when run or loaded. Returns what was planted."""
    planted = []
    for name in modules:
        (folder / f"{name}.py").write_text(MODULE_SOURCE.format(marker=str(marker), name=name))
        planted.append(f"{name}.py")
    gcc = shutil.which("gcc")
    if gcc is not None:
        source = folder / "hostile.c"
        source.write_text(LIBRARY_SOURCE.format(marker=str(marker)))
        for library in ("libz3.so.5.4", "libz3.so"):
            subprocess.run([gcc, "-shared", "-fPIC", "-o", str(folder / library), str(source)], check=True, capture_output=True)
            planted.append(library)
        source.unlink()
    return planted
