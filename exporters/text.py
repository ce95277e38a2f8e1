"""Sentences with their kept words highlighted: for the terminal (rich markup) and as HTML."""

from __future__ import annotations

import html
from typing import Sequence

from smugir.text import SentenceExplanation


def highlighted_markup(result: SentenceExplanation) -> str:
    """rich console markup: kept words in bold reverse, the others dimmed."""
    from rich.markup import escape

    return " ".join(f"[bold reverse]{escape(w)}[/]" if k else f"[dim]{escape(w)}[/]" for w, k in zip(result.words, result.kept))


def word_marks(words: Sequence[str], kept: Sequence[bool], scores: Sequence[float]) -> str:
    """The words as HTML: kept ones shaded by their score (orange, darker = higher), the rest grey;
    every word escaped."""
    top = max((abs(s) for s, k in zip(scores, kept) if k), default=0.0) or 1.0
    spans = []
    for word, keep, score in zip(words, kept, scores):
        if keep:
            alpha = 0.25 + 0.75 * abs(score) / top
            spans.append(f'<mark style="background: rgba(255, 170, 0, {alpha:.2f})" title="score {score:.4g}">{html.escape(word)}</mark>')
        else:
            spans.append(f'<span style="color: #888">{html.escape(word)}</span>')
    return " ".join(spans)


def sentence_marks(result: SentenceExplanation) -> str:
    return word_marks(result.words, result.kept, result.scores)


def highlighted_html(result: SentenceExplanation) -> str:
    """A standalone HTML page; kept words are shaded by their SMUG score, every text is escaped."""
    info = result.explanation
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>smugir explanation</title></head>\n<body style=\"font-family: sans-serif\">\n"
        f"<p style=\"font-size: 1.4em; line-height: 1.8\">{sentence_marks(result)}</p>\n"
        f"<p>label {info.label} (predicted {info.predicted}); {info.status}: {int(info.unit_mask.sum())} of "
        f"{info.units.n_units} words kept; verified: {info.best.verified}; model {html.escape(info.model)}</p>\n"
        "</body></html>\n"
    )
