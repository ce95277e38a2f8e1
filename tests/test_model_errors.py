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


# --------------------------------------------------------------------------------------------------
# The loading gate: external data through every kind of tensor, special files, the hash, the budget

import os  # noqa: E402
import socket  # noqa: E402

import hostile  # noqa: E402

from smugir import budget  # noqa: E402
from smugir.errors import NotAClassifierError  # noqa: E402


@pytest.mark.parametrize("kind", hostile.EXTERNAL_KINDS)
def test_external_data_of_every_tensor_kind_is_read_from_the_model_folder_only(tmp_path, monkeypatch, kind, capsys):
    """The attack of issue 15: a tensor in a local function or a sparse initializer names
    `.ssh/id_rsa`; the checker and onnxruntime used to resolve it against the current directory."""
    values = np.arange(3, dtype=np.int64) if kind == "sparse-indices" else np.array([100, 0, 0], np.float32)
    cwd = tmp_path / "home"
    (cwd / ".ssh").mkdir(parents=True)
    (cwd / ".ssh" / "id_rsa").write_bytes(values.tobytes())
    monkeypatch.chdir(cwd)
    folder = tmp_path / "model"
    folder.mkdir()
    path = hostile.external_via(kind, folder, ".ssh/id_rsa", values=(100, 0, 0))
    with pytest.raises(UnsafeModelError, match=r"id_rsa' does not exist"):
        load_model(path)
    code, out, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and str(folder) in err
    (folder / ".ssh").mkdir()
    (folder / ".ssh" / "id_rsa").write_bytes(values.tobytes())  # inside the folder: read, and used
    model = load_model(path)
    np.testing.assert_allclose(model.run(np.ones((1, 4), np.float32))[0], [[104, 4, 4]])


def test_external_data_hard_link_fifo_and_socket_are_refused_by_name(tmp_path, capsys):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(bytes(12))
    cases = {"hard link": lambda p: os.link(outside, p), "FIFO": os.mkfifo}
    for label, make in cases.items():
        folder = tmp_path / label.replace(" ", "_")
        folder.mkdir()
        make(folder / "c.bin")
        path = hostile.external_via("initializer", folder, "c.bin")
        with pytest.raises(UnsafeModelError, match="hard links" if label == "hard link" else "is a FIFO"):
            load_model(path)
        code, _, err = _cli(capsys, "inspect", str(path))
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    folder = tmp_path / "socket"
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(folder / "c.bin"))
        with pytest.raises(UnsafeModelError, match="is a socket"):
            load_model(hostile.external_via("initializer", folder, "c.bin"))
    finally:
        server.close()


def test_model_file_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="is a FIFO"):
        load_model(tmp_path / "m.onnx")


def test_huge_sparse_external_file_is_refused_before_reading(tmp_path, capsys):
    """251 bytes of model, 8 GiB of (sparse, empty) external data in its own folder."""
    with open(tmp_path / "c.bin", "wb") as stream:
        stream.truncate(8 << 30)
    path = hostile.external_via("initializer", tmp_path, "c.bin", length=8 << 30)
    proto = onnx.load(path, load_external_data=False)
    proto.graph.initializer[1].dims[:] = [2 << 30]  # declares the whole file
    onnx.save(proto, path)
    code, _, err = _cli(capsys, "inspect", str(path), "--max-memory", "1G")
    assert code == 2 and err.count("\n") == 1 and "needs 24.0 GiB, over the memory limit of 1.0 GiB" in err
    with budget.limited(64 << 30), pytest.raises(UnsupportedModelError, match="protobuf's limit"):
        load_model(path)
    proto.graph.initializer[1].dims[:] = [3]  # a shape that does not match the range
    onnx.save(proto, path)
    with pytest.raises(ModelFileError, match=r"declares shape \[3\] \(12 bytes\) but its external data has 8589934592"):
        load_model(path)


def test_external_range_beyond_the_file_is_refused(tmp_path):
    (tmp_path / "c.bin").write_bytes(bytes(8))
    with pytest.raises(ModelFileError, match="which has 8 bytes"):
        load_model(hostile.external_via("initializer", tmp_path, "c.bin"))


def test_model_sha256_covers_the_external_data(tmp_path):
    import hashlib

    hashes = []
    for weight in (0.0, 1.0):
        folder = tmp_path / f"w{weight}"
        folder.mkdir()
        (folder / "c.bin").write_bytes(np.full(3, weight, np.float32).tobytes())
        path = hostile.external_via("initializer", folder, "c.bin")
        hashes.append(load_model(path).sha256)
        expected = hashlib.sha256(path.read_bytes() + (folder / "c.bin").read_bytes()).hexdigest()
        assert hashes[-1] == expected  # the documented definition: model bytes, then each range by (location, offset)
    assert (tmp_path / "w0.0" / "m.onnx").read_bytes() == (tmp_path / "w1.0" / "m.onnx").read_bytes()
    assert hashes[0] != hashes[1]
    plain = hostile.dense(tmp_path)
    assert load_model(plain).sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


@pytest.mark.parametrize("dims, held, message", [
    ([4000000, 3000000], None, r"tensor 'w' \(of .*\) declares shape \[4000000, 3000000\] \(48000000000000 bytes\) but holds 48 bytes"),
    ([2], None, r"tensor 'w' \(of .*\) declares shape \[2\] \(8 bytes\) but holds 48 bytes"),
    ([1, 2000], 4000, r"tensor 'w' \(of .*\) declares shape \[1, 2000\] \(8000 bytes\) but holds 16000 bytes"),  # a large one
])
def test_raw_data_of_another_size_than_the_shape_is_refused(tmp_path, dims, held, message):
    path = hostile.dense(tmp_path)
    proto = onnx.load(path)
    weight = proto.graph.initializer[0]
    if held:  # a large float tensor: checked where the weights are shared (`smugir.weights.share`)
        weight.raw_data = np.zeros(held, np.float32).tobytes()
    weight.dims[:] = dims
    onnx.save(proto, path)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_a_large_tensor_with_more_typed_values_than_its_shape_is_refused(tmp_path):
    """float_data instead of raw_data: counted before numpy reshapes it (that was a traceback)."""
    path = hostile.dense(tmp_path)
    proto = onnx.load(path)
    weight = proto.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.float_data[:] = [0.0] * 4000
    weight.dims[:] = [1, 2000]
    onnx.save(proto, path)
    with pytest.raises(ModelFileError, match=r"tensor 'w' \(of .*\) declares shape \[1, 2000\] \(8000 bytes\) but holds 16000 bytes"):
        load_model(path)


@pytest.mark.parametrize("kind", hostile.ODD_OUTPUTS)
def test_not_a_classifier_is_named(tmp_path, kind, capsys):
    path = hostile.odd_output(tmp_path, kind)
    with pytest.raises(NotAClassifierError):
        load_model(path).run(np.ones((1, 4), np.float32))
    np.save(tmp_path / "x.npy", np.ones(4, np.float32))
    code, out, err = _cli(capsys, "explain", str(path), str(tmp_path / "x.npy"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert any(word in err for word in ("class", "scalar", "3-D", "float", "non-finite")), err


def test_one_dimensional_class_scores_are_accepted(tmp_path):
    shape = numpy_helper.from_array(np.array([3], np.int64), "shape")
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"]), helper.make_node("Reshape", ["g", "shape"], ["y"])]
    path = hostile.save(tmp_path / "flat.onnx", nodes, [hostile.x_input()], [hostile.y_output((3,))], [w, shape])
    assert load_model(path).run(np.ones((1, 4), np.float32))[0].shape == (3,)


def test_onnxruntime_failure_at_run_time_is_named(tmp_path, capsys):
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    shape = numpy_helper.from_array(np.array([2, 2], np.int64), "shape")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm"), helper.make_node("Reshape", ["g", "shape"], ["y"], name="bad")]
    path = hostile.save(tmp_path / "m.onnx", nodes, [hostile.x_input()], [hostile.y_output((2, 2))], [w, shape])
    np.save(tmp_path / "x.npy", np.ones(4, np.float32))
    code, _, err = _cli(capsys, "explain", str(path), str(tmp_path / "x.npy"))
    assert code == 2 and err.count("\n") == 1 and "onnxruntime" in err and "Traceback" not in err


def test_names_with_escapes_and_newlines_stay_on_one_escaped_line(tmp_path, capsys):
    evil = "evil\x1b[31m\nsecond line\r"
    path = _dense_model(tmp_path, [("Identity", {}), ("Softmax", {"axis": 1})])
    proto = onnx.load(path)
    for node in proto.graph.node:
        node.name = evil + node.name
    onnx.save(proto, path)
    code, out, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err and "\\x1b[31m\\nsecond line" in err
    path = _dense_model(tmp_path, [("Identity", {})], name="ok.onnx")
    proto = onnx.load(path)
    proto.graph.node[0].name = evil
    onnx.save(proto, path)
    code, out, _ = _cli(capsys, "inspect", str(path))
    assert code == 0 and "\x1b" not in out and "\r" not in out and "\\x1b" in out


def test_declared_input_memory_bomb_is_refused_before_allocating(tmp_path, capsys):
    path = hostile.conv_model(tmp_path / "big.onnx", 100_000)
    code, _, err = _cli(capsys, "inspect", str(path))
    assert code == 2 and err.count("\n") == 1 and "[1, 3, 100000, 100000] needs 670.6 GiB" in err
    path = hostile.conv_model(tmp_path / "mid.onnx", 8000)
    code, _, err = _cli(capsys, "inspect", str(path), "--max-memory", "1G")
    assert code == 2 and "over the memory limit of 1.0 GiB" in err
