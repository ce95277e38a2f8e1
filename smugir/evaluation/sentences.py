"""The comparison table for text classifiers: one score per word, scored by the text saliency metric.

A text model is explained from its embedding output (`smugir.text`), so every method gives a score
per token position: SMUG and SMUG_base their unit scores, IG and the gradient the attribution of
each word's embedding row (summed over the embedding), occlusion the drop of the label's
probability when the word becomes padding. The metric keeps the words above each threshold,
pads the rest and classifies the token ids with the original model (`text_saliency_metric`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from smugir.attribution import integrated_gradients, provider_for
from smugir.datasets import Item
from smugir.errors import InputError
from smugir.evaluation.comparison import Record
from smugir.evaluation.metrics import sparsity, text_saliency_metric, thinned
from smugir.explain import finish
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT
from smugir.model import Model, run_session
from smugir.text import TextModel, Vocabulary, check_vocabulary, prepare_sentence, text_model
from smugir.verify import probabilities

TEXT_METHODS = ("smug", "smug_base", "ig", "gradient", "occlusion")
IG_STEPS = 64


class SentenceClassifier:
    """`classifier(ids (B, length))` -> class probabilities (B, classes), batched when the model allows."""

    def __init__(self, model: Model):
        self.model = model

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape((-1, *self.model.input_shape[1:]))
        session, model = self.model.session(), self.model
        feeds = [ids] if model.batch_dynamic else [row[None] for row in ids]
        rows = [np.asarray(run_session(session, [model.output_name], {model.input_name: feed})[0]).reshape(len(feed), -1) for feed in feeds]
        return np.stack([probabilities(model, row) for block in rows for row in block])


def word_scores(method: str, text: TextModel, vocabulary: Vocabulary, sentence: str, label: int,
                smug: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, one score per position) of `method` for class `label`; padding positions score 0."""
    if method not in TEXT_METHODS:
        raise InputError(f"unknown text saliency method {method!r}; accepted: {', '.join(TEXT_METHODS)}")
    if method in ("smug", "smug_base"):
        options = dict(smug or {})
        solver, timeout = options.pop("solver", None) or DEFAULT_SOLVER, options.pop("timeout", DEFAULT_TIMEOUT)
        encoding = "smug_base" if method == "smug_base" else options.pop("method", "smug")
        setup, words, ids = prepare_sentence(text, sentence, vocabulary, label=label, method=encoding, **options)
        explanation = finish(setup, solver, timeout)
        scores = np.zeros(ids.size)
        scores[: len(words)] = np.where(explanation.unit_mask, explanation.unit_saliency, 0.0)[: len(words)]
        return ids, scores
    # The other methods need neither IG over the conv layer nor a masking problem: only the ids.
    ids, words = vocabulary.encode(sentence, text.length)
    scores = np.zeros(ids.size)
    if method in ("ig", "gradient"):
        gradient = provider_for(text.embedded, text.embedded.input_name, "logit")
        x = text.embed(ids).reshape(text.length, -1).astype(np.float64)
        if method == "ig":
            per_element = integrated_gradients(gradient, x, label, IG_STEPS, target="logit").scores.reshape(x.shape)
        else:
            per_element = gradient(x[None], label)[1].reshape(x.shape) * x  # gradient x input
        scores[: len(words)] = per_element.sum(axis=1)[: len(words)]
    else:
        classify = SentenceClassifier(text.model)
        occluded = np.repeat(ids[None], len(words), axis=0)
        occluded[np.arange(len(words)), np.arange(len(words))] = vocabulary.pad_id
        base = classify(ids[None])[0, label]
        scores[: len(words)] = base - classify(occluded)[:, label]
    return ids, scores


def compare_sentences(
    model: Model,
    vocabulary: Vocabulary,
    items: Sequence[Item],
    methods: Sequence[str] = TEXT_METHODS,
    smug: Mapping[str, Any] | None = None,
    only_correct: bool = False,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    kept_scores: dict[tuple[str, str], tuple[list[str], np.ndarray]] | None = None,
) -> tuple[list[Record], list[str]]:
    """Records (the area is the kept fraction of the words, the box None) and the skipped ids;
    `kept_scores`, when given, receives each (sentence id, method)'s words and their scores (for the gallery)."""
    unknown = [m for m in methods if m not in TEXT_METHODS]
    if unknown:
        raise InputError(f"unknown text saliency method(s) {', '.join(unknown)}; accepted: {', '.join(TEXT_METHODS)}")
    if only_correct and any(item.label is None for item in items):
        raise InputError("keeping only the correctly classified sentences needs labels: use a .tsv of label<TAB>sentence")
    text = text_model(model)
    check_vocabulary(text, vocabulary)
    classify = SentenceClassifier(model)
    records, skipped = [], []
    for item in progress(items):
        ids, tokens = vocabulary.encode(str(item.x), text.length)
        predicted = int(np.argmax(classify(ids[None])[0]))
        if only_correct and predicted != item.label:
            skipped.append(item.id)
            continue
        label = predicted if item.label is None else int(item.label)
        for method in dict.fromkeys(methods):
            clock = time.perf_counter()
            ids, scores = word_scores(method, text, vocabulary, str(item.x), label, smug)
            seconds = time.perf_counter() - clock
            score = text_saliency_metric(classify, ids, scores, label, vocabulary.pad_id)
            words = ids != vocabulary.pad_id
            records.append(Record(model.path.name, item.id, label, method, score.score, score.area, score.probability,
                                  None, sparsity(scores[words]), seconds, curve=thinned(score.curve)))
            if kept_scores is not None:
                kept_scores[(item.id, method)] = (tokens, scores[words])
    return records, skipped
