"""float16 in front of the first layer (issue 21 item 11): read exactly as onnxruntime computes it, or refused.

A Cast of the input to float16 rounds each element; the reading models that rounding (x' per
element, so a masked input's elements are x' or b'). onnxruntime runs float16 arithmetic its CPU
has no kernel for in float32 and drops the Cast pairs it inserts, so neither rounding happens
there: the reader reads it that way when the ONNX reading does not match onnxruntime, checks it
on onnxruntime, and refuses in one line when neither matches; never approximately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from smugir.cli import main
from smugir.errors import UnsupportedModelError
from smugir.firstlayer import first_layer
from smugir.model import expose_outputs, load_model, make_session

SHAPE = (1, 2, 5, 5)


def _model(path: Path, between: list[str], seed: int, dense: bool) -> Path:
    """x -> Cast(float16) -> ops in float16 -> Cast(float32) -> Conv or Gemm -> Relu -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Cast", ["x"], ["t0"], to=TensorProto.FLOAT16, name="to16")]
    inits, current = [], "t0"
    for i, op in enumerate(between):
        out = f"t{i + 1}"
        if op == "Transpose":
            nodes.append(helper.make_node("Transpose", [current], [out], perm=[0, 1, 3, 2], name=f"op{i}"))
        else:
            inits.append(numpy_helper.from_array(rng.uniform(0.3, 3, size=(1, 2, 1, 1)).astype(np.float16), f"k{i}"))
            nodes.append(helper.make_node(op, [current, f"k{i}"], [out], name=f"op{i}"))
        current = out
    nodes.append(helper.make_node("Cast", [current], ["z"], to=TensorProto.FLOAT, name="to32"))
    if dense:
        nodes += [helper.make_node("Flatten", ["z"], ["zf"], name="flat"), helper.make_node("Gemm", ["zf", "w"], ["pre"], name="linear", transB=1)]
        inits.append(numpy_helper.from_array(rng.normal(size=(6, int(np.prod(SHAPE)))).astype(np.float32), "w"))
        features = 6
    else:
        nodes += [helper.make_node("Conv", ["z", "w"], ["pre"], name="linear")]
        inits.append(numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "w"))
        features = 3 * 3 * 3
    nodes += [helper.make_node("Relu", ["pre"], ["h"], name="relu"), helper.make_node("Flatten", ["h"], ["hf"], name="flat2"),
              helper.make_node("Gemm", ["hf", "w2"], ["logits"], name="fc", transB=1)]
    inits.append(numpy_helper.from_array(rng.normal(size=(2, features)).astype(np.float32), "w2"))
    graph = helper.make_graph(nodes, "fp16", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


@settings(max_examples=20, deadline=None)
@given(between=st.lists(st.sampled_from(["Transpose", "Mul", "Add", "Sub", "Div"]), max_size=2), seed=st.integers(0, 2**16),
       dense=st.booleans(), scale=st.sampled_from([1.0, 10.0, 300.0]))
def test_float16_reading_is_onnxruntime_or_refused(tmp_path_factory, between, seed, dense, scale) -> None:
    model = load_model(_model(tmp_path_factory.mktemp("m") / "m.onnx", between, seed, dense))
    try:
        layer = first_layer(model)
    except UnsupportedModelError as exc:
        assert "float16 rounding" in str(exc) and "onnxruntime" in str(exc)
        assert any(op != "Transpose" for op in between)  # a plain Cast (and layout ops) must be read
        return
    if not between or between[0] == "Transpose":  # onnxruntime rounds at a Cast read by a layout op
        assert [r.dtype for r in layer.input_roundings][:1] == ["float16"]
    session = make_session(expose_outputs(model.proto, ["pre"]))
    rng = np.random.default_rng(seed + 1)
    x = (rng.normal(size=SHAPE) * scale).astype(np.float32)
    baseline = (rng.normal(size=SHAPE) * scale / 3).astype(np.float32)
    mask = rng.random(SHAPE) < 0.5
    for inputs in (x, np.where(mask, x, baseline), np.where(mask, x, 0).astype(np.float32)):
        expected = session.run(["pre"], {"x": inputs})[0].reshape(-1).astype(np.float64)
        read = layer.preactivations(inputs).reshape(-1)
        assert np.abs(read - expected).max() <= 2e-6 * np.abs(expected).max(), (between, np.abs(read - expected).max())


def test_float16_arithmetic_read_as_onnxruntime_runs_it(tmp_path: Path) -> None:
    model = load_model(_model(tmp_path / "m.onnx", ["Mul"], 0, False))
    layer = first_layer(model)
    assert not layer.input_roundings and "no rounding" in layer.preprocessing[0]
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32) * 5
    expected = make_session(expose_outputs(model.proto, ["pre"])).run(["pre"], {"x": x})[0].reshape(-1)
    assert np.abs(layer.preactivations(x).reshape(-1) - expected).max() <= 2e-6 * np.abs(expected).max()


def test_float16_neither_way_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import smugir.reader as reader

    monkeypatch.setattr(reader, "_rounding_error", lambda model, reached: 0.0123)  # as if onnxruntime rounded some third way
    path = _model(tmp_path / "m.onnx", ["Mul"], 0, False)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "float16 rounding" in err and "0.0123 off" in err
