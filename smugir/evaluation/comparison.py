"""Run several saliency methods on the same inputs and score each map: the paper's comparison table.

The metric reads the label's probability on a crop, so the paper scores only the inputs the model
classifies correctly (`only_correct`). A method the model cannot support (Grad-CAM on an MLP) is
reported as unavailable instead of failing the whole run. OptBox needs no map: it is the
reference for how low a box can push the metric, not a competitor in Win %.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from smugir.errors import InputError
from smugir.evaluation.baselines import GradientCache, Setting, check_methods, saliency_map, setting_for, unavailable
from smugir.evaluation.classifier import ImageClassifier
from smugir.evaluation.metrics import MAX_THRESHOLDS, mask_agreement, optbox, saliency_2d, saliency_metric, sparsity, thinned, win_rates
from smugir.model import Model

OPTBOX = "optbox"
PAPER_METHODS = ("smug", "smug_base", "ig", "gradcam", "smoothgrad", "xrai", OPTBOX)


@dataclass(frozen=True)
class Record:
    """One method on one input. `sparsity` is the fraction of pixels with a non-zero map value
    (None for OptBox); AUC, F1 and MAE are there only when a ground-truth mask was given."""

    model: str
    sample: str
    label: int
    method: str
    lsc: float
    area: float
    probability: float
    box: tuple[int, int, int, int] | None  # top, left, bottom, right
    sparsity: float | None
    seconds: float  # computing the map (OptBox: the search)
    auc: float | None = None
    max_f1: float | None = None
    min_mae: float | None = None
    metric_seconds: float | None = None  # scoring the map with LSC (None for OptBox)
    cpu_seconds: float | None = None  # CPU time of the map and its scoring (OptBox: the search): wall time on an idle core
    solve_status: str | None = None  # SMUG variants: the solver's status (optimal, feasible, ...) or why there is no explanation
    solve_gap: float | None = None  # SMUG variants: the relative gap left when the solve stopped
    curve: tuple[tuple[float, float], ...] | None = None  # (area, LSC) of the boxes classified, thinned (`metrics.thinned`)

    def to_json(self) -> dict:
        return asdict(self)

    def to_row(self) -> dict:
        """A flat row for records.csv: everything but the curve."""
        data = self.to_json()
        del data["curve"]
        return data


@dataclass
class Comparison:
    records: list[Record]
    maps: dict[tuple[str, str], np.ndarray]  # (sample, method) -> the (H, W) map the metric read
    images: dict[str, np.ndarray]  # sample -> (C, H, W) image
    skipped: list[str]  # samples the model misclassifies (with only_correct)
    unavailable: dict[str, str] = field(default_factory=dict)  # method -> why

    def _repr_html_(self) -> str:
        """Jupyter's view: what `smug eval`'s index.html shows (`smugir.evaluation.gallery`)."""
        from smugir.evaluation.gallery import comparison_fragment

        return comparison_fragment(self)


def compare(
    model: Model,
    inputs: np.ndarray,
    labels: Sequence[int] | None,
    methods: Sequence[str] = PAPER_METHODS,
    setting: Setting | None = None,
    ids: Sequence[str] | None = None,
    only_correct: bool = False,
    truth: np.ndarray | None = None,
    max_thresholds: int | None = MAX_THRESHOLDS,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> Comparison:
    """Score every method's map on every input. `inputs` are raw model inputs; `labels` (None: the
    predicted classes) are the classes explained and scored; `truth` optional (N, H, W) 0/1 masks."""
    methods = list(dict.fromkeys(methods))
    check_methods(methods, extra=(OPTBOX,))
    inputs = np.asarray(inputs, dtype=np.float32)
    ids = [str(i) for i in range(len(inputs))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(inputs) or (labels is not None and len(labels) != len(inputs)):
        raise InputError(f"{len(inputs)} inputs but {len(ids)} ids and {'no' if labels is None else len(labels)} labels")
    if only_correct and labels is None:
        raise InputError("keeping only the correctly classified inputs needs labels, and the dataset has none")
    setting = setting or setting_for(model)
    classify = ImageClassifier(model, setting.layout)
    if truth is not None:
        truth = np.asarray(truth)
        if truth.shape != (len(inputs), setting.layout.height, setting.layout.width):
            raise InputError(f"ground-truth masks must be {[len(inputs), setting.layout.height, setting.layout.width]}, got {list(truth.shape)}")
    images = np.stack([classify.to_image(x) for x in inputs]) if len(inputs) else np.zeros((0, *classify.image_shape))
    predicted = classify(images).argmax(axis=1) if len(inputs) else np.zeros(0, dtype=int)
    labels = predicted if labels is None else np.asarray(labels, dtype=np.int64)
    result = Comparison([], {}, {}, [], unavailable(model, methods))
    chosen = [m for m in methods if m not in result.unavailable]
    for index in progress(range(len(inputs))):
        sample, label, image = ids[index], int(labels[index]), images[index]
        if only_correct and predicted[index] != label:
            result.skipped.append(sample)
            continue
        result.images[sample] = image
        for record, flat in score_input(model, classify, inputs[index], sample, label, chosen, setting,
                                        None if truth is None else truth[index], max_thresholds):
            result.records.append(record)
            if flat is not None:
                result.maps[(sample, record.method)] = flat
    return result


def score_input(model: Model, classify: ImageClassifier, x: np.ndarray, sample: str, label: int, methods: Sequence[str],
                setting: Setting, truth: np.ndarray | None = None, max_thresholds: int | None = MAX_THRESHOLDS,
                ) -> Iterator[tuple[Record, np.ndarray | None]]:
    """Each method's record on one input, with the (H, W) map the metric read (None for OptBox),
    as each finishes. The methods share one gradient cache: points asked for twice are run once."""
    cache = GradientCache()
    for method in methods:
        yield score_method(model, classify, x, sample, label, method, setting, truth, max_thresholds, cache)


def score_method(model: Model, classify: ImageClassifier, x: np.ndarray, sample: str, label: int, method: str,
                 setting: Setting, truth: np.ndarray | None = None, max_thresholds: int | None = MAX_THRESHOLDS,
                 cache: GradientCache | None = None) -> tuple[Record, np.ndarray | None]:
    """One method's record on one input and the (H, W) map the metric read (None for OptBox)."""
    image = classify.to_image(x)
    clock, cpu = time.perf_counter(), time.process_time()
    solve: dict[str, Any] = {}  # SMUG's solver status and gap
    if method == OPTBOX:
        score, agreement, spars, flat = optbox(classify, image, label), None, None, None
        seconds = time.perf_counter() - clock
    else:
        raw = saliency_map(method, model, x, label, setting, cache, solve)
        seconds = time.perf_counter() - clock
        flat = saliency_2d(classify.to_image(raw))
        score, spars = saliency_metric(classify, image, flat, label, max_thresholds), sparsity(flat)
        agreement = mask_agreement(flat, truth) if truth is not None else None
    record = Record(
        model.path.name, sample, label, method, score.score, score.area, score.probability,
        None if score.box is None else tuple(score.box.to_json()), spars, seconds,
        *((agreement.auc, agreement.max_f1, agreement.min_mae) if agreement else (None, None, None)),
        metric_seconds=None if method == OPTBOX else time.perf_counter() - clock - seconds,
        cpu_seconds=time.process_time() - cpu,
        curve=thinned(score.curve),
        **solve,
    )
    return record, flat


@dataclass(frozen=True)
class Summary:
    """One row of the table: a method over all its scored inputs."""

    method: str
    inputs: int
    lsc_median: float
    lsc_q1: float
    lsc_q3: float
    win: float | None  # None for OptBox, which is a reference, not a competitor
    win_low: float | None
    win_high: float | None
    sparsity: float | None  # mean
    seconds: float  # mean per input
    auc: float | None = None  # means, when ground-truth masks were given
    max_f1: float | None = None
    min_mae: float | None = None
    metric_seconds: float | None = None  # mean per input: scoring the map with LSC
    cpu_seconds: float | None = None  # mean per input: CPU time of map and scoring
    proven: float | None = None  # SMUG variants: the fraction of inputs whose mask was proven minimal
    gap: float | None = None  # SMUG variants: the mean gap left (0 where proven)

    def to_json(self) -> dict:
        return asdict(self)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _proven(records: list[Record]) -> tuple[float | None, float | None]:
    """Fraction proven optimal and mean gap, over the records that went through a solver."""
    solved = [r for r in records if r.solve_status is not None]
    if not solved:
        return None, None
    return float(np.mean([r.solve_status == "optimal" for r in solved])), _mean([r.solve_gap for r in solved])


def summarize(records: Sequence[Record], seed: int = 0) -> list[Summary]:
    """Per method: LSC median and quartiles, Win % among the map methods with a bootstrap 95 %
    interval (on the inputs every one of them scored), mean sparsity, seconds per input."""
    methods = list(dict.fromkeys(r.method for r in records))
    by_method = {m: {(r.model, r.sample): r for r in records if r.method == m} for m in methods}
    competitors = [m for m in methods if m != OPTBOX]
    shared = sorted(set.intersection(*(set(by_method[m]) for m in competitors))) if competitors else []
    wins = win_rates({m: np.array([by_method[m][k].lsc for k in shared]) for m in competitors}, seed=seed) if shared else {}
    rows = []
    for method in methods:
        chosen = list(by_method[method].values())
        lsc = [r.lsc for r in chosen]  # inf: probability 0 on every box; interpolating between two infs is NaN, so then no interpolation
        q1, median, q3 = np.percentile(lsc, [25, 50, 75], method="linear" if np.all(np.isfinite(lsc)) else "inverted_cdf")
        win = wins.get(method)
        rows.append(Summary(
            method, len(chosen), float(median), float(q1), float(q3),
            win.rate if win else None, win.low if win else None, win.high if win else None,
            _mean([r.sparsity for r in chosen]), float(np.mean([r.seconds for r in chosen])),
            _mean([r.auc for r in chosen]), _mean([r.max_f1 for r in chosen]), _mean([r.min_mae for r in chosen]),
            _mean([r.metric_seconds for r in chosen]), _mean([r.cpu_seconds for r in chosen]),
            *_proven(chosen),
        ))
    return rows
