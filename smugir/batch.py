"""Explaining whole datasets: a local process pool or a Dask cluster, resumable, one JSON line per input.

Workers (`smugir.executor`) only compute: `explain_item` turns one input into a record (and its mask arrays) and never
raises for a bad input, it returns an error record instead. The coordinating process alone writes
files (masks first, then the result line), so an interrupted run leaves only complete results and a
rerun skips the ids already done.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
import traceback
from contextlib import contextmanager
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from smugir.constraints import DEFAULT_FORMULATION
from smugir.datasets import Item
from smugir.errors import InputError, SmugError
from smugir.executor import run_tasks
from smugir.exporters.files import write_atomically
from smugir.exporters.results import ResultsFile
from smugir.solve import DEFAULT_SOLVER

RESULTS = "results.jsonl"
MASKS = "masks"


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
    timeout: float | None = None  # seconds for the solver per input; the best mask so far is kept
    input_timeout: float | None = None  # wall-clock seconds per input (local runs): then an error line
    vocab: str | None = None  # text models
    session_threads: int = 0  # onnxruntime threads per worker (0: its default)


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
def _model(model_path: str, threads: int):
    """Loaded once per worker process (with its onnxruntime thread count), not once per input."""
    from smugir.model import load_model, set_session_threads

    set_session_threads(threads)
    return load_model(model_path)


def _explain(model_path: str, item: Item, options: BatchOptions) -> ItemResult:
    from smugir.explain import finish, prepare
    from smugir.inputs import load_segments
    from smugir.text import is_text_model, prepare_sentence
    from smugir.units import input_layout

    if item.error:
        raise InputError(item.error)
    model = _model(model_path, options.session_threads)
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
        "objective": explanation.objective,
        "bound": explanation.bound,
        "units": explanation.units.n_units,
        "kept_units": kept,
        "sparsity": kept / max(explanation.units.n_units, 1),
        "verified": explanation.best.verified,
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
) -> BatchReport:
    """Explain every item not yet done in `out`/results.jsonl; `progress(total)` returns an advance callback."""
    model_path = str(Path(model_path).resolve())
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"cannot create {str(out)!r}: the folder {str(out.parent)!r} does not exist")
    _check_unique([item.id for item in items])
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    (out / MASKS).mkdir(parents=True, exist_ok=True)
    results = ResultsFile(out / RESULTS)
    todo = [item for item in items if item.id not in results.done]
    advance = progress(len(todo)) if progress else (lambda n: None)
    clock = time.perf_counter()

    def finished(result: ItemResult) -> None:
        _save(out, result, results)
        advance(1)

    def lost(task: tuple, reason: str) -> None:
        item = task[1]
        finished(ItemResult({"id": item.id, "label": item.label, "status": "error", "error_kind": "crash", "error": reason}))

    parallel = replace(options, session_threads=1) if scheduler or workers > 1 else options  # no oversubscription
    run_tasks(explain_item, [(model_path, item, parallel) for item in todo], finished, lost, workers, scheduler)
    ids = {item.id for item in items}
    return _report(len(items), len(items) - len(todo), len(todo), time.perf_counter() - clock,
                   [r for r in results.records.values() if str(r["id"]) in ids])


def _check_unique(ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise InputError(f"input id {i!r} appears twice in the dataset; ids name the result lines and mask files")
        seen.add(i)


def _save(out: Path, result: ItemResult, results: ResultsFile) -> None:
    """Mask files first, the result line last: a line always points at complete files."""
    record = dict(result.record)
    for name, array in result.arrays.items():
        path = out / MASKS / f"{record['id']}_{name}.npy"
        write_atomically(path, lambda stream, a=array: np.save(stream, a, allow_pickle=False), force=True)
        record[f"{name}_file"] = str(path.relative_to(out))
    results.append(record)


def _report(inputs: int, skipped: int, processed: int, seconds: float, records: list[dict[str, Any]]) -> BatchReport:
    statuses = Counter(record["status"] for record in records)
    solve = sorted(r["timings"].get("solve", 0.0) for r in records if r["status"] != "error")
    sparsity = [r["sparsity"] for r in records if r["status"] != "error"]
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
    )
