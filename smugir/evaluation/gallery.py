"""What `index.html` (and a notebook) shows of an evaluation: thumbnails, who won, head to head.

`smug eval` keeps a small thumbnail of every input and of every method's map with its best box
(`GALLERY/<digest>.jpg`, named by a digest of the input id so that no id can reach outside the
folder), written while the run goes, so the page can show all inputs without keeping any map in
memory. Thumbnails are JPEG (a quarter of the PNG size on noisy maps). The page itself is rendered by `smugir.exporters.html_eval` from the plain data built here.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from smugir.evaluation.comparison import OPTBOX, Comparison, Record, summarize
from smugir.evaluation.report import SIMILARITIES, display_name, summary_rows
from smugir.evaluation.sanity import SanityRecord
from smugir.exporters.files import write_text
from smugir.exporters.html_eval import gallery_section, matrix_section, sanity_section, summary_section
from smugir.exporters.html_page import SORT_SCRIPT, esc, fragment, page, png_uri
from smugir.exporters.pictures import colormap, spread_sparse, to_rgb

GALLERY = "gallery"
INDEX = "index.html"
THUMB = 128  # thumbnail side, display pixels
FIRST_INPUTS = 24  # inputs a notebook's view embeds (the files hold every input)
Source = Callable[[str, "str | None"], "str | None"]  # (input id, method or None for the input) -> picture src


def picture_name(sample: str, method: str | None = None) -> str:
    """The thumbnail's path relative to the output folder: a digest of the input id, never the id."""
    digest = hashlib.sha256(str(sample).encode("utf-8", errors="surrogatepass")).hexdigest()[:20]
    return f"{GALLERY}/{digest}{'' if method is None else '_' + method}.jpg"


def _thumbnail(rgb: np.ndarray, box: Sequence[int] | None = None) -> bytes:
    """(H, W, 3) in [0, 1] -> a THUMB-sided JPEG (5 KB, a quarter of a PNG of a noisy map: 1,000
    photos x 10 methods stay near 60 MB), with `box` (top, left, bottom, right) in green."""
    height, width = rgb.shape[:2]
    picture = Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), "RGB")
    scale = THUMB / max(height, width)
    sampling = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    picture = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))), sampling)
    if box is not None:
        top, left, bottom, right = box
        ImageDraw.Draw(picture).rectangle([left * scale, top * scale, right * scale - 1, bottom * scale - 1], outline=(57, 255, 20), width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def input_thumbnail(image_chw: np.ndarray) -> bytes:
    return _thumbnail(to_rgb(image_chw))


def map_thumbnail(values_hw: np.ndarray | None, image_chw: np.ndarray, box: Sequence[int] | None) -> bytes:
    """A method's (H, W) map on the inferno scale (99th percentile brightest, sparse maps spread),
    or for OptBox (no map) the image, with the best box in green."""
    if values_hw is None:
        return _thumbnail(to_rgb(image_chw), box)
    values = np.abs(np.asarray(values_hw, dtype=np.float64))
    top = np.percentile(values, 99) or values.max() or 1.0
    shown, _ = spread_sparse(values, max(1, THUMB // max(values.shape)))
    return _thumbnail(colormap(shown / top), box)


def _by_sample(records: Sequence[Record]) -> dict[str, list[Record]]:
    """Each input's records, inputs in their first order (one pass: 1,000 inputs x 10 methods stay linear)."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.sample, []).append(record)
    return grouped


def winners(records: Sequence[Record], tolerance: float = 1e-9) -> dict[str, list[str]]:
    """Per input, the map methods (not OptBox) with the lowest finite LSC, ties all counted (as Win %)."""
    best: dict[str, list[str]] = {}
    for sample, chosen in _by_sample(records).items():
        scored = [r for r in chosen if r.method != OPTBOX and np.isfinite(r.lsc)]
        if scored:
            low = min(r.lsc for r in scored)
            best[sample] = [r.method for r in scored if r.lsc <= low + tolerance]
    return best


def head_to_head(records: Sequence[Record]) -> tuple[list[str], list[list[float | None]], int]:
    """(methods, matrix, inputs): matrix[a][b] the share of the inputs both scored on which a's LSC
    is lower than b's (None on the diagonal)."""
    methods = list(dict.fromkeys(r.method for r in records))
    lsc = {(r.sample, r.method): r.lsc for r in records}
    samples = list(dict.fromkeys(r.sample for r in records))
    matrix: list[list[float | None]] = []
    for a in methods:
        line: list[float | None] = []
        for b in methods:
            shared = [s for s in samples if (s, a) in lsc and (s, b) in lsc]
            line.append(None if a == b or not shared else float(np.mean([lsc[(s, a)] < lsc[(s, b)] for s in shared])))
        matrix.append(line)
    return methods, matrix, len(samples)


def _lsc(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "inf"


WordScores = Mapping[tuple[str, str], tuple[list[str], np.ndarray]]  # (sentence id, method) -> (words, their scores)


def _gallery(records: Sequence[Record], source: Source | None = None, scores: WordScores | None = None) -> dict:
    """The gallery's data: pictures from `source` (image models) or each method's highlighted words."""
    methods = list(dict.fromkeys(r.method for r in records))
    won = winners(records)
    inputs = []
    for sample, chosen in _by_sample(records).items():
        entry: dict = {"id": str(sample), "label": int(chosen[0].label), "winners": won.get(sample, [])}
        if source is not None:
            entry["image"] = source(sample, None)

        maps = []
        for record in chosen:
            shown: dict = {"method": record.method, "lsc": _lsc(record.lsc), "curve": [list(p) for p in record.curve or ()]}
            if np.isfinite(record.lsc) and record.curve:
                shown["best"] = [float(f"{record.area:.4g}"), float(f"{record.lsc:.4g}")]
            if source is not None:
                shown["src"] = source(sample, record.method)
            if scores is not None and (sample, record.method) in scores:
                shown["words"] = _word_shades(*scores[(sample, record.method)])
            maps.append(shown)
        entry["maps"] = maps
        inputs.append(entry)
    return {
        "methods": [{"key": m, "name": display_name(m)} for m in methods if m != OPTBOX],
        "names": {m: display_name(m) for m in methods},
        "labels": sorted({entry["label"] for entry in inputs}),
        "thumb": THUMB,
        "inputs": inputs,
    }


def _word_shades(words: Sequence[str], scores: np.ndarray) -> list[list]:
    """[word, shade] pairs: shade 0.25..1 by the score for words scoring above 0, 0 for the others."""
    scores = np.asarray(scores, dtype=np.float64)[: len(words)]
    top = float(scores.max(initial=0.0)) or 1.0
    return [[w, round(0.25 + 0.75 * s / top, 2) if s > 0 else 0] for w, s in zip(words, scores)]


def _body(title: str, records: Sequence[Record], gallery: dict, note: str = "", seed: int = 0) -> str:
    rows = summarize(records, seed=seed)
    header, cells = summary_rows(rows)
    names, matrix, inputs = head_to_head(records)
    return "".join([
        f"<h1>{esc(title)}</h1>", f"<p class=\"muted\">{note}</p>" if note else "",
        summary_section(header, cells),
        matrix_section([display_name(m) for m in names], matrix, inputs),
        gallery_section(gallery, text=not any("image" in entry for entry in gallery["inputs"])),
    ])


def write_index(out: str | os.PathLike, records: Sequence[Record], title: str, note: str = "", seed: int = 0) -> Path:
    """`out/index.html` of an image evaluation, its pictures the thumbnails under `out/GALLERY`."""
    out = Path(out)

    def source(sample: str, method: str | None) -> str | None:
        name = picture_name(sample, method)
        return name if (out / name).exists() else None

    return write_text(out / INDEX, page(title, _body(title, records, _gallery(records, source), note, seed), SORT_SCRIPT), force=True)


def comparison_fragment(comparison: Comparison, limit: int = FIRST_INPUTS) -> str:
    """A notebook's view of `compare`'s result: the index page's sections, the first `limit` inputs' pictures embedded."""
    shown = list(comparison.images)[:limit]
    boxes = {(r.sample, r.method): r.box for r in comparison.records}

    def source(sample: str, method: str | None) -> str | None:
        if sample not in shown:
            return None
        image = comparison.images[sample]
        if method is None:
            return png_uri(input_thumbnail(image), "jpeg")
        return png_uri(map_thumbnail(comparison.maps.get((sample, method)), image, boxes.get((sample, method))), "jpeg")

    records = [r for r in comparison.records if r.sample in shown] if comparison.records else []
    title = f"{len({r.sample for r in comparison.records})} inputs, {len({r.method for r in comparison.records})} methods"
    note = f"The gallery shows the first {len(shown)} inputs." if len(comparison.images) > len(shown) else ""
    if not comparison.records:
        return fragment("<p>nothing scored</p>")
    gallery = _gallery(records, source)
    return fragment(_body(title, comparison.records, gallery, note), SORT_SCRIPT)


def write_text_index(out: str | os.PathLike, records: Sequence[Record], scores: WordScores, title: str, seed: int = 0) -> Path:
    """`out/index.html` of a text evaluation: each sentence with each method's words highlighted."""
    return write_text(Path(out) / INDEX, page(title, _body(title, records, _gallery(records, None, scores), seed=seed), SORT_SCRIPT), force=True)


def text_fragment(records: Sequence[Record], scores: WordScores) -> str:
    """A notebook's view of `compare_sentences`'s records and `kept_scores`."""
    return fragment(_body("text evaluation", records, _gallery(records, None, scores)), SORT_SCRIPT)


def sanity_body(records: Sequence[SanityRecord], title: str, curves_src: str | None) -> str:
    modes: dict[str, dict] = {}
    methods = list(dict.fromkeys(r.method for r in records))
    for mode in dict.fromkeys(r.mode for r in records):
        chosen = [r for r in records if r.mode == mode]
        rows = []
        for step in sorted({r.step for r in chosen}):
            at = [r for r in chosen if r.step == step]
            cells = []
            for method in methods:
                values = [r.spearman_absolute for r in at if r.method == method and np.isfinite(r.spearman_absolute)]
                cells.append(f"{np.mean(values):.3f}" if values else "-")
            rows.append([str(step), at[0].layer or "(original)", *cells])
        modes[mode] = {"methods": [display_name(m) for m in methods], "rows": rows}
    inputs = len({r.sample for r in records})
    return f"<h1>{esc(title)}</h1><p class=\"muted\">{inputs} inputs; measures: {', '.join(SIMILARITIES)} in sanity.csv.</p>" + sanity_section(modes, curves_src)


def write_sanity_index(out: str | os.PathLike, records: Sequence[SanityRecord], title: str, curves: str | None = "sanity.png") -> Path:
    return write_text(Path(out) / INDEX, page(title, sanity_body(records, title, curves)), force=True)


def sanity_fragment(records: Sequence[SanityRecord], curves_png: bytes | None) -> str:
    return fragment(sanity_body(records, "sanity checks", png_uri(curves_png) if curves_png else None))

