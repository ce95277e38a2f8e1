"""First layers smugir cannot read are refused the same way by every command (issue 21 item 11):
MatMul on a 1-D input (inspect accepted it, explain crashed) and Clip with a NaN bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from smugir.cli import main


def _matmul_1d(path: Path) -> tuple[Path, tuple[int, ...]]:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["pre"], name="mm"), helper.make_node("Relu", ["pre"], ["h"], name="relu"),
             helper.make_node("MatMul", ["h", "w2"], ["logits"], name="mm2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3])],
                              [numpy_helper.from_array(rng.normal(size=(6, 5)).astype(np.float32), "w"),
                               numpy_helper.from_array(rng.normal(size=(5, 3)).astype(np.float32), "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path, (6,)


def _clip_nan(path: Path, low: float, high: float, opset: int) -> tuple[Path, tuple[int, ...]]:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(5, 6)).astype(np.float32), "w"), numpy_helper.from_array(np.zeros(5, np.float32), "b"),
             numpy_helper.from_array(rng.normal(size=(3, 5)).astype(np.float32), "w2"), numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    if opset >= 11:
        inits += [numpy_helper.from_array(np.array(low, np.float32), "lo"), numpy_helper.from_array(np.array(high, np.float32), "hi")]
        clip = helper.make_node("Clip", ["pre", "lo", "hi"], ["h"], name="clip")
    else:
        clip = helper.make_node("Clip", ["pre"], ["h"], name="clip", min=low, max=high)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["pre"], name="fc", transB=1), clip,
             helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8 if opset >= 11 else 5), path)
    return path, (1, 6)


CASES = {
    "matmul-1d": (lambda p: _matmul_1d(p), "1-D input"),
    "clip-nan-min": (lambda p: _clip_nan(p, float("nan"), 6.0, 13), "NaN minimum"),
    "clip-nan-max": (lambda p: _clip_nan(p, 0.0, float("nan"), 13), "NaN maximum"),
    "clip-nan-min-attribute": (lambda p: _clip_nan(p, float("nan"), 6.0, 9), "NaN minimum"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["inspect", "explain"])
def test_refused_in_one_line_by_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str) -> None:
    build, expected = CASES[case]
    path, shape = build(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.ones(shape, np.float32))
    args = [command, str(path)] + ([str(tmp_path / "x.npy"), "--out", str(tmp_path / "out"), "--no-html"] if command == "explain" else [])
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
