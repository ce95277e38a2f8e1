"""The evaluation table for the real text model: word scores of every method, the text metric, the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from smugir.cli import main
from smugir.datasets import read_dataset
from smugir.errors import UnsupportedModelError
from smugir.evaluation.sentences import TEXT_METHODS, SentenceClassifier, compare_sentences, word_scores
from smugir.model import load_model
from smugir.text import Vocabulary, explain_sentence, text_model

TEXT = Path(__file__).parent.parent / "examples" / "text"
MODEL, VOCAB, SENTENCES = TEXT / "polarity_cnn.onnx", TEXT / "vocab.txt", TEXT / "test_sentences.tsv"
SENTENCE = "a gorgeous , witty , seductive movie ."


@pytest.fixture(scope="module")
def polarity():
    return text_model(load_model(MODEL)), Vocabulary.load(VOCAB)


@pytest.mark.parametrize("method", TEXT_METHODS)
def test_every_method_scores_the_words_and_never_the_padding(polarity, method):
    text, vocabulary = polarity
    ids, scores = word_scores(method, text, vocabulary, SENTENCE, 1)
    words = ids != vocabulary.pad_id
    assert words.sum() == 8 and scores.shape == ids.shape
    assert np.all(np.isfinite(scores)) and np.all(scores[~words] == 0) and np.any(scores[words] != 0)


def test_smug_word_scores_are_the_explanations(polarity):
    text, vocabulary = polarity
    _, scores = word_scores("smug", text, vocabulary, SENTENCE, 1)
    explained = explain_sentence(text, SENTENCE, vocabulary, label=1)
    np.testing.assert_allclose(scores[:8], explained.scores)


def test_occlusion_is_the_probability_drop_of_padding_a_word(polarity):
    text, vocabulary = polarity
    ids, scores = word_scores("occlusion", text, vocabulary, SENTENCE, 1)
    classify = SentenceClassifier(text.model)
    padded = ids.copy()
    padded[1] = vocabulary.pad_id  # "gorgeous"
    assert scores[1] == pytest.approx(classify(ids[None])[0, 1] - classify(padded[None])[0, 1])


def test_compare_scores_only_correct_sentences(polarity):
    text, vocabulary = polarity
    items = read_dataset(SENTENCES, text.model.input_shape, None)[:8]
    records, skipped = compare_sentences(text.model, vocabulary, items, ("smug", "ig"), only_correct=True)
    assert len(records) == 2 * (8 - len(skipped))
    assert all(0 < r.area <= 1 and 0 <= r.probability <= 1 and r.box is None for r in records)


def test_cli_eval_on_sentences(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", str(MODEL), str(SENTENCES), "--vocab", str(VOCAB), "--limit", "5", "--methods", "smug,occlusion", "--out", str(out)])
    assert code == 0
    assert "Occlusion" in capsys.readouterr().out
    with open(out / "summary.csv", newline="") as stream:
        assert [row["method"] for row in csv.DictReader(stream)] == ["smug", "occlusion"]
    assert (out / "lsc.png").is_file() and (out / "records.csv").is_file()


def test_cli_text_eval_errors(tmp_path, capsys):
    assert main(["eval", str(MODEL), str(SENTENCES)]) == 2
    assert "--vocab" in capsys.readouterr().err
    assert main(["eval", str(MODEL), str(SENTENCES), "--vocab", str(VOCAB), "--methods", "gradcam"]) == 2
    assert "unknown text saliency method" in capsys.readouterr().err
    assert main(["sanity", str(MODEL), str(SENTENCES), "--vocab", str(VOCAB)]) == 2
    assert "token ids" in capsys.readouterr().err


def test_a_vocabulary_larger_than_the_embedding_table_is_refused(tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(VOCAB.read_text() + "\n".join(f"extra{i}" for i in range(200)))
    assert main(["eval", str(MODEL), str(SENTENCES), "--vocab", str(vocab), "--limit", "2", "--methods", "occlusion"]) == 2
    assert "embedding table only 9022 rows" in capsys.readouterr().err


def test_sentence_classifier_run_failures_are_named_errors(polarity, monkeypatch):
    class Failing:
        def run(self, names, feed):
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad ids")

    text, _ = polarity
    classify = SentenceClassifier(text.model)
    monkeypatch.setattr(text.model, "session", lambda *a, **k: Failing())
    with pytest.raises(UnsupportedModelError, match="failed running the model: .*bad ids"):
        classify(np.zeros((1, *text.model.input_shape[1:]), dtype=np.int64))
