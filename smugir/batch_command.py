"""`smug batch`: its options, the live progress bar (rate, ETA, the last input's result) and the
printed report; the work itself is `smugir.batch.run_batch`."""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from smugir.options import EXIT_CODES, add_problem_options


def dataset_items(args: argparse.Namespace, model):
    """DATASET's items (at most --limit), checked to be what the model takes: sentences or arrays."""
    from smugir.datasets import read_dataset, select
    from smugir.text import is_text_model
    from smugir.units import input_layout

    layout = None if is_text_model(model) else input_layout(model.input_shape, args.layout, args.image_shape)
    items = read_dataset(args.dataset, model.input_shape, layout, args.scale, args.mean, args.std)
    return select(items, layout is None, args.dataset, args.limit)


def _batch(args: argparse.Namespace) -> int:
    from smugir.batch import BatchOptions, check_options, run_batch
    from smugir.model import load_model

    options = BatchOptions(
        top_k=args.top_k, gamma=args.gamma, window=args.window, segments=args.segments, baseline=args.baseline,
        method=args.method, ig_steps=args.ig_steps, layout=args.layout, image_shape=args.image_shape,
        margin=args.margin, rank=args.rank, formulation=args.formulation, solver=args.solver, timeout=args.timeout, vocab=args.vocab,
        input_timeout=args.input_timeout, output=args.output,
    )
    check_options(options)  # before any input is read
    model = load_model(args.model, args.output)
    items = dataset_items(args, model)
    source = {"dataset": os.path.abspath(args.dataset), "scale": args.scale, "mean": list(args.mean), "std": list(args.std)}
    with _progress_bar() as (start, on_result):
        report = run_batch(args.model, items, args.out, options, args.workers, args.scheduler, start,
                           on_result=on_result, source=source, restart=args.restart)
    _print_batch_report(report, args.out)
    unverified = sum(report.statuses.values()) - report.verified - report.vacuous
    return 1 if unverified else 3 if report.vacuous else 0


@contextmanager
def _progress_bar() -> Iterator[tuple[Callable[[int], Callable[[int], None]], Callable[[dict], None]]]:
    """A rich progress bar with rate, ETA and the last input's result (status, incumbent, bound,
    gap); yields the `progress(total)` and `on_result(record)` callbacks run_batch wants."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (TextColumn("explaining"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(show_speed=True),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns) as progress:
        tasks: list = []

        def start(total: int) -> Callable[[int], None]:
            tasks.append(progress.add_task("explaining", total=total, last=""))
            return lambda n: progress.advance(tasks[0], n)

        def on_result(record: dict) -> None:
            if tasks:
                progress.update(tasks[0], last=_result_field(record))

        yield start, on_result


def _result_field(record: dict) -> str:
    """`last 7: optimal 29` or `last 4: feasible 30, bound 28, gap 6.7 %`."""
    from smugir.live import describe
    from smugir.solve import SolveProgress

    if record.get("status") == "error":
        return f"last {record.get('id')}: error"
    snapshot = SolveProgress("", 0.0, record.get("objective"), record.get("bound"))
    return f"last {record.get('id')}: {record.get('status')}, {describe(snapshot)}"


def _print_batch_report(report, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    again = f" (of them {report.recomputed} recorded with other content, an unknown status or a damaged line)" if report.recomputed else ""
    console.print(f"{report.inputs} inputs: {report.skipped} done by an earlier run, {report.processed} explained now{again} "
                  f"in {report.seconds:.1f} s ({report.throughput:.2f} inputs/s)")
    table = Table()
    table.add_column("status")
    table.add_column("inputs", justify="right")
    for status, count in report.statuses.items():
        table.add_row(status, str(count))
    console.print(table)

    def seconds(value):
        return "-" if value is None else f"{value:.3f} s"

    console.print(
        f"solve time median {seconds(report.median_solve_seconds)}, 95th percentile {seconds(report.p95_solve_seconds)}; "
        f"median sparsity {'-' if report.median_sparsity is None else f'{100 * report.median_sparsity:.1f} %'}; "
        f"verified {report.verified}; no meaningful explanation {report.vacuous}; results in {out}/results.jsonl"
    )


def add_command(commands) -> None:
    from smugir.solver_options import add_solver_options

    batch = commands.add_parser(
        "batch",
        help="explain every input of a dataset, in parallel, resumable",
        description="Explain every input of DATASET (file.npz[:key], a folder of images, a .txt/.tsv of sentences). "
        "One JSON line per input in OUT/results.jsonl, mask files in OUT/masks and the model hash and settings in "
        "OUT/settings.json; a rerun with the same settings skips finished inputs, with others it is refused "
        "(--restart starts over); a second run on OUT at the same time is refused.",
        epilog=EXIT_CODES,
    )
    add_problem_options(batch)
    batch.add_argument("dataset", help="file.npz[:key] (images, optional 'labels'), a folder of images, or a .txt/.tsv of sentences")
    batch.add_argument("--out", required=True, help="results folder (created if missing; reruns resume in it)")
    add_solver_options(batch, " per input")
    batch.add_argument("--input-timeout", type=float, help="wall-clock seconds per input, local runs: an input still running becomes an error line")
    batch.add_argument("--workers", type=int, help="local worker processes (default: the number of cores)")
    batch.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler: run on that cluster instead (extra 'dist')")
    batch.add_argument("--limit", type=int, help="only the first N inputs")
    batch.add_argument("--restart", action="store_true",
                       help="discard OUT's earlier results (needed when the model or a setting changed; a rerun with "
                       "other settings is refused)")
    batch.set_defaults(run=_batch)
