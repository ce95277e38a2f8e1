"""Explaining whole datasets: a local process pool or a Dask cluster, resumable, one JSON line per input.

Workers (`smugir.executor`) only compute: `explain_item` turns one input into a record (and its mask arrays) and never
raises for a bad input, it returns an error record instead. The coordinating process alone writes
files (masks first, then the result line), so an interrupted run leaves only complete results and a
rerun skips the ids already done.

A results folder can be trusted: `settings.json` records the model's sha256 and every setting that
defines the problems, and a rerun with another model or other settings is refused (unless
`restart`, which starts the folder over), and each result line the digest of its input's content,
so an input whose content changed under the same id is explained again; an exclusive lock (flock on `.lock`, released by the
kernel when its holder dies, so a killed run's lock is simply taken over) refuses a second live
run; workers die with their coordinator (PR_SET_PDEATHSIG); a worker that dies costs its own
input only (the pool is rebuilt and the inputs that were in flight are retried one at a time).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import threading
import time
import traceback
from contextlib import contextmanager
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from smugir.constraints import DEFAULT_FORMULATION
from smugir.datasets import Item, check_unique
from smugir.errors import InputError, OutputError, SmugError
from smugir.executor import run_tasks
from smugir.exporters.files import name_fits, write_atomically, write_text
from smugir.exporters.results import Layout, ResultsFile, check_results_folder, read_json, results_folder
from smugir.explain import VACUOUS
from smugir.identity import input_digest
from smugir.solve import DEFAULT_SOLVER, DEFAULT_TIMEOUT, STATUSES
from smugir.solvers.registry import backend

RESULTS = "results.jsonl"
MASKS = "masks"
SETTINGS = "settings.json"
LAYOUT = Layout(RESULTS, (SETTINGS,), (MASKS,))
DONE = (*STATUSES, *VACUOUS)  # the statuses of a finished input; any other line (error, unknown) is computed again
# What does not change the results of a run, so a rerun may differ in it.
_OPERATIONAL = ("input_timeout", "session_threads", "output")  # output: the chosen scores are part of model_sha256


@dataclass(frozen=True)
class BatchOptions:
    """What `smug explain` takes, minus the input: the same for every item of a batch."""

    top_k: int = 32
    gamma: float = 0.5
    window: int | None = None
    segments: str | None = None  # a .npy label map for every input, or slic:N per input
    baseline: str = "zero"
    method: str = "smug"
    ig_steps: int | None = None
    layout: str = "auto"
    image_shape: tuple[int, int] | None = None
    margin: float = 0.0
    rank: str = "ig"
    formulation: str = DEFAULT_FORMULATION
    solver: str = DEFAULT_SOLVER
    timeout: float | None = DEFAULT_TIMEOUT  # solver seconds per input (None: no limit); the best mask so far is kept
    input_timeout: float | None = None  # wall-clock seconds per input (local runs): then an error line
    vocab: str | None = None  # text models
    session_threads: int = 0  # onnxruntime threads per worker (0: its default)
    output: str | None = None  # the class-score output of a model with several (`smugir.outputs`)


def check_options(options: BatchOptions) -> None:
    """Refuse a bad option by name before any input is read (the checks `explain` makes per input)."""
    from smugir.explain import check_options as check_problem_options

    check_problem_options(options.top_k, options.gamma, options.method, options.rank, options.margin)
    if options.window is not None and options.window < 1:
        raise InputError(f"window must be >= 1, got {options.window}")
    backend(options.solver)  # an unknown name: one line naming the accepted ones
    for name, value in (("timeout", options.timeout), ("input timeout", options.input_timeout)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a finite number of seconds > 0, got {value}")


def problem_settings(options: BatchOptions) -> dict[str, Any]:
    """The options that define each input's problem and result (recorded in settings.json)."""
    return {k: v for k, v in asdict(options).items() if k not in _OPERATIONAL}


@dataclass
class ItemResult:
    """A record for results.jsonl and, for images, the input-shaped mask and saliency map."""

    record: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def explain_item(model_path: str, item: Item, options: BatchOptions) -> ItemResult:
    """Explain one input; any failure becomes an error record, so one bad input never stops a batch."""
    clock = time.perf_counter()
    try:
        with _time_limit(options.input_timeout):
            result = _explain(model_path, item, options)
    except Exception as exc:  # noqa: BLE001 (a batch records every failure and goes on)
        kind = "timeout" if isinstance(exc, InputTimeout) else "input" if isinstance(exc, SmugError) else "crash"
        detail = str(exc) if isinstance(exc, SmugError) else traceback.format_exc(limit=-3)
        result = ItemResult({"status": "error", "error_kind": kind, "error": f"{type(exc).__name__}: {exc}", "detail": detail})
    result.record = {"id": item.id, "label": item.label, **result.record, "seconds": time.perf_counter() - clock}
    return result


class InputTimeout(SmugError):
    """One input took longer than `input_timeout`."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise InputTimeout in this thread after `seconds` of wall-clock time (SIGALRM: POSIX, main
    thread only, i.e. serial and process-pool runs, not Dask's worker threads). A native call (a
    HiGHS solve, an onnxruntime run) finishes before the signal is handled; the solver has its own
    time limit."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise InputTimeout(f"the input took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@lru_cache(maxsize=4)
def _vocabulary(path: str):
    """Read once per worker process, not once per sentence."""
    from smugir.text import Vocabulary

    return Vocabulary.load(path)


@lru_cache(maxsize=4)
def _model(model_path: str, threads: int, output: str | None = None):
    """Loaded once per worker process (with its onnxruntime thread count), not once per input."""
    from smugir.model import load_model, set_session_threads

    set_session_threads(threads)
    return load_model(model_path, output)


def _explain(model_path: str, item: Item, options: BatchOptions) -> ItemResult:
    from smugir.explain import finish, prepare
    from smugir.inputs import load_segments
    from smugir.text import is_text_model, prepare_sentence
    from smugir.units import input_layout

    if item.error:
        raise InputError(item.error)
    model = _model(model_path, options.session_threads, options.output)
    if is_text_model(model):
        if not isinstance(item.x, str) or options.vocab is None:
            raise InputError("a text model needs sentences and a vocabulary (--vocab)")
        setup, words, _ = prepare_sentence(
            model, item.x, _vocabulary(options.vocab), options.baseline, top_k=options.top_k, gamma=options.gamma,
            method=options.method, ig_steps=options.ig_steps, rank=options.rank, formulation=options.formulation,
        )
        explanation = finish(setup, options.solver, options.timeout)
        kept = [bool(k) for k in explanation.unit_mask[: len(words)]]
        return ItemResult({**_summary(explanation), "words": words, "kept": kept})
    if isinstance(item.x, str):
        raise InputError("an image model cannot explain a sentence")
    layout = input_layout(model.input_shape, options.layout, options.image_shape)
    segments = load_segments(options.segments, item.x, layout) if options.segments else None
    setup = prepare(
        model, item.x, top_k=options.top_k, gamma=options.gamma, window=options.window, segments=segments,
        baseline=options.baseline, method=options.method, ig_steps=options.ig_steps, layout=options.layout,
        image_shape=options.image_shape, margin=options.margin, rank=options.rank, formulation=options.formulation,
    )
    explanation = finish(setup, options.solver, options.timeout)
    return ItemResult(_summary(explanation), {"mask": explanation.mask, "saliency": explanation.saliency.astype(np.float32)})


def _summary(explanation) -> dict[str, Any]:
    verification = explanation.verification
    kept = int(explanation.unit_mask.sum())
    record = {
        "explained": explanation.label,
        "predicted": explanation.predicted,
        "status": explanation.status,
        "formulation": explanation.settings.get("formulation"),
        "reason": explanation.vacuous.reason if explanation.vacuous else None,
        "objective": explanation.objective,
        "bound": explanation.bound,
        "gap": explanation.best.gap,
        "presolve": explanation.best.solve_details.get("presolve"),
        "units": explanation.units.n_units,
        "kept_units": kept,
        "sparsity": kept / max(explanation.units.n_units, 1),
        "verified": explanation.verified,
        "solver": explanation.solver,
        "ig_steps": explanation.attribution.get("steps"),
        "timings": explanation.timings,
    }
    if verification is not None:
        record["verification"] = {
            "holds": verification.holds,
            "min_slack": verification.min_slack,
            "confidence": verification.original.confidence,
            "masked_confidence": verification.masked.confidence,
            "masked_class": verification.masked.predicted,
            "inverse_confidence": verification.inverse_masked.confidence,
            "inverse_class": verification.inverse_masked.predicted,
        }
    return record


# ---- the coordinating process -------------------------------------------------------------------


@dataclass(frozen=True)
class BatchReport:
    """What a run did (this run) and where the whole dataset stands (all runs)."""

    inputs: int
    skipped: int  # done by an earlier run
    processed: int
    seconds: float
    statuses: dict[str, int]
    median_solve_seconds: float | None
    p95_solve_seconds: float | None
    median_sparsity: float | None
    verified: int
    vacuous: int = 0  # inputs whose explanation says nothing (a status of smugir.explain.VACUOUS)
    recomputed: int = 0  # inputs recorded by an earlier run but redone: other content, an unknown status, a damaged line

    @property
    def throughput(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "inputs_per_second": self.throughput}


Progress = Callable[[int], None]  # called with the number of inputs just finished


def run_batch(
    model_path: str | os.PathLike,
    items: Sequence[Item],
    out: str | os.PathLike,
    options: BatchOptions = BatchOptions(),
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int], Progress] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    source: dict[str, Any] | None = None,
    restart: bool = False,
) -> BatchReport:
    """Explain every item not yet done in `out`/results.jsonl; `progress(total)` returns an advance
    callback; `on_result(record)` sees each input's result line (status, objective, bound, gap).

    `source` says where the items come from (dataset and preprocessing): it is part of the settings
    a rerun must match. `restart` discards the folder's earlier results instead of refusing a rerun
    with other settings.
    """
    from smugir.model import load_model

    check_options(options)
    model_path = str(Path(model_path).resolve())
    out = Path(out)
    check_results_folder(out, LAYOUT)
    check_unique([item.id for item in items])
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    settings = {"model": model_path, "model_sha256": load_model(model_path, options.output).sha256, "options": problem_settings(options),
                "source": json.loads(json.dumps(source or {}, default=str))}
    with results_folder(out, LAYOUT, "batch"):
        return _run_locked(out, settings, restart, model_path, items, options, workers, scheduler, progress, on_result)


def _run_locked(out: Path, settings, restart, model_path, items, options, workers, scheduler, progress, on_result) -> BatchReport:
    """The run itself, holding OUT's lock, after checking OUT holds results of these settings only.
    An input is done when its line has a known status and the digest of the same content."""
    _claim(out, settings, restart)
    (out / MASKS).mkdir(exist_ok=True)
    digests = {item.id: input_digest(item.x) for item in items}
    results = ResultsFile(out / RESULTS, partial(_summary_line, digests))
    done = {i for i, r in results.records.items() if r["status"] in DONE and r["input_sha256"] == digests[i]}
    todo = [item for item in items if item.id not in done]
    changed = sum(1 for item in todo if item.id in results.records and results.records[item.id]["status"] != "error")
    advance = progress(len(todo)) if progress else (lambda n: None)
    clock = time.perf_counter()

    def finished(result: ItemResult) -> None:
        result.record["input_sha256"] = digests[result.record["id"]]
        _save(out, result, results)
        if on_result is not None:
            on_result(result.record)
        advance(1)

    def lost(task: tuple, reason: str) -> None:
        item = task[1]
        finished(ItemResult({"id": item.id, "label": item.label, "status": "error", "error_kind": "crash", "error": reason}))

    parallel = replace(options, session_threads=1) if scheduler or workers > 1 else options  # no oversubscription
    run_tasks(explain_item, [(model_path, item, parallel) for item in todo], finished, lost, workers, scheduler)
    return _report(len(items), len(items) - len(todo), len(todo), time.perf_counter() - clock, list(results.records.values()), changed)


def _summary_line(digests: dict[str, str | None], record: dict[str, Any]) -> dict[str, Any] | None:
    """What a run needs of a results line (None for an id of no input of this dataset); a line of an
    unknown status or with fields of the wrong type (hand-edited, damaged) is not done: recomputed."""
    if str(record["id"]) not in digests:
        return None
    status, timings, sparsity = record.get("status"), record.get("timings"), record.get("sparsity")
    solve = timings.get("solve", 0.0) if isinstance(timings, dict) else None
    explained = status not in ("error", *VACUOUS)
    if not isinstance(status, str) or (explained and not (_number(solve) and _number(sparsity) and isinstance(record.get("verified"), bool))):
        status = "damaged"
    return {"id": str(record["id"]), "status": status, "input_sha256": record.get("input_sha256"), "solve": solve,
            "sparsity": sparsity, "verified": record.get("verified") is True}


def _number(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**53
    return isinstance(value, float) and math.isfinite(value)


def _claim(out: Path, settings: dict[str, Any], restart: bool) -> None:
    """Make `out` hold results of exactly these settings: new, the same as before, or (restart) started over."""
    path = out / SETTINGS
    if restart:
        for name in (RESULTS, SETTINGS):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / MASKS, ignore_errors=True)
    elif path.exists():
        try:
            earlier = read_json(path, "a smugir settings file")
        except OutputError as exc:
            raise OutputError(f"{exc}; pass --restart to start {str(out)!r} over") from None
        differences = _differences(earlier, settings)
        if differences:
            raise OutputError(
                f"{str(out)!r} holds results made with other settings ({'; '.join(differences)}); "
                f"pass --restart to discard them and start over, or choose another --out"
            )
        return
    elif (out / RESULTS).exists():
        raise OutputError(f"{str(out / RESULTS)!r} has no {SETTINGS} beside it (an older smugir?); pass --restart to start over")
    write_text(path, json.dumps(settings, indent=2) + "\n", force=True)


def _differences(earlier: Any, now: dict[str, Any]) -> list[str]:
    """'gamma 0.5 then, 0.9 now' for every problem-defining setting that changed (the model by its hash)."""
    if not isinstance(earlier, dict):
        return ["no settings recorded"]
    changes = []
    if earlier.get("model_sha256") != now["model_sha256"]:
        changes.append(f"model {earlier.get('model', '?')} (sha256 {str(earlier.get('model_sha256'))[:12]}) then, "
                       f"{now['model']} (sha256 {now['model_sha256'][:12]}) now")
    for group in ("options", "source"):
        before, after = earlier.get(group), now[group]
        if not isinstance(before, dict):
            changes.append(f"{group} not recorded then")
            continue
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(f"{key} {before.get(key)!r} then, {after.get(key)!r} now")
    return changes


def _save(out: Path, result: ItemResult, results: ResultsFile) -> None:
    """Mask files first, the result line last: a line always points at complete files, and when
    anything fails (a full disk) this input's files are removed again."""
    record = dict(result.record)
    written: list[Path] = []
    names = [f"{record['id']}_{name}.npy" for name in result.arrays]
    if not all(map(name_fits, names)):
        record = {**{k: record[k] for k in ("id", "label", "input_sha256", "seconds") if k in record}, "status": "error",
                  "error_kind": "input", "error": f"OutputError: the input id is too long to name its mask files ({names[0]!r})"}
        result = ItemResult(record)
    try:
        for name, array in result.arrays.items():
            path = out / MASKS / f"{record['id']}_{name}.npy"
            written.append(write_atomically(path, lambda stream, a=array: np.save(stream, a, allow_pickle=False), force=True))
            record[f"{name}_file"] = str(path.relative_to(out))
        results.append(record)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _report(inputs: int, skipped: int, processed: int, seconds: float, records: list[dict[str, Any]], changed: int = 0) -> BatchReport:
    statuses = Counter(record["status"] for record in records)
    explained = [r for r in records if r["status"] != "error" and r["status"] not in VACUOUS]
    solve = sorted(r["solve"] for r in explained)
    sparsity = [r["sparsity"] for r in explained]
    return BatchReport(
        inputs=inputs,
        skipped=skipped,
        processed=processed,
        seconds=seconds,
        statuses=dict(sorted(statuses.items())),
        median_solve_seconds=statistics.median(solve) if solve else None,
        p95_solve_seconds=float(np.percentile(solve, 95)) if solve else None,
        median_sparsity=statistics.median(sparsity) if sparsity else None,
        verified=sum(1 for r in records if r.get("verified")),
        vacuous=sum(1 for r in records if r["status"] in VACUOUS),
        recomputed=changed,
    )
