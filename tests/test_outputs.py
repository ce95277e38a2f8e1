"""Models with several outputs (issue 20 item 2): the class scores chosen by type and shape, or by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from smugir.cli import main
from smugir.errors import NotAClassifierError, UnsupportedModelError
from smugir.model import load_model

ZOO = Path(__file__).parent / "data" / "zoo"
DIGITS = ZOO / "sklearn_mlp_digits.onnx"


def test_skl2onnx_zipmap_probabilities_are_the_scores() -> None:
    model = load_model(DIGITS)
    named = load_model(DIGITS, "output_probability")
    assert model.output_name == named.output_name == "out_activations_result"
    assert [o.name for o in model.proto.graph.output] == ["out_activations_result"]
    assert not any(n.domain == "ai.onnx.ml" for n in model.proto.graph.node)  # ZipMap, ArrayFeatureExtractor cut away
    assert "ZipMap output 'output_probability' by type and shape; not explained: 'output_label'" in model.output_note
    images = np.load(ZOO / "digits_samples.npz")["images"].reshape(-1, 64).astype(np.float32)
    original = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])
    labels, maps = original.run(None, {"input": images})
    for image, label, probabilities in zip(images, labels, maps):
        scores = model.run(image)[0].reshape(-1)
        np.testing.assert_array_equal(scores, np.array([probabilities[k] for k in range(10)], dtype=np.float32))
        assert int(np.argmax(scores)) == int(label)


def _two_float_outputs(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
             helper.make_node("ArgMax", ["logits"], ["label"], name="argmax", axis=1)]
    inits = [numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [1, 1]),
                               helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_two_float_score_outputs_need_a_name(tmp_path: Path) -> None:
    path = _two_float_outputs(tmp_path / "two.onnx")
    with pytest.raises(UnsupportedModelError, match=r"3 outputs .*'logits'.*'probabilities'.*2 are float class scores; choose .*--output NAME"):
        load_model(path)
    logits, probabilities = load_model(path, "logits"), load_model(path, "probabilities")
    assert (logits.output_name, probabilities.output_name) == ("logits", "probabilities")
    assert logits.sha256 != probabilities.sha256  # no cache may hand one output's results to the other
    x = np.ones(4, np.float32)
    np.testing.assert_allclose(probabilities.run(x)[0], np.exp(logits.run(x)[0]) / np.exp(logits.run(x)[0]).sum(), rtol=1e-6)
    with pytest.raises(NotAClassifierError, match="'label' .* not float class scores"):
        load_model(path, "label")
    with pytest.raises(UnsupportedModelError, match="has no output 'nope'; its outputs: 'label'"):
        load_model(path, "nope")


def test_one_output_models_are_read_as_before(tmp_path: Path) -> None:
    path = _two_float_outputs(tmp_path / "two.onnx")
    one = load_model(path, "logits")
    onnx.save(one.proto, tmp_path / "one.onnx")
    raw = load_model(tmp_path / "one.onnx")
    assert raw.sha256 == __import__("hashlib").sha256((tmp_path / "one.onnx").read_bytes()).hexdigest()
    with pytest.raises(UnsupportedModelError, match="has no output 'probabilities'"):
        load_model(tmp_path / "one.onnx", "probabilities")


@pytest.mark.parametrize("args", [["inspect"], ["explain", "--output", "nope"], ["export", "--output", "nope"]])
def test_cli_one_line_for_an_ambiguous_or_unknown_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    path = _two_float_outputs(tmp_path / "two.onnx")
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    extra = [str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")] if args[0] != "inspect" else []
    if args[0] == "export":
        extra = [str(tmp_path / "x.npy"), "--out", str(tmp_path / "problem.smt2")]
    code = main([args[0], str(path), *extra, *args[1:]])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ("--output NAME" in err) if args == ["inspect"] else ("has no output 'nope'" in err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "problem.smt2").exists()


def test_explain_skl2onnx_digits_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", str(DIGITS), f"{ZOO / 'digits_samples.npz'}:images[0]", "--scale", "1", "--out", str(tmp_path / "out"),
                 "--no-html", "--timeout", "60"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verified"] is True and report["objective"] is not None
