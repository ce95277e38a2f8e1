"""One copy of the weights: placeholders in the graph, arrays in a shared table, sessions fed from it."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pytest
from conftest import DATA, mnist_samples
from onnx import TensorProto, helper, numpy_helper

from smugir import sessions, weights
from smugir.model import load_model, make_session, run_session

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"


def _gemm(values: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, values.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, values.shape[1]])],
                              [numpy_helper.from_array(values, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_a_loaded_model_holds_placeholders_that_nothing_can_open_as_a_file():
    model = load_model(MNIST)
    light = [t for t in model.proto.graph.initializer if weights.is_placeholder(t)]
    assert light and all(not t.raw_data for t in light)
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load(MNIST).graph.initializer}
    for tensor in light:
        np.testing.assert_array_equal(weights.array(tensor), original[tensor.name])
        with pytest.raises(Exception):  # the NUL-led location is no file name: nothing in the current directory is read
            numpy_helper.to_array(tensor, base_dir=".")


def test_the_checker_sees_the_graph_without_the_placeholders_and_still_checks_it():
    model = load_model(MNIST)
    with pytest.raises(onnx.checker.ValidationError):  # it would try to open a placeholder as a file
        onnx.checker.check_model(model.proto)
    onnx.checker.check_model(weights.checkable(model.proto))
    assert any(weights.is_placeholder(t) for t in model.proto.graph.initializer)  # the model itself is untouched
    broken = weights.checkable(model.proto)
    broken.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(onnx.checker.ValidationError, match="NoSuchOp"):
        onnx.checker.check_model(broken)


def test_equal_contents_share_one_array_and_different_contents_do_not():
    values = np.arange(4096, dtype=np.float32).reshape(64, 64)
    first, held_first = weights.lighten(_gemm(values))
    second, held_second = weights.lighten(_gemm(values.copy()))
    changed, held_changed = weights.lighten(_gemm(values + 1))
    assert held_first["W"] is held_second["W"]
    assert held_changed["W"] is not held_first["W"]
    np.testing.assert_array_equal(weights.array(changed.graph.initializer[0]), values + 1)


def test_a_placeholder_whose_holders_are_gone_fails_loudly():
    light, held = weights.lighten(_gemm(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)))
    del held
    gc.collect()
    with pytest.raises(RuntimeError, match="released"):
        weights.array(light.graph.initializer[0])


def test_a_fed_session_gives_the_held_sessions_outputs(monkeypatch):
    model = load_model(MNIST)
    x = mnist_samples()[0][0].reshape(model.input_shape).astype(np.float32)
    held = run_session(make_session(model.proto), None, {model.input_name: x})[0]
    monkeypatch.setattr(sessions, "FEED_BYTES", 0)
    fed = make_session(model.proto)
    assert fed.fed and [i.name for i in fed.get_inputs()] == [model.input_name]
    np.testing.assert_allclose(run_session(fed, None, {model.input_name: x})[0], held, rtol=1e-5, atol=1e-6)


def test_fed_sessions_share_one_copy_of_the_weights(monkeypatch):
    """Four plain sessions of a 64 MB model add about 64 MB, not 256 (each held its own copy before)."""
    monkeypatch.setattr(sessions, "FEED_BYTES", 0)
    light, held = weights.lighten(_gemm(np.random.default_rng(1).normal(size=(4096, 4096)).astype(np.float32)))
    gc.collect()
    before = _rss_mb()
    made = [make_session(light) for _ in range(4)]
    for session in made:
        session.run(None, {"x": np.ones((1, 4096), np.float32)})
    assert _rss_mb() - before < 40, "each session copied the weights"
