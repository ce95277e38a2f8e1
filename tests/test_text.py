"""Text models: the real polarity CNN of examples/text, word masks, brute-force optimality, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smugir.cli import main
from smugir.model import load_model
from smugir.testing import exhaustive_minimum
from smugir.text import Vocabulary, explain_sentence, prepare_sentence, text_model

TEXT = Path(__file__).parent.parent / "examples" / "text"
MODEL = TEXT / "polarity_cnn.onnx"
VOCAB = TEXT / "vocab.txt"


@pytest.fixture(scope="module")
def polarity():
    return text_model(load_model(MODEL)), Vocabulary.load(VOCAB)


def _test_sentences(count: int) -> list[tuple[int, str]]:
    lines = (TEXT / "test_sentences.tsv").read_text(encoding="utf-8").splitlines()[:count]
    return [(int(label), sentence) for label, sentence in (line.split("\t", 1) for line in lines)]


def test_masked_words_become_padding_in_the_real_model(polarity):
    """With the pad baseline (the pad embedding), masking a word = replacing its id by <pad> in the
    original int64 model: the encoded constraint values equal onnxruntime's on those ids."""
    text, vocabulary = polarity
    rng = np.random.default_rng(0)
    full = text.model

    def pre_of(ids, keep, neurons):
        masked_ids = ids.copy()
        masked_ids[: len(keep)][~keep] = vocabulary.pad_id
        return full.run(masked_ids.reshape(full.input_shape), (setup.layer.pre_name,))[1].reshape(-1)[neurons]

    for (_, sentence), formulation in zip(_test_sentences(6), ["published", "baseline-relative"] * 3):
        setup, words, ids = prepare_sentence(text, sentence, vocabulary, baseline="pad", top_k=16, formulation=formulation)
        problem, neurons = setup.problem, setup.neurons
        pre_x = pre_of(ids, np.ones(len(words), dtype=bool), neurons)
        pre_pad = pre_of(ids, np.zeros(len(words), dtype=bool), neurons)
        # published: pre(masked) - gamma pre(x); baseline-relative: pre(masked) - pre(pad) - gamma (pre(x) - pre(pad))
        threshold = setup.gamma * pre_x if formulation == "published" else pre_pad + setup.gamma * (pre_x - pre_pad)
        for _ in range(8):
            keep = rng.random(len(words)) < 0.5
            encoded = problem.constraint_values(keep) - problem.bounds
            np.testing.assert_allclose(encoded, pre_of(ids, keep, neurons) - threshold, rtol=1e-4, atol=1e-4)


def test_padding_positions_are_never_mask_units(polarity):
    text, vocabulary = polarity
    setup, words, ids = prepare_sentence(text, "a deeply moving film", vocabulary, top_k=8)
    assert setup.units.n_units == len(words) == 4
    assert (setup.units.unit_of.reshape(text.length, -1)[4:] == -1).all()


def test_minimal_masks_are_optimal_by_brute_force(polarity):
    text, vocabulary = polarity
    short = [s for _, s in _test_sentences(200) if len(s.split()) <= 12][:6]
    assert len(short) == 6
    for sentence in short:
        result = explain_sentence(text, sentence, vocabulary, top_k=16)
        best, _ = exhaustive_minimum(result.explanation.problem)
        assert result.explanation.status == "optimal"
        assert result.explanation.objective == best
        assert sum(result.kept) == best


def test_real_model_explains_twenty_test_sentences_all_verified(polarity):
    text, vocabulary = polarity
    kept = []
    for _, sentence in _test_sentences(20):
        result = explain_sentence(text, sentence, vocabulary, top_k=32)
        assert result.explanation.status == "optimal", sentence
        assert result.explanation.best.verified, sentence
        kept.append(sum(result.kept) / len(result.words))
    assert 0 < np.median(kept) < 1


def test_cli_prints_and_writes_html_and_json(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["explain", str(MODEL), "a gorgeous , witty , seductive movie .", "--vocab", str(VOCAB), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "gorgeous" in printed and "optimal" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["words"][:2] == ["a", "gorgeous"] and len(report["kept"]) == 8
    html = (out / "explanation.html").read_text()
    assert "<mark" in html and "gorgeous" in html


def test_cli_text_errors(tmp_path, capsys):
    assert main(["explain", str(MODEL), "great movie"]) == 2
    assert "--vocab" in capsys.readouterr().err
    assert main(["explain", str(MODEL), "   ", "--vocab", str(VOCAB)]) == 2
    assert "no words" in capsys.readouterr().err
    assert main(["explain", str(MODEL), "great movie", "--vocab", str(VOCAB), "--baseline", "mean"]) == 2
    assert "zero, pad" in capsys.readouterr().err
    assert main(["explain", str(MODEL), "great movie", "--vocab", str(VOCAB), "--label", "2"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_text_problems_export_and_solve_elsewhere(tmp_path):
    import external_solvers

    out = tmp_path / "s.smt2"
    args = ["export", str(MODEL), "an utterly charming and hilarious film", "--vocab", str(VOCAB), "--bound", "opt-1", "--out", str(out)]
    assert main(args) == 0
    assert "(set-info :status unsat)" in out.read_text()
    assert external_solvers.run("z3", out)[0] == "unsat"


def _two_d_text_model(path: Path, vocabulary: int = 12, dim: int = 4, length: int = 6, ir_version: int = 10) -> None:
    """ids -> Gather -> Unsqueeze -> 2-D Conv whose kernel spans the embedding -> Relu -> MaxPool -> Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    table = rng.normal(size=(vocabulary, dim)).astype(np.float32)
    table[0] = 0
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        numpy_helper.from_array(rng.normal(size=(5, 1, 3, dim)).astype(np.float32), "kernel"),
        numpy_helper.from_array(rng.normal(size=5).astype(np.float32) * 0.1, "bias"),
        numpy_helper.from_array(rng.normal(size=(2, 5)).astype(np.float32), "dense"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "dense_bias"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed"),
        helper.make_node("Unsqueeze", ["embedded", "axes"], ["image"], name="channel"),
        helper.make_node("Conv", ["image", "kernel", "bias"], ["conv"], name="conv", pads=[1, 0, 1, 0]),
        helper.make_node("Relu", ["conv"], ["act"], name="relu"),
        helper.make_node("MaxPool", ["act"], ["pooled"], name="pool", kernel_shape=[length, 1]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "dense", "dense_bias"], ["logits"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "text2d", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, length])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir_version), path)


def test_two_d_conv_over_the_whole_embedding(tmp_path):
    _two_d_text_model(tmp_path / "text2d.onnx")
    (tmp_path / "vocab.txt").write_text("\n".join(["<pad>", "<unk>"] + [f"w{i}" for i in range(10)]))
    text = text_model(load_model(tmp_path / "text2d.onnx"))
    vocabulary = Vocabulary.load(tmp_path / "vocab.txt")
    result = explain_sentence(text, "w1 w2 w3 w4", vocabulary, baseline="pad", top_k=4)
    assert result.explanation.best.verified
    best, _ = exhaustive_minimum(result.explanation.problem)
    assert result.explanation.objective == best


def test_a_model_onnxruntime_cannot_run_is_a_named_error(tmp_path, capsys):
    _two_d_text_model(tmp_path / "new.onnx", ir_version=14)
    (tmp_path / "vocab.txt").write_text("<pad>\n<unk>\nw1")
    assert main(["explain", str(tmp_path / "new.onnx"), "w1 w2", "--vocab", str(tmp_path / "vocab.txt")]) == 2
    assert "onnxruntime 1.31.1 cannot run the model" in capsys.readouterr().err
