"""Text classifiers: token ids -> embedding (Gather) -> 1-D conv. The mask unit is a word.

Token ids are not a space a mask can interpolate in, so smugir explains the model from its
embedding output on: the sub-model from the Gather output to the logits takes the embedded sentence
(one row per position), a masked word's row becomes the baseline (zero vector, or the padding
token's embedding), and padding positions are never mask units. Everything else (first-layer IR,
IG, constraints, solvers, verification) is the image pipeline unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from smugir.errors import InputError, UnsupportedModelError
from smugir.model import Model, model_from_proto, suffix_model
from smugir.safefiles import read_text_file
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT
from smugir.units import InputLayout, MaskUnits, segment_units
from smugir import weights

if TYPE_CHECKING:
    from smugir.explain import Explanation, Setup

_ID_PASSTHROUGH = ("Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze")


@dataclass(frozen=True)
class Vocabulary:
    """One token per line; the line number is the id. Line 0 is padding, line 1 the unknown token."""

    tokens: tuple[str, ...]
    ids: dict[str, int]
    pad_id: int = 0
    unknown_id: int = 1

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        tokens = tuple(read_text_file(path, "vocabulary file").splitlines())
        if len(tokens) < 2:
            raise InputError(f"vocabulary {str(path)!r} needs at least the padding and unknown tokens (lines 0 and 1)")
        return cls(tokens, {t: i for i, t in enumerate(tokens)})

    def encode(self, sentence: str, length: int) -> tuple[np.ndarray, list[str]]:
        """Ids padded to `length`, and the words. A longer sentence is refused, not cut: an
        explanation of its first `length` words would pass for one of the whole sentence."""
        words = sentence.lower().split()
        if not words:
            raise InputError("the sentence has no words")
        if len(words) > length:
            raise InputError(f"the sentence has {len(words)} words but the model reads at most {length} "
                             f"(its input length); shorten it (its first words: {' '.join(words[:8])!r} ...)")
        ids = np.full(length, self.pad_id, dtype=np.int64)
        ids[: len(words)] = [self.ids.get(w, self.unknown_id) for w in words]
        return ids, words


@dataclass(frozen=True)
class TextModel:
    """A text classifier seen from its embedding output: `embedded` takes (1, length, dim) floats."""

    model: Model
    embedded: Model
    table: np.ndarray  # (vocabulary, dim) float32
    length: int

    def embed(self, ids: np.ndarray) -> np.ndarray:
        if ids.min() < 0 or ids.max() >= self.table.shape[0]:
            raise InputError(f"token ids must be in [0, {self.table.shape[0]}), got [{ids.min()}, {ids.max()}]")
        return self.table[ids].reshape(self.embedded.input_shape).astype(np.float32)


def is_text_model(model: Model) -> bool:
    return np.issubdtype(model.data_input.dtype, np.integer)


def text_model(model: Model) -> TextModel:
    """Find the embedding Gather after the int64 input and cut the model there."""
    if not is_text_model(model):
        raise UnsupportedModelError(f"model input {model.input_name!r} is {model.data_input.dtype}, not integer token ids")
    constants = {t.name: t for t in model.proto.graph.initializer}
    consumers: dict[str, list] = {}  # built once: a scan of the graph per step was quadratic in its size
    for n in model.proto.graph.node:
        for name in dict.fromkeys(n.input):
            consumers.setdefault(name, []).append(n)
    tensor = model.input_name
    while True:
        readers = consumers.get(tensor, [])
        if len(readers) != 1:
            raise UnsupportedModelError(f"token ids {tensor!r} are read by {len(readers)} nodes; expected one embedding Gather")
        node = readers[0]
        if node.op_type == "Gather" and list(node.input).index(tensor) == 1 and node.input[0] in constants:
            break
        if node.op_type not in _ID_PASSTHROUGH:
            raise UnsupportedModelError(
                f"node {node.name!r} ({node.op_type}) reads the token ids; smugir expects a Gather from an embedding "
                f"table (optionally after {', '.join(_ID_PASSTHROUGH)})"
            )
        tensor = node.output[0]
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    if axis != 0:
        raise UnsupportedModelError(f"embedding Gather {node.name!r} uses axis {axis}; expected 0")
    table = weights.array(constants[node.input[0]]).astype(np.float32)
    embedded = model_from_proto(suffix_model(model.proto, node.output[0]), model.path, model.sha256)
    length = int(np.prod(model.input_shape))
    if int(np.prod(embedded.input_shape)) != length * table.shape[1]:
        raise UnsupportedModelError(f"the embedded tensor {node.output[0]!r} has shape {list(embedded.input_shape)}, not {length} x {table.shape[1]}")
    return TextModel(model, embedded, table, length)


def check_vocabulary(text: TextModel, vocabulary: Vocabulary) -> None:
    """Every id of the vocabulary must have a row in the model's embedding table."""
    if len(vocabulary.tokens) > text.table.shape[0]:
        raise InputError(f"the vocabulary has {len(vocabulary.tokens)} tokens but the embedding table only {text.table.shape[0]} rows")


def word_layout(text: TextModel) -> InputLayout:
    """One row per position, one column per embedding dimension, in the embedded tensor's order."""
    length, dim = text.length, text.table.shape[1]
    rows, cols = np.divmod(np.arange(length * dim), dim)
    coords = np.stack([np.zeros(rows.size, dtype=np.int64), rows, cols], axis=1)
    return InputLayout(1, length, dim, coords, f"words {length}x{dim}")


def word_units(text: TextModel, ids: np.ndarray, pad_id: int) -> MaskUnits:
    """One unit per non-padding position; padding positions are never masked."""
    labels = np.where(ids == pad_id, -1, np.arange(ids.size))
    layout = word_layout(text)
    units = segment_units(layout, np.repeat(labels[:, None], text.table.shape[1], axis=1))
    return MaskUnits("word", units.unit_of, units.n_units, units.grid, f"{units.n_units} words")


@dataclass
class SentenceExplanation:
    """An explanation of a sentence: the words and which of them the minimal mask keeps."""

    words: list[str]
    ids: np.ndarray
    explanation: Explanation

    @property
    def kept(self) -> list[bool]:
        return [bool(k) for k in self.explanation.unit_mask[: len(self.words)]]

    @property
    def scores(self) -> list[float]:
        saliency = np.where(self.explanation.unit_mask, self.explanation.unit_saliency, 0.0)
        return [float(v) for v in saliency[: len(self.words)]]

    def to_json(self) -> dict:
        return {"words": self.words, "kept": self.kept, "word_scores": self.scores, **self.explanation.to_json()}

    def _repr_html_(self) -> str:
        """Jupyter's view: what report.html shows, the kept words highlighted."""
        from smugir.exporters.html_report import report_fragment
        from smugir.exporters.text import sentence_marks

        return report_fragment(self.explanation, sentence_marks(self))


def prepare_sentence(
    model: Model | TextModel,
    sentence: str,
    vocabulary: Vocabulary,
    baseline: str = "zero",
    **options,
) -> tuple[Setup, list[str], np.ndarray]:
    """The masking problem of one sentence (options of `smugir.explain.prepare_units`), its words and ids."""
    from smugir.explain import prepare_units

    text = model if isinstance(model, TextModel) else text_model(model)
    check_vocabulary(text, vocabulary)
    ids, words = vocabulary.encode(sentence, text.length)
    x = text.embed(ids)
    if baseline == "zero":
        base = np.zeros_like(x)
    elif baseline == "pad":
        base = np.broadcast_to(text.table[vocabulary.pad_id], (text.length, text.table.shape[1])).reshape(x.shape)
    else:
        raise InputError(f"unknown text baseline {baseline!r}; accepted: zero, pad")
    units = word_units(text, ids, vocabulary.pad_id)
    settings = {"window": None, "segments": False, "baseline": baseline, "sentence": sentence}
    setup = prepare_units(text.embedded, x, units, word_layout(text), base, settings=settings, **options)
    return setup, words, ids


def explain_sentence(
    model: Model | TextModel,
    sentence: str,
    vocabulary: Vocabulary,
    baseline: str = "zero",
    solver: str = DEFAULT_SOLVER,
    timeout: float | None = DEFAULT_TIMEOUT,
    solutions: int = 1,
    **options,
) -> SentenceExplanation:
    """Explain a text classifier on one sentence; `options` are those of `smugir.explain.prepare_units`."""
    from smugir.explain import finish

    setup, words, ids = prepare_sentence(model, sentence, vocabulary, baseline, **options)
    return SentenceExplanation(words, ids, finish(setup, solver, timeout, solutions))
