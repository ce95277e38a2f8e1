"""The `smug` command: argument parsing and the mapping of errors to exit codes, nothing else.

Exit codes: see EXIT_CODES (also printed by `smug --help`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from typing import Callable, Sequence

from smugir.errors import NoExplanationError, SmugError, printable

STARTED = time.perf_counter()  # the `smug` process's imports count in explain's timings from here
MAX_SOLUTIONS = 1000  # each one is a further solve with the previous masks blocked
MAX_INTEGER = 2**31 - 1  # no count, size or index of smugir's is larger; numpy needs C integers


def _exit_code(explanation) -> int:
    """0 verified, 1 not verified, 3 an explanation that says nothing."""
    return 3 if explanation.vacuous else 0 if explanation.verified else 1
from smugir.options import EXIT_CODES, add_problem_options


def _inspect(args: argparse.Namespace) -> int:
    from smugir.inspection import format_summary, inspect_model

    summary = inspect_model(args.model, args.output)
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
    clock = time.perf_counter()
    model = load_model(args.model, args.output)
    if is_text_model(model):
        return _explain_text(args, model)
    from smugir.live import describe_ig, live_line

    with live_line("Integrated Gradients", render=describe_ig) as on_ig_progress:
        setup = _image_setup(args, model, on_ig_progress=on_ig_progress)
    setup.timings = {"imports": clock - STARTED, **setup.timings, "load": time.perf_counter() - clock - sum(setup.timings.values())}
    with live_line() as on_progress:
        result = finish(setup, args.solver, args.timeout, args.solutions, on_progress)
    result.timings["total"] = time.perf_counter() - STARTED
    written = write_explanation(result, args.out, args.force, args.html, args.invocation) if args.out else {}
    if args.json:
        print(to_json_text(result.to_json()), end="")
    else:
        print(result.summary())
        if written:
            print(f"wrote       {', '.join(str(p) for p in written.values())}")
    return _exit_code(result)


def _image_setup(args: argparse.Namespace, model, x=None, label=None, on_ig_progress=None):
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
        on_ig_progress=on_ig_progress,
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

    from smugir.exporters.files import staged_folder, write_text
    from smugir.exporters.report import to_json_text
    from smugir.exporters.html_report import report_html
    from smugir.exporters.text import highlighted_html, highlighted_markup, sentence_marks
    from smugir.text import explain_sentence

    result = explain_sentence(
        model, _argument_text(args.input), label=args.label, solver=args.solver, timeout=args.timeout, solutions=args.solutions,
        **_text_options(args, model),
    )
    report = to_json_text(result.to_json())
    if args.out:
        with staged_folder(args.out, ["report.json", "explanation.html", "report.html"], args.force) as folder:
            write_text(folder / "report.json", report)
            write_text(folder / "explanation.html", highlighted_html(result))
            if args.html:
                write_text(folder / "report.html", report_html(result.explanation, args.invocation, sentence_marks(result)))
    if args.json:
        print(report, end="")
    else:
        Console(highlight=False).print(highlighted_markup(result))
        print(result.explanation.summary())
    return _exit_code(result.explanation)


def _argument_text(text: str) -> str:
    """A command-line sentence as valid Unicode: bytes that are not UTF-8 become U+FFFD."""
    return os.fsencode(text).decode("utf-8", errors="replace")


def _problem(args: argparse.Namespace, model, item=None):
    """(input name, masking problem, why it says nothing or None, the input as read) of INPUT or of a dataset item."""
    from smugir.errors import InputError
    from smugir.explain import vacuity
    from smugir.text import is_text_model, prepare_sentence

    if args.method == "smug_base":
        raise InputError("smug_base does not minimise anything, so it has no problem to export; use smug or network")
    if item is not None and item.error:
        raise InputError(f"input {item.id}: {item.error}")
    name = args.input if item is None else item.id
    if is_text_model(model):
        sentence = _argument_text(args.input) if item is None else item.x
        setup, _, _ = prepare_sentence(model, sentence, label=args.label if item is None else None, **_text_options(args, model))
    else:
        setup = _image_setup(args, model, None if item is None else item.x)
    return name, setup.problem, vacuity(setup)[0], sentence if is_text_model(model) else setup.x


def _export(args: argparse.Namespace) -> int:
    from smugir.exporters.files import check_target
    from smugir.exporters.instance_files import export_problem
    from smugir.model import load_model

    from smugir.exporters.provenance import input_name, source_fields

    check_target(args.out, args.force)
    model = load_model(args.model, args.output)
    name, problem, vacuous, x = _problem(args, model)
    if vacuous:
        raise NoExplanationError(f"nothing written: {vacuous.status}: {vacuous.reason}")
    source = source_fields(input_name(name), x, problem.metadata)
    from smugir.live import live_line

    with live_line() as on_progress:
        instance = export_problem(
            problem, args.out, args.format, args.objective, args.bound, args.logic, source, args.timeout, args.force,
            args.solver, on_progress, args.rounding,
        )
    expected = f", expected {instance.expected}" if instance.expected else ""
    print(f"wrote {args.out}: {instance.kind} {instance.logic}, {instance.variables} variables, {instance.constraints} constraints{expected}")
    return 0


def _export_benchmarks(args: argparse.Namespace) -> int:
    from rich.progress import track

    from smugir.batch_command import dataset_items
    from smugir.exporters.files import check_folder
    from smugir.exporters.instance_files import export_family
    from smugir.instance_status import parse_bounds
    from smugir.model import load_model

    from smugir.exporters.provenance import family_origin, input_name, source_fields

    bounds = parse_bounds(args.bounds)
    formats = tuple(part.strip() for part in args.formats.split(",") if part.strip())
    check_folder(args.out, ["instances.csv", "README.md"], args.force)
    model = load_model(args.model, args.output)
    items = dataset_items(args, model)
    dataset = input_name(args.dataset)

    def problems():
        for item in track(items, description="exporting", transient=True):
            _, problem, vacuous, x = _problem(args, model, item)
            if vacuous:
                yield item.id, None, {"skipped": f"{vacuous.status}: {vacuous.reason}"}
            else:
                yield item.id, problem, source_fields(f"{dataset}:{item.id}", x, problem.metadata)

    origin = family_origin(model, dataset, args)
    rows = export_family(problems(), args.out, bounds, args.logic, args.timeout, args.mps, args.force, args.solver, args.min_seconds,
                         formats=formats, roundings=_roundings(args.rounding), origin=origin, license=args.license)
    kinds = Counter(f"{row.kind} {row.expected}" if row.kind == "decision" else row.kind for row in rows)
    inputs = len({row.input for row in rows})
    hard = f" ({inputs} of them proven in {args.min_seconds:g} s or more)" if args.min_seconds > 0 else ""
    print(f"wrote {len(rows)} instances for {len(items)} inputs{hard} to {args.out} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 0


def _add_explain(commands) -> None:
    from smugir.solver_options import add_solver_options

    explain = commands.add_parser(
        "explain",
        help="find a provably minimal mask that keeps the important first-layer neurons active",
        description="Explain MODEL's prediction on INPUT with a minimal mask (SMUG).",
        epilog=EXIT_CODES,
    )
    add_problem_options(explain)
    explain.add_argument("input", help="an image (.png/.jpg/...), a .npy array, file.npz:key[index], or a sentence (text models)")
    explain.add_argument("--label", type=int, help="class to explain (default: the predicted class)")
    add_solver_options(explain)
    explain.add_argument("--solutions", type=int, default=1, help="find N distinct minimal masks (default 1)")
    explain.add_argument("--out", help="folder for report.json, report.html, mask.npy, saliency.npy and PNG pictures")
    explain.add_argument("--html", action=argparse.BooleanOptionalAction, default=True,
                         help="with --out: write report.html, the whole explanation in one self-contained page (default on)")
    explain.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    explain.set_defaults(run=_explain)


def _roundings(text: str) -> tuple[str, ...]:
    return ("relaxed", "restricted") if text == "both" else (text,)


def _add_export(commands) -> None:
    from smugir.solver_options import add_solver_options
    from smugir.exporters.choices import FORMATS, LOGICS, OBJECTIVES

    export = commands.add_parser(
        "export",
        help="write the masking problem of one input as an SMT-LIB 2, MPS or LP file",
        description="Write the masking problem of MODEL on INPUT for other solvers. SMT-LIB decision files carry "
        "(set-info :status ...) when smugir can prove it.",
        epilog=EXIT_CODES,
    )
    add_problem_options(export)
    export.add_argument("input", help="an image, a .npy array, file.npz:key[index], or a sentence (text models)")
    export.add_argument("--label", type=int, help="class to explain (default: the predicted class)")
    export.add_argument("--format", choices=FORMATS, default="smt2",
                        help="smt2 (default), opb (pseudo-Boolean), wcnf (MaxSAT), mps or lp (written by HiGHS)")
    export.add_argument("--rounding", choices=("relaxed", "restricted"), default="relaxed",
                        help="opb/wcnf: CP-SAT's integer rows; relaxed (default: its optimum bounds the exact one from below, "
                        "unsat means no mask) or restricted (every solution is an exact mask)")
    export.add_argument("--objective", choices=OBJECTIVES, default="bound", help="smt2: bound = decision problem sum(m) <= B (default); omt = (minimize ...)")
    export.add_argument("--bound", help="smt2 decision problems: B as a number, opt (the optimum: sat) or opt-1 (unsat)")
    export.add_argument("--logic", choices=tuple(LOGICS), default="QF_LIA", help="QF_LIA (scaled integers, default) or QF_LRA (exact rationals); whole networks are QF_LRA")
    add_solver_options(export, " when the optimum or the status is needed")
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
    family.add_argument("--formats", default="smt2",
                        help="comma-separated: smt2 (decisions and OMT), smt2-bv (QF_BV decisions on the OPB rows, for bitwuzla), opb, wcnf, mps (default smt2)")
    family.add_argument("--rounding", choices=("relaxed", "restricted", "both"), default="both",
                        help="opb/wcnf/smt2-bv: which integer rounding(s) to write (default both, one file each)")
    family.add_argument("--license", default="https://creativecommons.org/licenses/by/4.0/",
                        help="the :license of the SMT-LIB files (default CC BY 4.0)")
    family.add_argument("--mps", action="store_true", help="also write each minimisation as an MPS file (= --formats ...,mps)")
    family.add_argument("--limit", type=int, help="only the first N inputs")
    add_solver_options(family, " per input")
    family.add_argument("--min-seconds", type=float, default=0.0,
                        help="only inputs whose optimum took smugir at least S seconds to prove (hard instances); default 0: all")
    family.add_argument("--out", required=True, help="the folder for the instances (created if missing)")
    family.set_defaults(run=_export_benchmarks)


def _add_batch(commands) -> None:
    """`smug batch`, defined beside the code that prints its progress and report."""
    from smugir.batch_command import add_command

    add_command(commands)


def _add_evaluation(commands) -> None:
    """`smug eval` and `smug sanity`, defined beside the evaluation code they run."""
    from smugir.evaluation.commands import add_commands

    add_commands(commands)


def _add_check_solver(commands) -> None:
    """`smug check-solver`, defined beside the code that runs and grades the solver."""
    from smugir.check_solver import add_command

    add_command(commands)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is in --help), like every other error of smug."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def _memory_size(text: str) -> int:
    from smugir.budget import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_options(args: argparse.Namespace) -> None:
    """Option values that no input makes right, refused before any work (exit 2, one line)."""
    from smugir.errors import InputError

    for option, value in vars(args).items():
        if option != "max_memory" and isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise InputError(f"--{option.replace('_', '-')} {value} is out of range (at most {MAX_INTEGER})")
    if getattr(args, "out", None) == "":
        raise InputError("--out '' names no path; give a folder or file name (or leave --out out)")
    if (getattr(args, "seed", None) or 0) < 0:
        raise InputError(f"--seed must be a whole number >= 0 (numpy's seeds are), got {args.seed}")
    for option in ("scale", "mean", "std"):
        values = getattr(args, option, None)
        if values is not None and not all(math.isfinite(v) for v in (values if isinstance(values, tuple) else (values,))):
            raise InputError(f"--{option} must be finite, got {values}")
    from smugir.solve import MAX_TIMEOUT

    for option in ("timeout", "input_timeout"):
        value = getattr(args, option, None)
        if value is not None and not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
            raise InputError(f"--{option.replace('_', '-')} must be a finite number of seconds in (0, {MAX_TIMEOUT:g}], got {value}")
    solutions = getattr(args, "solutions", None)
    if solutions is not None and not 1 <= solutions <= MAX_SOLUTIONS:
        raise InputError(f"--solutions must be in 1..{MAX_SOLUTIONS}, got {solutions}")
    steps = getattr(args, "ig_steps", None)
    if steps is not None:
        from smugir.attribution import MAX_STEPS

        if not 1 <= steps <= MAX_STEPS:
            raise InputError(f"--ig-steps must be in 1..{MAX_STEPS} (the adaptive default stops there too), got {steps}")
    if getattr(args, "scheduler", None) is not None:
        from smugir.executor import parse_scheduler

        args.scheduler = parse_scheduler(args.scheduler)
    baseline = str(getattr(args, "baseline", "") or "").strip().lower()
    if baseline.startswith("blur:"):
        from smugir.baseline import blur_sigma

        blur_sigma(baseline, None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="smug",
        description="Explain ONNX classifiers with provably minimal input masks (SMUG).",
        epilog=EXIT_CODES,
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
    _add_check_solver(commands)
    for command in commands.choices.values():
        if any(action.dest == "model" for action in command._actions):
            command.add_argument("--output", metavar="NAME", help="the output that holds the class scores, for a model "
                                 "with several (default: the one float (C,) or (N, C) output; a ZipMap stands for its float input)")
        command.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                             help="refuse steps that would need more memory than this, e.g. 8G or 500M "
                             "(default: half of the memory available)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints escaped, never a UnicodeEncodeError
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.invocation = ["smug", *(sys.argv[1:] if argv is None else argv)]  # what report.html says made it
    run: Callable[[argparse.Namespace], int] = args.run
    from smugir.budget import format_size, limit, limited
    from smugir.heap import return_large_buffers
    from smugir.termination import EXIT_CODE, Terminated, sigterm_unwinds

    return_large_buffers()

    try:
        with sigterm_unwinds(), limited(args.max_memory):
            _check_options(args)
            return run(args)
    except Terminated:
        print(f"smug {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_CODE
    except NoExplanationError as exc:
        print(f"smug {args.command}: no explanation: {printable(exc)}", file=sys.stderr)
        return 3
    except SmugError as exc:
        print(f"smug {args.command}: error: {printable(exc)}", file=sys.stderr)
        return 2
    except MemoryError:  # a step the estimates missed: still one line, never a traceback
        print(f"smug {args.command}: error: out of memory (limit {format_size(args.max_memory or limit())}; --max-memory SIZE)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smug {args.command}: interrupted", file=sys.stderr)
        return 130
