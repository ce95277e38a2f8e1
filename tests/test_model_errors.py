"""Bad models and files: each gets its named error, and the CLI one line on stderr with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import DATA
from onnx import TensorProto, helper, numpy_helper

from smugir.cli import main
from smugir.errors import ModelFileError, UnsafeModelError, UnsupportedModelError, UnsupportedOpError
from smugir.firstlayer import first_layer
from smugir.model import load_model, suffix_model

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"


def _save(tmp_path, nodes, inputs, initializers=(), output=("y", [1, 3]), name="m.onnx"):
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])], list(initializers)
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = tmp_path / name
    onnx.save(proto, path)
    return path


def _dense_model(tmp_path, first_ops=(), input_shape=(1, 4), name="m.onnx"):
    """first_ops: (op, attrs) applied to the input before Gemm(4 -> 3)."""
    nodes, t = [], "x"
    for k, (op, attrs) in enumerate(first_ops):
        nodes.append(helper.make_node(op, [t], [f"t{k}"], name=f"{op}_{k}", **attrs))
        t = f"t{k}"
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes.append(helper.make_node("Gemm", [t, "w"], ["y"], name="gemm"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))
    return _save(tmp_path, nodes, [x], [w], name=name)


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_file(tmp_path, capsys):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
    code, out, err = _cli(capsys, "inspect", str(tmp_path / "nope.onnx"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "does not exist" in err


def test_non_onnx_file(tmp_path, capsys):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a protobuf\n" * 20)
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        load_model(path)
    code, _, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1


def test_truncated_file(tmp_path, capsys):
    path = tmp_path / "cut.onnx"
    path.write_bytes(MNIST.read_bytes()[:50_000])
    with pytest.raises(ModelFileError):
        load_model(path)
    code, _, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and err.startswith("smug inspect: error:")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ModelFileError):
        load_model(tmp_path)


def test_softmax_first_is_named(tmp_path, capsys):
    path = _dense_model(tmp_path, [("Softmax", {"axis": 1})])
    with pytest.raises(UnsupportedOpError) as info:
        first_layer(load_model(path))
    assert info.value.op_type == "Softmax" and info.value.node_name == "Softmax_0"
    assert "Gemm" in str(info.value) and "right after the data input" in str(info.value)
    code, _, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and "Softmax" in err and "Softmax_0" in err


def test_unsupported_op_between_input_and_layer(tmp_path):
    path = _dense_model(tmp_path, [("Identity", {}), ("Relu", {})])
    with pytest.raises(UnsupportedOpError, match=r"Relu \(node 'Relu_1'\) between"):
        first_layer(load_model(path))


def test_two_data_inputs(tmp_path):
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Gemm", ["s", "w"], ["y"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")]
    path = _save(tmp_path, nodes, inputs, [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    with pytest.raises(UnsupportedModelError, match=r"2 data inputs \('a', 'b'\)"):
        load_model(path)


def test_dynamic_non_batch_dimension(tmp_path):
    path = _dense_model(tmp_path, input_shape=(1, "features"))
    with pytest.raises(UnsupportedModelError, match="dynamic dimension 'features' at axis 1"):
        load_model(path).input_shape


def test_input_read_twice(tmp_path):
    nodes = [helper.make_node("Add", ["x", "x"], ["s"], name="double"), helper.make_node("Gemm", ["s", "w"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    path = _save(tmp_path, nodes, [x], [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    with pytest.raises(UnsupportedModelError, match="not affine"):
        first_layer(load_model(path))


def test_division_of_constant_by_input(tmp_path):
    c = numpy_helper.from_array(np.float32(2.0), "two")
    nodes = [helper.make_node("Div", ["two", "x"], ["s"], name="inv"), helper.make_node("Gemm", ["s", "w"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    path = _save(tmp_path, nodes, [x], [c, numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    with pytest.raises(UnsupportedModelError, match="divides a constant by the input"):
        first_layer(load_model(path))


def _external_model(tmp_path, location: str):
    """A valid model whose weight is stored externally at `location` (relative to the model)."""
    path = _dense_model(tmp_path)
    proto = onnx.load(path)
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)
    return path


def test_external_data_inside_folder_loads(tmp_path):
    (tmp_path / "weights.bin").write_bytes(np.full((4, 3), 2.0, np.float32).tobytes())
    layer = first_layer(load_model(_external_model(tmp_path, "weights.bin")))
    assert np.allclose(layer.weight, 2.0)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location, capsys):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    path = _external_model(model_dir, location)
    with pytest.raises(UnsafeModelError, match="outside|only relative"):
        load_model(path)
    code, _, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and "external data" in err


def test_external_data_symlink_escaping_is_refused(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    (model_dir / "weights.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(UnsafeModelError, match="resolves outside"):
        load_model(_external_model(model_dir, "weights.bin"))


def test_suffix_refused_when_output_reads_the_raw_input(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["pre"], name="first"),
        helper.make_node("Relu", ["pre"], ["h"], name="act"),
        helper.make_node("Add", ["h", "x"], ["y"], name="skip"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    path = _save(tmp_path, nodes, [x], [w], output=("y", [1, 4]))
    model = load_model(path)
    with pytest.raises(UnsupportedModelError, match=r"node 'skip' \(Add\) also reads the graph input 'x'"):
        suffix_model(model.proto, "h")


def test_inspect_text_and_json(capsys):
    code, out, _ = _cli(capsys, "inspect", str(DATA / "cifar" / "cifar10_small.onnx"))
    assert code == 0 and "conv2d" in out and "1800 neurons" in out and "Transpose" in out
    code, out, _ = _cli(capsys, "inspect", "--json", str(DATA / "mnist" / "mnist_relu_9_200.onnx"))
    summary = json.loads(out)
    assert summary["first_layer"]["kind"] == "dense" and summary["first_layer"]["neurons"] == 200
    assert [p.split(" ")[0] for p in summary["preprocessing"]] == ["Sub", "Div", "Flatten"]
    assert summary["inputs"][0]["shape"] == [1, 1, 28, 28] and summary["opset"] == 9
