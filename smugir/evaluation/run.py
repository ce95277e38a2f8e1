"""`smug eval` on a whole dataset: streamed to disk, resumable, serial or parallel.

One task is one input: a worker reads it (an image file is read by the worker, so the coordinator
never holds the dataset), classifies it, runs every method still missing for it with one shared
gradient cache, and returns the records. The coordinator alone writes: one JSON line per (input,
method) in `records.jsonl` (append + fsync, `exporters.results.ResultsFile`), and for the first
few inputs the maps `maps.png` shows, as .npy files written before their line. Memory is one
input's work per process: no map is kept beyond the figure inputs, and the table is computed from
the records file. A rerun with the same folder skips every (input, method) already recorded, so an
interrupted run continues where it stopped; `run.json` holds what defines the results (model hash,
settings) and a rerun with other settings is refused. Each line also carries the digest of its
input's content (`smugir.identity`): the same id with other content is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
import traceback
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from smugir.datasets import check_unique
from smugir.errors import InputError, OutputError, SmugError, printable
from smugir.evaluation.baselines import GradientCache, Setting
from smugir.evaluation.comparison import Comparison, Record, score_method
from smugir.evaluation.gallery import GALLERY, input_thumbnail, map_thumbnail, picture_name
from smugir.executor import run_tasks
from smugir.exporters.files import write_atomically, write_text
from smugir.exporters.results import Layout, ResultsFile, read_json, results_folder
from smugir.identity import file_digest, input_digest

RECORDS = "records.jsonl"
SETTINGS = "run.json"
MAPS = "maps"
MISCLASSIFIED = "misclassified"  # the status of an input skipped by `only_correct`
DONE = ("done", MISCLASSIFIED)  # the statuses of a finished line; any other (error, unknown, damaged) is computed again
LAYOUT = Layout(RECORDS, (SETTINGS,), (MAPS, GALLERY))


@dataclass(frozen=True)
class Photo:
    """One input of the run: its raw model input `x`, or an image file the worker reads."""

    id: str
    label: int | None
    x: np.ndarray | None = None
    path: str | None = None
    truth: np.ndarray | None = None  # (H, W) ground-truth mask
    figure: bool = False  # keep its maps for maps.png


@dataclass(frozen=True)
class Reading:
    """How a worker turns an image file into a model input (`smug eval`'s --scale/--mean/--std)."""

    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class Plan:
    """What every task of a run shares."""

    model_path: str
    setting: Setting
    reading: Reading
    only_correct: bool
    max_thresholds: int | None
    session_threads: int = 0
    output: str | None = None  # the class-score output of a model with several (`smugir.outputs`)


@dataclass(frozen=True)
class Done:
    """One finished (input, method): its record line and the map to keep for the figure."""

    record: dict[str, Any]
    map: np.ndarray | None = None
    image: np.ndarray | None = None
    thumbnails: dict[str, bytes] = field(default_factory=dict)  # gallery file name -> PNG (`gallery`)


Finished = Callable[[Done], None]


@lru_cache(maxsize=2)
def _model(model_path: str, threads: int, output: str | None = None):
    """Loaded once per worker process (with its onnxruntime thread count), not once per input."""
    from smugir.model import load_model, set_session_threads

    set_session_threads(threads)
    return load_model(model_path, output)


_CLASSIFIERS: dict[tuple, Any] = {}


def _classifier(model_path: str, threads: int, layout, output: str | None = None):
    """One per worker process and model: its batched session is built once."""
    from smugir.evaluation.classifier import ImageClassifier

    key = (model_path, threads, pickle.dumps(layout), output)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = ImageClassifier(_model(model_path, threads, output), layout)
    return _CLASSIFIERS[key]


def record_id(sample: str, method: str) -> str:
    return f"{sample}/{method}"


def evaluate_photo(plan: Plan, photo: Photo, methods: tuple[str, ...], on_done: Finished | None = None) -> list[Done]:
    """Every method of `methods` on one input; never raises for a bad input or method: the failure
    becomes an error line (not done, so a rerun retries it). `on_done` sees each method as it
    finishes (serial runs); the list is returned for the coordinator of a parallel run."""
    results: list[Done] = []

    def done(result: Done) -> None:
        results.append(result)
        if on_done is not None:
            on_done(result)

    try:
        model = _model(plan.model_path, plan.session_threads, plan.output)
        classify = _classifier(plan.model_path, plan.session_threads, plan.setting.layout, plan.output)
        x = photo.x if photo.path is None else _read_image(photo.path, model, plan)
        predicted = int(classify(classify.to_image(x)[None]).argmax())
    except Exception as exc:  # noqa: BLE001 (one bad input never stops a run)
        for method in methods:
            done(Done(_error(photo, method, exc)))
        return results
    label = predicted if photo.label is None else int(photo.label)
    if plan.only_correct and predicted != label:
        done(Done({"id": record_id(photo.id, MISCLASSIFIED), "sample": photo.id, "label": label, "predicted": predicted,
                   "status": MISCLASSIFIED}))
        return results
    cache = GradientCache()
    for method in methods:
        try:
            record, flat = score_method(model, classify, x, photo.id, label, method, plan.setting, photo.truth,
                                        plan.max_thresholds, cache)
        except Exception as exc:  # noqa: BLE001
            done(Done(_error(photo, method, exc)))
            continue
        line = {"id": record_id(photo.id, method), "status": "done", "predicted": predicted, **_json_record(record)}
        image = classify.to_image(x)
        thumbnails = {picture_name(photo.id, method): map_thumbnail(flat, image, record.box)}
        if method == methods[0]:
            thumbnails[picture_name(photo.id)] = input_thumbnail(image)
        done(Done(line, flat.astype(np.float32) if photo.figure and flat is not None else None,
                  image.astype(np.float32) if photo.figure else None, thumbnails))
    return results


def _read_image(path: str, model, plan: Plan) -> np.ndarray:
    from smugir.inputs import image_to_input

    reading = plan.reading
    return image_to_input(path, model.input_shape, plan.setting.layout, reading.scale, reading.mean, reading.std)


def _error(photo: Photo, method: str, exc: Exception) -> dict[str, Any]:
    detail = str(exc) if isinstance(exc, SmugError) else traceback.format_exc(limit=-3)
    return {"id": record_id(photo.id, method), "sample": photo.id, "method": method, "status": "error",
            "error": f"{type(exc).__name__}: {exc}", "detail": detail}


def _json_record(record: Record) -> dict[str, Any]:
    """A record as a JSON line: an infinite LSC (probability 0 on every box) is written as null."""
    data = record.to_json()
    data["lsc"] = data["lsc"] if math.isfinite(data["lsc"]) else None
    data["box"] = None if data["box"] is None else list(data["box"])
    return data


def record_from_line(line: dict[str, Any]) -> Record:
    names = {f.name for f in fields(Record)}
    data = {k: v for k, v in line.items() if k in names}
    data["lsc"] = math.inf if data.get("lsc") is None else float(data["lsc"])
    data["box"] = None if data.get("box") is None else tuple(data["box"])
    data["curve"] = None if data.get("curve") is None else tuple(tuple(point) for point in data["curve"])
    return Record(**data)


# ---- the coordinating process -------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """Where the run stands: the records of the dataset's inputs, what was computed now, and failures."""

    records: list[Record]
    misclassified: list[str]
    errors: list[dict[str, Any]]  # failures of this run (an earlier run's failed lines are retried, not reported)
    computed: int  # (input, method) pairs computed by this run
    reused: int  # recorded by an earlier run
    seconds: float
    recomputed: int = 0  # inputs recorded by an earlier run but computed again (other content, a damaged line)


Advance = Callable[[str, int, bool], None]  # (what finished, method runs finished, whether its input is done)
Progress = Callable[[int, int], Advance]  # (inputs to do, method runs to do) -> the callback of each result


def run_evaluation(
    plan: Plan,
    photos: Sequence[Photo],
    methods: Sequence[str],
    out: str | os.PathLike,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Progress | None = None,
    identity: dict[str, Any] | None = None,
    replace_other: bool = False,
    compute: bool = True,
    then: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """Score `methods` on every photo not yet recorded in `out`; the records of all of them back.

    `identity` (model hash, preprocessing, ...) and, for the SMUG methods, SMUG's options define a
    method's results: every line carries the digest of its settings (described in run.json). A
    rerun whose settings differ for results already recorded is refused, or with `replace_other`
    recomputes those results. Every line also carries its input's content digest: a result of
    other content under the same id (another dataset, an edited image) is computed again.
    `compute=False` only reads what is recorded; `then(report)` runs still holding the folder's
    lock (the files derived from the records)."""
    out = Path(out)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    check_unique([photo.id for photo in photos])
    with results_folder(out, LAYOUT, "eval"):
        report = _run_locked(plan, photos, methods, out, workers, scheduler, progress, identity, replace_other, compute)
        if then is not None:
            then(report)
        return report


def _run_locked(plan: Plan, photos: Sequence[Photo], methods: Sequence[str], out: Path, workers: int, scheduler: str | None,
                progress: Progress | None, identity: dict[str, Any] | None, replace_other: bool, compute: bool) -> RunReport:
    identity = dict(identity or {})
    described = _described(out)
    every = {m: _settings_of(identity, plan, m) for m in (*methods, MISCLASSIFIED)}
    digests = {m: _digest(settings) for m, settings in every.items()}
    inputs = {photo.id: _photo_digest(photo) for photo in photos}
    results = ResultsFile(out / RECORDS, partial(_sound_line, inputs))
    current = {i: line for i, line in results.records.items() if line["status"] in DONE}
    changed = {i for i, line in current.items() if line.get("input_sha256") != inputs[line["sample"]]}
    stale = {i for i, line in current.items() if i not in changed and line.get("method", MISCLASSIFIED) in digests
             and line.get("settings") != digests[line.get("method", MISCLASSIFIED)]}
    if stale and not replace_other:
        _refuse(out, stale, current, every, described)
    new = {digest: every[m] for m, digest in digests.items() if digest not in described}
    if new and compute:  # after the checks: a refused run leaves run.json as it was
        write_text(out / SETTINGS, json.dumps({**described, **new}, indent=1, sort_keys=True) + "\n", force=True)
    done = set(current) - stale - changed
    tasks = []
    for photo in photos:
        if record_id(photo.id, MISCLASSIFIED) in done:
            continue
        missing = tuple(m for m in methods if record_id(photo.id, m) not in done)
        if missing and compute:
            tasks.append((photo, missing))
    suspect = changed | {i for i, line in results.records.items() if line["status"] not in (*DONE, "error")}
    redone = {results.records[i]["sample"] for i in suspect} & {photo.id for photo, _ in tasks}
    runs = sum(len(missing) for _, missing in tasks)
    advance = progress(len(tasks), runs) if progress else (lambda what, count, photo_done: None)
    left = {photo.id: len(missing) for photo, missing in tasks}
    clock = time.perf_counter()
    computed = 0
    failed: list[dict[str, Any]] = []

    def finished(result: Done) -> None:
        nonlocal computed
        record = dict(result.record)
        sample = record["sample"]
        record["settings"] = digests[record.get("method", MISCLASSIFIED)]
        record["input_sha256"] = inputs[sample]
        if result.image is not None:
            _save_array(out / MAPS / f"{sample}.npy", result.image)
        if result.map is not None:
            record["map_file"] = str(_save_array(out / MAPS / f"{sample}_{record['method']}.npy", result.map).relative_to(out))
        for name, data in result.thumbnails.items():
            write_atomically(out / name, lambda stream, data=data: stream.write(data), force=True)
        results.append(record)
        computed += record["status"] == "done"
        if record["status"] == "error":
            failed.append(record)
        count = left[sample] if record["status"] == MISCLASSIFIED else 1  # a skipped input skips all its methods
        left[sample] -= count
        advance(f"{sample} {record.get('method', record['status'])}", count, left[sample] == 0)

    def returned(results_of_photo: list[Done]) -> None:
        for result in results_of_photo:
            finished(result)

    def lost(task: tuple, reason: str) -> None:
        _, photo, missing = task
        for method in missing:
            finished(Done({"id": record_id(photo.id, method), "sample": photo.id, "method": method, "status": "error",
                           "error": reason}))

    if scheduler is None and workers == 1:
        for photo, missing in tasks:
            evaluate_photo(plan, photo, missing, finished)
    else:
        parallel = replace(plan, session_threads=1)  # one onnxruntime thread per worker: no oversubscription
        run_tasks(evaluate_photo, [(parallel, photo, missing) for photo, missing in tasks], returned, lost, workers, scheduler)
    return _report(results, photos, methods, computed, failed, time.perf_counter() - clock, len(redone))


def _save_array(path: Path, array: np.ndarray) -> Path:
    return write_atomically(path, lambda stream: np.save(stream, array, allow_pickle=False), force=True)


SMUG_METHODS = ("smug", "smug_base", "smug_default")


def _settings_of(identity: dict[str, Any], plan: Plan, method: str) -> dict[str, Any]:
    """What defines a method's results: the run's identity, and SMUG's options for the SMUG methods."""
    settings = {**identity, "max_thresholds": plan.max_thresholds, "only_correct": plan.only_correct}
    if method != MISCLASSIFIED:
        settings.update(method=method, target=plan.setting.target, seed=plan.setting.seed,
                        black=plan.setting.low.tolist(), white=plan.setting.high.tolist(), path_steps=plan.setting.path_steps)
    if method in SMUG_METHODS:
        settings["smug"] = dict(plan.setting.smug)
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _digest(settings: dict[str, Any]) -> str:
    """The digest of `settings`, described in run.json (digest -> settings) for people and for `_refuse`."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _photo_digest(photo: Photo) -> str | None:
    """The input's content: the array's values, or the image file's bytes (streamed)."""
    return input_digest(photo.x) if photo.path is None else file_digest(photo.path)


def _sound_line(inputs: dict[str, str | None], line: dict[str, Any]) -> dict[str, Any] | None:
    """A records line of an input of this run, as recorded; a line of other types than smugir
    writes (hand-edited, damaged) or of an unknown status is kept as "damaged": computed again."""
    sample, status = line.get("sample"), line.get("status")
    if not isinstance(sample, str) or sample not in inputs:
        return None
    sound = isinstance(status, str) and isinstance(line.get("settings", ""), str) and isinstance(line.get("method", ""), str)
    if sound and status == "done":
        sound = all(check(line.get(name)) for name, check in _FIELDS.items())
    return line if sound else {**line, "status": "damaged"}


def _real(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**53
    return isinstance(value, float) and not math.isnan(value)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _pairs(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and all(map(_optional(_real), p)) for p in value)


_FIELDS: dict[str, Callable[[Any], bool]] = {  # what a "done" line holds, as `_json_record` writes it
    "model": lambda v: isinstance(v, str), "sample": lambda v: isinstance(v, str), "method": lambda v: isinstance(v, str),
    "label": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31, "lsc": _optional(_real), "area": _real,
    "probability": _real, "seconds": _real, "sparsity": _optional(_real),
    "box": _optional(lambda v: isinstance(v, list) and len(v) == 4 and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in v)),
    **{name: _optional(_real) for name in ("auc", "max_f1", "min_mae", "metric_seconds", "cpu_seconds", "solve_gap")},
    "solve_status": _optional(lambda v: isinstance(v, str)), "curve": _optional(_pairs),
}


def _described(out: Path) -> dict[str, Any]:
    path = out / SETTINGS
    if not os.path.lexists(path):
        return {}
    known = read_json(path, "a smugir run file")
    if not isinstance(known, dict) or not all(isinstance(v, dict) for v in known.values()):
        raise OutputError(f"{printable(repr(str(path)))} is not a smugir run file (digest -> settings); choose another --out")
    return known


def _refuse(out: Path, stale: set[str], current: dict[str, dict], every: dict[str, dict], known: dict[str, Any]) -> None:
    line = current[sorted(stale)[0]]
    method = line.get("method", MISCLASSIFIED)
    before, now = known.get(line.get("settings"), {}), every[method]
    changed = _changed(before, now) or ["settings"]
    methods = sorted({current[i].get("method", MISCLASSIFIED) for i in stale})
    raise InputError(f"{str(out)!r} holds {len(stale)} results ({', '.join(methods)}) made with other settings "
                     f"({', '.join(changed[:4])} differ); choose another --out, or --force to recompute them")


def _changed(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


def _report(results: ResultsFile, photos: Sequence[Photo], methods: Sequence[str], computed: int, failed: list[dict[str, Any]],
            seconds: float, redone: int) -> RunReport:
    order = {photo.id: number for number, photo in enumerate(photos)}
    lines = [line for line in results.records.values() if line.get("sample") in order]
    lines.sort(key=lambda line: (order[line["sample"]], list(methods).index(line["method"]) if line.get("method") in methods else -1))
    records = [record_from_line(line) for line in lines if line["status"] == "done" and line.get("method") in methods]
    return RunReport(
        records=records,
        misclassified=[line["sample"] for line in lines if line["status"] == MISCLASSIFIED],
        errors=[line for line in failed if results.records.get(line["id"], {}).get("status") == "error"],
        computed=computed,
        reused=len(records) - computed,
        seconds=seconds,
        recomputed=redone,
    )


def figure_comparison(out: str | os.PathLike, report: RunReport) -> Comparison:
    """The inputs whose maps were kept, read back for `plots.map_grid`."""
    out = Path(out)
    maps, images = {}, {}
    for record in report.records:
        image = out / MAPS / f"{record.sample}.npy"
        flat = out / MAPS / f"{record.sample}_{record.method}.npy"
        if not image.exists():
            continue
        images.setdefault(record.sample, np.load(image, allow_pickle=False))
        if flat.exists():
            maps[(record.sample, record.method)] = np.load(flat, allow_pickle=False)
    shown = [r for r in report.records if r.sample in images]
    return Comparison(shown, maps, images, report.misclassified)


def complete_inputs(records: Sequence[Record], methods: Sequence[str]) -> set[str]:
    """The inputs every one of `methods` has a record for: the table compares methods on the same inputs."""
    have: dict[str, set[str]] = {}
    for record in records:
        have.setdefault(record.sample, set()).add(record.method)
    return {sample for sample, done in have.items() if done >= set(methods)}
