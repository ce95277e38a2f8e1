"""The `smug` command: argument parsing and the mapping of errors to exit codes, nothing else.

Exit codes: 0 success; 1 a result that did not verify (e.g. a mask failing its constraints in
float32); 2 bad input or unsupported model (one line on stderr, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from smugir.errors import SmugError
from smugir.options import add_problem_options


def _inspect(args: argparse.Namespace) -> int:
    from smugir.inspection import format_summary, inspect_model

    summary = inspect_model(args.model)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from smugir.explain import finish
    from smugir.exporters.files import check_folder
    from smugir.exporters.report import FILES, to_json_text, write_explanation
    from smugir.model import load_model
    from smugir.text import is_text_model

    if args.out:
        check_folder(args.out, list(FILES), args.force)  # fail before the work, not after it
    model = load_model(args.model)
    if is_text_model(model):
        return _explain_text(args, model)
    result = finish(_image_setup(args, model), args.solver, args.timeout, args.solutions)
    written = write_explanation(result, args.out, force=args.force) if args.out else {}
    if args.json:
        print(to_json_text(result.to_json()), end="")
    else:
        print(result.summary())
        if written:
            print(f"wrote       {', '.join(str(p) for p in written.values())}")
    return 0 if result.best.verified else 1


def _image_setup(args: argparse.Namespace, model, x=None, label=None):
    """The masking problem of one image input: INPUT from the command line, or `x` from a dataset."""
    from smugir.explain import prepare
    from smugir.inputs import load_input, load_segments
    from smugir.units import input_layout

    layout = input_layout(model.input_shape, args.layout, args.image_shape)
    if x is None:
        x = load_input(args.input, model.input_shape, layout, args.scale, args.mean, args.std)
        label = args.label
    segments = load_segments(args.segments, x, layout) if args.segments else None
    return prepare(
        model, x, label=label, top_k=args.top_k, gamma=args.gamma, window=args.window, segments=segments,
        baseline=args.baseline, method=args.method, ig_steps=args.ig_steps, layout=args.layout,
        image_shape=args.image_shape, margin=args.margin, rank=args.rank, formulation=args.formulation,
    )


def _text_options(args: argparse.Namespace, model) -> dict:
    from smugir.errors import InputError
    from smugir.text import Vocabulary

    if not args.vocab:
        raise InputError(f"{args.model!r} is a text model (integer token ids); pass --vocab VOCAB.txt and a sentence as INPUT")
    return {
        "vocabulary": Vocabulary.load(args.vocab), "baseline": args.baseline, "top_k": args.top_k, "gamma": args.gamma,
        "method": args.method, "ig_steps": args.ig_steps, "rank": args.rank, "formulation": args.formulation,
    }


def _explain_text(args: argparse.Namespace, model) -> int:
    from rich.console import Console

    from smugir.exporters.files import prepare_folder, write_text
    from smugir.exporters.report import to_json_text
    from smugir.exporters.text import highlighted_html, highlighted_markup
    from smugir.text import explain_sentence

    result = explain_sentence(
        model, args.input, label=args.label, solver=args.solver, timeout=args.timeout, solutions=args.solutions,
        **_text_options(args, model),
    )
    report = to_json_text(result.to_json())
    if args.out:
        folder = prepare_folder(args.out, ["report.json", "explanation.html"], args.force)
        write_text(folder / "report.json", report, args.force)
        write_text(folder / "explanation.html", highlighted_html(result), args.force)
    if args.json:
        print(report, end="")
    else:
        Console(highlight=False).print(highlighted_markup(result))
        print(result.explanation.summary())
    return 0 if result.explanation.best.verified else 1


def _problem(args: argparse.Namespace, model, item=None):
    """(input name, masking problem) of INPUT or of a dataset item; SMUG_base has nothing to solve."""
    from smugir.errors import InputError
    from smugir.text import is_text_model, prepare_sentence

    if args.method == "smug_base":
        raise InputError("smug_base does not minimise anything, so it has no problem to export; use smug or network")
    if item is not None and item.error:
        raise InputError(f"input {item.id}: {item.error}")
    name = args.input if item is None else item.id
    if is_text_model(model):
        sentence = args.input if item is None else item.x
        setup, _, _ = prepare_sentence(model, sentence, label=args.label if item is None else None, **_text_options(args, model))
    else:
        setup = _image_setup(args, model, None if item is None else item.x)
    return name, setup.problem


def _export(args: argparse.Namespace) -> int:
    from smugir.exporters.files import check_target
    from smugir.exporters.instances import export_problem
    from smugir.model import load_model

    check_target(args.out, args.force)
    model = load_model(args.model)
    name, problem = _problem(args, model)
    source = {"input": name, **dict(problem.metadata)}
    instance = export_problem(
        problem, args.out, args.format, args.objective, args.bound, args.logic, source, args.timeout, args.force,
    )
    expected = f", expected {instance.expected}" if instance.expected else ""
    print(f"wrote {args.out}: {instance.kind} {instance.logic}, {instance.variables} variables, {instance.constraints} constraints{expected}")
    return 0


def _export_benchmarks(args: argparse.Namespace) -> int:
    from rich.progress import track

    from smugir.exporters.files import check_folder
    from smugir.exporters.instances import export_family
    from smugir.instances import parse_bounds
    from smugir.model import load_model

    bounds = parse_bounds(args.bounds)
    check_folder(args.out, ["instances.csv"], args.force)
    model = load_model(args.model)
    items = _dataset_items(args, model)

    def problems():
        for item in track(items, description="exporting", transient=True):
            _, problem = _problem(args, model, item)
            yield item.id, problem, {"input": f"{args.dataset}:{item.id}", **dict(problem.metadata)}

    rows = export_family(problems(), args.out, bounds, args.logic, args.timeout, args.mps, args.force)
    kinds = Counter(f"{row.kind} {row.expected}" if row.kind == "decision" else row.kind for row in rows)
    print(f"wrote {len(rows)} instances for {len(items)} inputs to {args.out} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 0


def _add_explain(commands) -> None:
    from smugir.solve import DEFAULT_SOLVER

    explain = commands.add_parser(
        "explain",
        help="find a provably minimal mask that keeps the important first-layer neurons active",
        description="Explain MODEL's prediction on INPUT with a minimal mask (SMUG).",
    )
    add_problem_options(explain)
    explain.add_argument("input", help="an image (.png/.jpg/...), a .npy array, file.npz:key[index], or a sentence (text models)")
    explain.add_argument("--label", type=int, help="class to explain (default: the predicted class)")
    explain.add_argument("--solver", default=DEFAULT_SOLVER, help=f"highs, z3, z3-optimize or pysmt:NAME (default {DEFAULT_SOLVER})")
    explain.add_argument("--timeout", type=float, help="seconds for the solver; the best mask so far is kept")
    explain.add_argument("--solutions", type=int, default=1, help="find N distinct minimal masks (default 1)")
    explain.add_argument("--out", help="folder for report.json, mask.npy, saliency.npy and PNG pictures")
    explain.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    explain.set_defaults(run=_explain)


def _add_export(commands) -> None:
    from smugir.exporters.instances import FORMATS
    from smugir.exporters.smtlib import OBJECTIVES
    from smugir.instances import LOGICS

    export = commands.add_parser(
        "export",
        help="write the masking problem of one input as an SMT-LIB 2, MPS or LP file",
        description="Write the masking problem of MODEL on INPUT for other solvers. SMT-LIB decision files carry "
        "(set-info :status ...) when smugir can prove it.",
    )
    add_problem_options(export)
    export.add_argument("input", help="an image, a .npy array, file.npz:key[index], or a sentence (text models)")
    export.add_argument("--label", type=int, help="class to explain (default: the predicted class)")
    export.add_argument("--format", choices=FORMATS, default="smt2", help="smt2 (default), mps or lp (written by HiGHS)")
    export.add_argument("--objective", choices=OBJECTIVES, default="bound", help="smt2: bound = decision problem sum(m) <= B (default); omt = (minimize ...)")
    export.add_argument("--bound", help="smt2 decision problems: B as a number, opt (the optimum: sat) or opt-1 (unsat)")
    export.add_argument("--logic", choices=tuple(LOGICS), default="QF_LIA", help="QF_LIA (scaled integers, default) or QF_LRA (exact rationals); whole networks are QF_LRA")
    export.add_argument("--timeout", type=float, help="seconds for HiGHS when the optimum or the status is needed")
    export.add_argument("--out", required=True, help="the file to write (.smt2, .mps or .lp)")
    export.set_defaults(run=_export)

    family = commands.add_parser(
        "export-benchmarks",
        help="write a benchmark family: decision instances at and below the optimum, OMT instances, instances.csv",
        description="For each input of DATASET: SMT-LIB decision instances at the given bounds with their proven "
        "status, the OMT instance, optionally MPS; and instances.csv indexing them.",
    )
    add_problem_options(family)
    family.add_argument("dataset", help="file.npz[:key] (images, optional 'labels'), a folder of images, or a .txt/.tsv of sentences")
    family.add_argument("--bounds", default="opt,opt-1", help="comma-separated: opt, opt-1 or numbers (default opt,opt-1)")
    family.add_argument("--logic", choices=tuple(LOGICS), default="QF_LIA", help="QF_LIA (default) or QF_LRA")
    family.add_argument("--mps", action="store_true", help="also write each minimisation as an MPS file")
    family.add_argument("--limit", type=int, help="only the first N inputs")
    family.add_argument("--timeout", type=float, help="seconds for HiGHS per input")
    family.add_argument("--out", required=True, help="the folder for the instances (created if missing)")
    family.set_defaults(run=_export_benchmarks)


def _dataset_items(args: argparse.Namespace, model):
    """DATASET's items (at most --limit), checked to be what the model takes: sentences or arrays."""
    from smugir.datasets import read_dataset, select
    from smugir.text import is_text_model
    from smugir.units import input_layout

    layout = None if is_text_model(model) else input_layout(model.input_shape, args.layout, args.image_shape)
    items = read_dataset(args.dataset, model.input_shape, layout, args.scale, args.mean, args.std)
    return select(items, layout is None, args.dataset, args.limit)


def _batch(args: argparse.Namespace) -> int:
    from smugir.batch import BatchOptions, run_batch
    from smugir.model import load_model

    model = load_model(args.model)
    items = _dataset_items(args, model)
    options = BatchOptions(
        top_k=args.top_k, gamma=args.gamma, window=args.window, segments=args.segments, baseline=args.baseline,
        method=args.method, ig_steps=args.ig_steps, layout=args.layout, image_shape=args.image_shape,
        margin=args.margin, rank=args.rank, formulation=args.formulation, solver=args.solver, timeout=args.timeout, vocab=args.vocab,
        input_timeout=args.input_timeout,
    )
    with _progress_bar() as start:
        report = run_batch(args.model, items, args.out, options, args.workers, args.scheduler, start)
    _print_batch_report(report, args.out)
    return 0 if report.statuses.get("error", 0) == 0 and report.verified == sum(report.statuses.values()) else 1


@contextmanager
def _progress_bar() -> Iterator[Callable[[int], Callable[[int], None]]]:
    """A rich progress bar with rate and ETA; yields the `progress(total)` callback run_batch wants."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (TextColumn("explaining"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(show_speed=True),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as progress:

        def start(total: int) -> Callable[[int], None]:
            task = progress.add_task("explaining", total=total)
            return lambda n: progress.advance(task, n)

        yield start


def _print_batch_report(report, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{report.inputs} inputs: {report.skipped} done by an earlier run, {report.processed} explained now "
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
        f"verified {report.verified}; results in {out}/results.jsonl"
    )


def _add_batch(commands) -> None:
    from smugir.solve import DEFAULT_SOLVER

    batch = commands.add_parser(
        "batch",
        help="explain every input of a dataset, in parallel, resumable",
        description="Explain every input of DATASET (file.npz[:key], a folder of images, a .txt/.tsv of sentences). "
        "One JSON line per input in OUT/results.jsonl and mask files in OUT/masks; a rerun skips finished inputs.",
    )
    add_problem_options(batch)
    batch.add_argument("dataset", help="file.npz[:key] (images, optional 'labels'), a folder of images, or a .txt/.tsv of sentences")
    batch.add_argument("--out", required=True, help="results folder (created if missing; reruns resume in it)")
    batch.add_argument("--solver", default=DEFAULT_SOLVER, help=f"highs, z3, z3-optimize or pysmt:NAME (default {DEFAULT_SOLVER})")
    batch.add_argument("--timeout", type=float, help="solver seconds per input; the best mask so far is kept (status feasible)")
    batch.add_argument("--input-timeout", type=float, help="wall-clock seconds per input, local runs: an input still running becomes an error line")
    batch.add_argument("--workers", type=int, help="local worker processes (default: the number of cores)")
    batch.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler: run on that cluster instead (extra 'dist')")
    batch.add_argument("--limit", type=int, help="only the first N inputs")
    batch.set_defaults(run=_batch)


def _add_evaluation(commands) -> None:
    """`smug eval` and `smug sanity`, defined beside the evaluation code they run."""
    from smugir.evaluation.commands import add_commands

    add_commands(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smug",
        description="Explain ONNX classifiers with provably minimal input masks (SMUG).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inspect = commands.add_parser("inspect", help="show a model's interface and the first layer smugir reads")
    inspect.add_argument("model", help="path to an .onnx file")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON")
    inspect.set_defaults(run=_inspect)
    _add_explain(commands)
    _add_export(commands)
    _add_batch(commands)
    _add_evaluation(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SmugError as exc:
        print(f"smug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smug {args.command}: interrupted", file=sys.stderr)
        return 130
