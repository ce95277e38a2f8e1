"""Numbers that rank explanations: the saliency metric (LSC), OptBox, sparsity, Win %, and
agreement with ground-truth masks (AUC, max F1, min MAE).

LSC (Dabkowski & Gal 2017), as the SMUG paper computes it: for thresholds over the map's values,
take the tightest box around the pixels above the threshold, crop it, resize it back to the input
size (bilinear), classify; score = log(max(0.05, a)) - log(p), a = box area fraction, p = the
label's probability on the crop. Lower is better; a method's score is its best box's. A map with
no value above 0 (all zero) selects nothing, so it is scored as the whole image, like a constant
map. OptBox searches every box of a 10 x 10 grid with no map at all: the best a box can do, which
shows how far the metric can be gamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import bootstrap, rankdata

from smugir.errors import InputError

AREA_FLOOR = 0.05
MAX_THRESHOLDS = 100
OPTBOX_GRID = 10

Classify = Callable[[np.ndarray], np.ndarray]  # (B, *item) -> probabilities (B, classes)


@dataclass(frozen=True)
class Box:
    """Rows top..bottom-1 and columns left..right-1 of the image grid."""

    top: int
    left: int
    bottom: int
    right: int

    def area_fraction(self, height: int, width: int) -> float:
        return (self.bottom - self.top) * (self.right - self.left) / (height * width)

    def to_json(self) -> list[int]:
        return [self.top, self.left, self.bottom, self.right]


@dataclass(frozen=True)
class LSC:
    """The best (lowest) saliency-metric score found, and what produced it."""

    score: float
    area: float  # the kept fraction (box area, or kept words / non-padding words)
    probability: float  # the label's probability on the crop
    box: Box | None  # None for text, whose "box" is the set of kept words
    threshold: float | None  # None when no map value is above 0 (the whole image is scored)
    evaluated: int  # crops classified
    curve: tuple[tuple[float, float], ...] = ()  # (area, score) of every box classified, smallest first


def thinned(curve: tuple[tuple[float, float], ...], count: int = 24) -> tuple[tuple[float, float], ...]:
    """About `count` points of an LSC curve (its first and last kept), to 4 significant digits, finite only."""
    points = [(a, s) for a, s in curve if np.isfinite(s)]
    step = max(1, -(-len(points) // count))
    chosen = points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
    return tuple((float(f"{a:.4g}"), float(f"{s:.4g}")) for a, s in chosen)


def lsc_score(area: float, probability: float, floor: float = AREA_FLOOR) -> float:
    """log(max(floor, area)) - log(probability); +inf when the probability is 0."""
    with np.errstate(divide="ignore"):
        return float(np.log(max(floor, area)) - np.log(probability))


def saliency_2d(saliency_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) map -> (H, W): the sum of absolute values over channels (PAIR's grayscale view)."""
    saliency_chw = np.asarray(saliency_chw, dtype=np.float64)
    return np.abs(saliency_chw).sum(axis=0) if saliency_chw.ndim == 3 else np.abs(saliency_chw)


def thresholds(values: np.ndarray, max_count: int | None = MAX_THRESHOLDS) -> np.ndarray:
    """0 plus the map's unique values, thinned to about `max_count` (every value when None)."""
    candidates = np.append(0.0, np.unique(np.asarray(values, dtype=np.float64)))
    if max_count is None:
        return candidates
    step = max(int(round(candidates.size / max_count)), 1)
    return candidates[::step]


def tightest_box(saliency: np.ndarray, threshold: float) -> Box | None:
    """The smallest box holding every pixel whose value is above `threshold`, or None if there is none."""
    rows, cols = np.nonzero(np.asarray(saliency) > threshold)
    if rows.size == 0:
        return None
    return Box(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)


def _linear_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix of 1-D linear interpolation with edge clamping, pixel centres aligned:
    what scikit-image's `resize(order=1, mode="edge", anti_aliasing=False)` does along one axis."""
    centres = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.floor(centres).astype(np.int64)
    high = np.minimum(low + 1, source - 1)
    weight = centres - low
    matrix = np.zeros((target, source))
    np.add.at(matrix, (np.arange(target), low), 1 - weight)
    np.add.at(matrix, (np.arange(target), high), weight)
    return matrix


def crop_and_resize(image_chw: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels, resized back to the image's size with bilinear interpolation, in float32
    (what the classifier reads).

    Bilinear interpolation is separable, so the resize is two small matrix products per channel:
    equal to scikit-image's resize to float32 precision, and on 224 x 224 crops 0.6 ms (float64: 3 ms,
    a third of EfficientNet-Lite0's time per crop).
    """
    image_chw = np.asarray(image_chw, dtype=np.float32)
    crop = image_chw[:, box.top : box.bottom, box.left : box.right]
    if crop.shape == image_chw.shape:
        return image_chw.copy()
    height, width = image_chw.shape[1:]
    rows = _linear_weights(crop.shape[1], height).astype(np.float32)
    cols = _linear_weights(crop.shape[2], width).astype(np.float32)
    return rows @ crop @ cols.T


CROP_CHUNK = 16  # crops classified per call (16 x 3 x 224 x 224 float32 is 10 MB)


def _best_box(classify: Classify, image_chw: np.ndarray, boxes: list[Box], label: int,
              thresholds_of: list[float | None]) -> LSC:
    """The lowest-scoring box, the first one in `boxes` order among equals.

    Exact branch and bound: p <= 1, so log(max(floor, area)) is a lower bound of a box's score.
    Boxes are classified smallest first, and the search stops once the smallest remaining bound is
    above the best score found; a box that could tie is still classified. The result is the one
    classifying every box gives; `evaluated` says how many crops were needed.
    """
    image_chw = np.asarray(image_chw, dtype=np.float32)  # once, not per crop: `crop_and_resize` works in float32
    height, width = image_chw.shape[1:]
    areas = np.array([box.area_fraction(height, width) for box in boxes])
    bounds = np.log(np.maximum(AREA_FLOOR, areas))
    order = np.argsort(areas, kind="stable")
    scores = np.full(len(boxes), np.inf)
    probabilities = np.zeros(len(boxes))
    evaluated = 0
    while evaluated < len(boxes) and bounds[order[evaluated]] <= scores.min():
        chosen = order[evaluated : evaluated + CROP_CHUNK]
        crops = np.stack([crop_and_resize(image_chw, boxes[i]) for i in chosen])
        probabilities[chosen] = np.asarray(classify(crops))[:, label]
        scores[chosen] = [lsc_score(areas[i], float(probabilities[i])) for i in chosen]
        evaluated += len(chosen)
    best = int(np.argmin(scores))
    curve = tuple((float(areas[i]), float(scores[i])) for i in order[:evaluated])
    return LSC(float(scores[best]), float(areas[best]), float(probabilities[best]), boxes[best], thresholds_of[best], evaluated, curve)


def saliency_metric(classify: Classify, image_chw: np.ndarray, saliency: np.ndarray, label: int,
                    max_thresholds: int | None = MAX_THRESHOLDS) -> LSC:
    """LSC of a (H, W) map (or a (C, H, W) one, see `saliency_2d`) for the image (C, H, W).

    Thresholds that give the same box are classified once, in one batch.
    """
    image_chw = np.asarray(image_chw)
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim == 3:
        saliency = saliency_2d(saliency)
    if image_chw.ndim != 3 or saliency.shape != image_chw.shape[1:]:
        raise InputError(f"the saliency map has shape {list(saliency.shape)}; the image is {list(image_chw.shape)} (C, H, W) and needs an (H, W) map")
    if not np.all(np.isfinite(saliency)):
        raise InputError("the saliency map contains NaN or infinite values")
    boxes: dict[Box, float | None] = {}
    for threshold in thresholds(saliency, max_thresholds):
        box = tightest_box(saliency, threshold)
        if box is not None and box not in boxes:
            boxes[box] = float(threshold)
    if not boxes:
        boxes[Box(0, 0, *saliency.shape)] = None
    return _best_box(classify, image_chw, list(boxes), label, list(boxes.values()))


def grid_boxes(height: int, width: int, grid: int = OPTBOX_GRID) -> list[Box]:
    """Every box between two points of a grid x grid lattice, at least two cells tall and wide
    (2,025 boxes for the 10 x 10 grid); lattice points that coincide on a small image count once."""
    rows = [round(height * k / grid) for k in range(grid + 1)]
    cols = [round(width * k / grid) for k in range(grid + 1)]
    spans_r = [(rows[a], rows[b]) for a in range(grid) for b in range(a + 2, grid + 1)]
    spans_c = [(cols[a], cols[b]) for a in range(grid) for b in range(a + 2, grid + 1)]
    return list(dict.fromkeys(Box(t, l, b, r) for t, b in spans_r for l, r in spans_c if b > t and r > l))


def optbox(classify: Classify, image_chw: np.ndarray, label: int, grid: int = OPTBOX_GRID) -> LSC:
    """The best LSC over every grid box; needs no saliency map, so it bounds what any map can score."""
    boxes = grid_boxes(*np.shape(image_chw)[1:], grid=grid)
    return _best_box(classify, image_chw, boxes, label, [None] * len(boxes))


def text_saliency_metric(classify: Classify, ids: np.ndarray, word_scores: np.ndarray, label: int,
                         pad_id: int = 0) -> LSC:
    """LSC for text: keep the words scoring above each threshold (all thresholds), pad the rest;
    area = kept words / non-padding words."""
    ids = np.asarray(ids).reshape(-1)
    word_scores = np.asarray(word_scores, dtype=np.float64).reshape(-1)
    if word_scores.shape != ids.shape:
        raise InputError(f"{word_scores.size} word scores for {ids.size} token positions; give one score per position")
    words = ids != pad_id
    if not words.any():
        raise InputError("the sentence has only padding tokens")
    kept_sets: dict[bytes, tuple[np.ndarray, float | None]] = {}
    for threshold in thresholds(word_scores[words], None):
        kept = words & (word_scores > threshold)
        if kept.any():
            kept_sets.setdefault(kept.tobytes(), (kept, float(threshold)))
    if not kept_sets:
        kept_sets[words.tobytes()] = (words, None)
    candidates = list(kept_sets.values())
    batch = np.stack([np.where(kept, ids, pad_id) for kept, _ in candidates])
    probabilities = np.asarray(classify(batch))[:, label]
    areas = [kept.sum() / words.sum() for kept, _ in candidates]
    scores = [lsc_score(a, float(p)) for a, p in zip(areas, probabilities)]
    best = int(np.argmin(scores))
    curve = tuple(sorted((float(a), float(v)) for a, v in zip(areas, scores)))
    return LSC(scores[best], float(areas[best]), float(probabilities[best]), None, candidates[best][1], len(candidates), curve)


def sparsity(saliency: np.ndarray) -> float:
    """The fraction of the input a map keeps: pixels (or elements) with a value above 0."""
    saliency = np.asarray(saliency, dtype=np.float64)
    return float(np.mean(saliency > 0)) if saliency.size else 0.0


@dataclass(frozen=True)
class WinRate:
    rate: float  # fraction of inputs on which the method's LSC is the best (ties count for each)
    low: float  # bootstrap percentile interval
    high: float


def win_rates(scores: dict[str, np.ndarray], confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
              tolerance: float = 1e-9) -> dict[str, WinRate]:
    """Win % per method over the same inputs, with a bootstrap percentile interval.

    A method wins an input when its LSC is the lowest (within `tolerance`); ties count as a win for
    each tied method, so the rates may add up to more than 100 %. NaN scores never win.
    """
    names = list(scores)
    if not names:
        return {}
    table = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])
    if table.ndim != 2 or table.shape[1] == 0:
        raise InputError("win rates need every method scored on the same, non-empty list of inputs")
    filled = np.where(np.isnan(table), np.inf, table)
    wins = filled <= filled.min(axis=0, keepdims=True) + tolerance
    wins &= np.isfinite(filled)
    result = {}
    for name, row in zip(names, wins.astype(np.float64)):
        rate = float(row.mean())
        if row.size < 2 or np.all(row == row[0]):
            low = high = rate
        else:
            ci = bootstrap((row,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                           rng=np.random.default_rng(seed)).confidence_interval
            low, high = float(ci.low), float(ci.high)
        result[name] = WinRate(rate, low, high)
    return result


@dataclass(frozen=True)
class MaskAgreement:
    auc: float  # ROC AUC of the map's values against the ground-truth mask
    max_f1: float  # best F1 over thresholds (prediction: value >= threshold)
    min_mae: float  # lowest mean absolute error over the same binarised maps


def mask_agreement(saliency: np.ndarray, truth: np.ndarray) -> MaskAgreement:
    """Agreement of a map with a ground-truth 0/1 mask of the same shape (salient-object metrics)."""
    values = np.asarray(saliency, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth).reshape(-1).astype(bool)
    if values.size != truth.size:
        raise InputError(f"the ground-truth mask has {truth.size} elements but the map has {values.size}")
    positives, n = int(truth.sum()), truth.size
    if positives in (0, n):
        raise InputError("the ground-truth mask must contain both kept and dropped elements")
    ranks = rankdata(values)
    auc = (ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * (n - positives))
    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    true_positives = np.cumsum(truth[order])
    last_of_value = np.append(np.flatnonzero(np.diff(sorted_values) != 0), n - 1)  # predicted = top (k+1)
    predicted = last_of_value + 1
    tp = true_positives[last_of_value]
    f1 = 2 * tp / (predicted + positives)
    errors = (predicted - tp) + (positives - tp)
    # Predicting nothing is a binarisation too (threshold above the maximum).
    mae = min(float(errors.min()) / n, positives / n)
    return MaskAgreement(float(auc), float(f1.max()), mae)
