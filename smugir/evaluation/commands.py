"""`smug eval` and `smug sanity`, registered on the `smug` parser by `smugir.cli`.

Both take the options that define SMUG's masking problem exactly as `smug explain` does (they are
added by the same function), so the SMUG rows of a table are what `smug explain` would give.
Heavy modules (PAIR, matplotlib) are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

EVAL_FILES = ["records.jsonl", "records.csv", "summary.csv", "maps.png", "lsc.png", "index.html"]
TEXT_EVAL_FILES = ["records.csv", "summary.csv", "lsc.png", "index.html"]
SANITY_FILES = ["sanity.csv", "sanity.png", "index.html"]
EVAL_METHODS = "smug,smug_base,ig,gradcam,smoothgrad,xrai,optbox"
SANITY_METHODS = "gradient,ig,smoothgrad,gradcam,smug,edges"
SANITY_MODES = "cascading,independent,noise:0.1,noise:0.2,noise:0.3"


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _common(command: argparse.ArgumentParser, methods: str) -> None:
    from smugir.options import add_problem_options
    from smugir.solver_options import add_solver_options

    add_problem_options(command)
    command.add_argument("dataset", help="file.npz[:key] of raw model inputs (and 'labels'), or a folder of images")
    command.add_argument("--methods", type=_names, default=_names(methods), help=f"comma-separated saliency methods (default {methods})")
    command.add_argument("--pixels", action="store_true",
                         help="the .npz array holds images (N, H, W[, C]) in pixel units: apply --scale, --mean, --std and the model's layout as for image files")
    command.add_argument("--limit", type=_positive, help="only the first N inputs")
    add_solver_options(command, " per input for SMUG")
    command.add_argument("--seed", type=int, default=0, help="seed of SmoothGrad's noise and of the randomised weights (default 0)")
    command.add_argument("--path-steps", type=_positive,
                         help="steps of the path methods: IG, Blur IG, Guided IG and XRAI's IG (default 64; PAIR's IG default is 25)")
    command.add_argument("--out", help="folder for the results and figures (created if missing; eval: a rerun continues in it, --force recomputes results made with other settings)")


def add_commands(commands) -> None:
    """Register `eval` and `sanity` on the `smug` subcommand parser."""
    evaluate = commands.add_parser(
        "eval",
        help="compare saliency methods on a dataset with the saliency metric (LSC), Win %%, sparsity and time",
        description="Score each method's map of each input with the saliency metric (LSC, lower is better) and OptBox; "
        "print the table (LSC median and quartiles, Win %, sparsity, seconds per input).",
    )
    _common(evaluate, EVAL_METHODS)
    evaluate.add_argument("--correct-only", action="store_true", help="score only the inputs the model classifies correctly (needs labels)")
    evaluate.add_argument("--truth", help="ground-truth masks (N, H, W) as file.npz:key: adds AUC, max F1 and min MAE")
    evaluate.add_argument("--figure-inputs", type=_positive, default=6, help="inputs shown in maps.png (default 6)")
    evaluate.add_argument("--label-from-name", action="store_true",
                          help="image folders: the label is the number a file name starts with (0042_goldfish.jpg: 42)")
    evaluate.add_argument("--report-only", action="store_true", help="compute nothing: the table and figures of what --out records")
    evaluate.add_argument("--workers", type=_positive, default=1, help="local worker processes, one input each at a time (default 1)")
    evaluate.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler: run on that cluster instead (extra 'dist')")
    evaluate.set_defaults(run=_eval)

    sanity = commands.add_parser(
        "sanity",
        help="model-randomisation sanity checks: how much each method's map changes when the weights do",
        description="Re-initialise the model's layers from the logits down (cascading), one at a time (independent), or "
        "add weight noise, and compare each method's maps with the original ones (Spearman, SSIM, HOG).",
    )
    _common(sanity, SANITY_METHODS)
    sanity.add_argument("--modes", type=_names, default=_names(SANITY_MODES), help=f"randomisations (default {SANITY_MODES})")
    sanity.add_argument("--steps", type=_positive, help="randomised models per mode, spread over the depth (default: one per layer)")
    sanity.set_defaults(run=_sanity)


def _require_packages(command: str) -> None:
    """PAIR's saliency and matplotlib are the optional `eval` extra: say so instead of a traceback."""
    from smugir.errors import MissingDependencyError

    missing = [name for name in ("saliency", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(f"smug {command} needs the optional packages {', '.join(missing)}: pip install 'smugir[eval]'")


def _setup(args: argparse.Namespace):
    """(model, samples, setting) of `smug sanity`."""
    from smugir.errors import InputError
    from smugir.evaluation.samples import load_samples
    from smugir.model import load_model
    from smugir.text import is_text_model

    model = load_model(args.model, args.output)
    if is_text_model(model):
        raise InputError(f"smug {args.command} randomises image classifiers; {args.model!r} takes token ids "
                         "(smug eval scores text models)")
    model, setting = _model_and_setting(args, model)
    samples = load_samples(args.dataset, model, setting.layout, args.pixels, args.scale, args.mean, args.std, args.limit)
    return model, samples, setting


def _eval(args: argparse.Namespace) -> int:
    _require_packages("eval")
    import tempfile

    from smugir.errors import InputError
    from smugir.evaluation.baselines import check_methods, unavailable
    from smugir.evaluation.comparison import OPTBOX
    from smugir.evaluation.metrics import MAX_THRESHOLDS
    from smugir.evaluation.report import display_name
    from smugir.evaluation.run import RECORDS, Plan, Reading, run_evaluation
    from smugir.evaluation.samples import load_photos
    from smugir.exporters.files import check_folder
    from smugir.model import load_model
    from smugir.text import is_text_model

    model = load_model(args.model, args.output)
    if is_text_model(model):
        return _eval_text(args)
    check_methods(args.methods, extra=(OPTBOX,))
    if args.report_only and not (args.out and (Path(args.out) / RECORDS).exists()):
        raise InputError(f"--report-only reads the records of an earlier run: {args.out or '(no --out)'!r} holds no {RECORDS}")
    if args.out and not (Path(args.out) / RECORDS).exists():  # else a rerun: it continues in the folder
        check_folder(args.out, EVAL_FILES, args.force)
    model, setting = _model_and_setting(args, model)
    photos = load_photos(args.dataset, model, setting.layout, args.pixels, args.scale, args.mean, args.std, args.limit,
                         args.label_from_name, 2 * args.figure_inputs)
    if args.correct_only and any(photo.label is None for photo in photos):
        raise InputError("keeping only the correctly classified inputs needs labels, and the dataset has none"
                         " (image folders: --label-from-name)")
    if args.truth:
        truth = _truth(args.truth, len(photos))
        photos = [replace(photo, truth=mask) for photo, mask in zip(photos, truth)]
    missing = unavailable(model, args.methods)
    for method, reason in missing.items():
        print(f"unavailable {display_name(method)}: {reason}")
    methods = [m for m in args.methods if m not in missing]
    plan = Plan(str(Path(args.model).resolve()), setting, Reading(args.scale, tuple(args.mean), tuple(args.std)),
                args.correct_only, MAX_THRESHOLDS, output=args.output)
    identity = {"model_sha256": model.sha256, "reading": [args.scale, list(args.mean), list(args.std), args.pixels]}
    codes = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out) if args.out else Path(scratch) / "eval"
        with _progress_bar() as progress:
            run_evaluation(plan, photos, methods, out, args.workers, args.scheduler, progress, identity,
                           replace_other=bool(args.force), compute=not args.report_only,
                           then=lambda report: codes.append(_eval_report(args, model, methods, out, report)))
    return codes[0]


def _eval_report(args: argparse.Namespace, model, methods: list[str], out: Path, report) -> int:
    """Print the table of a run and write the files derived from its records (OUT's lock held)."""
    from smugir.evaluation.comparison import summarize
    from smugir.evaluation.report import display_name, print_table, summary_table
    from smugir.evaluation.run import RECORDS, complete_inputs

    if report.recomputed:
        print(f"{report.recomputed} inputs recorded in {out / RECORDS} with other content (or a damaged line): computed again")
    if report.reused:
        print(f"{report.reused} method runs recorded by an earlier run in {out / RECORDS}, {report.computed} computed now")
    for error in report.errors:
        print(f"error {error['sample']} {display_name(error['method'])}: {error['error']}")
    if not report.records:
        print(f"nothing scored: the model misclassifies all {len(report.misclassified)} inputs" if report.misclassified
              else "nothing scored")
        return 1 if report.errors else 0
    complete = complete_inputs(report.records, methods)
    partial = len({r.sample for r in report.records}) - len(complete)
    report = replace(report, records=[r for r in report.records if r.sample in complete])
    if not complete:
        print(f"no input has a record of every method yet ({partial} have some)")
        return 1 if report.errors else 0
    rows = summarize(report.records, seed=args.seed)
    skipped = f", {len(report.misclassified)} misclassified skipped" if report.misclassified else ""
    unfinished = f", {partial} with some methods missing left out" if partial else ""
    title = f"{model.path.name}: {len(complete)} inputs{skipped}{unfinished} (LSC: lower is better)"
    print_table(summary_table(rows, title))
    if args.out:
        _write_eval(args, out, report, rows, title)
    return 1 if report.errors else 0


def _model_and_setting(args: argparse.Namespace, model):
    from smugir.errors import InputError
    from smugir.evaluation.baselines import PATH_STEPS, setting_for
    from smugir.evaluation.samples import black_and_white
    from smugir.units import input_layout

    if args.method == "smug_base":
        raise InputError("--method chooses the encoding behind 'smug' (smug or network); list smug_base in --methods instead")
    layout = input_layout(model.input_shape, args.layout, args.image_shape)
    low, high = black_and_white(args.mean, args.std, layout.channels)
    return model, setting_for(model, layout, low, high, seed=args.seed, smug=_smug_options(args), path_steps=args.path_steps or PATH_STEPS)


def _smug_options(args: argparse.Namespace) -> dict:
    return {
        "top_k": args.top_k, "rank": args.rank, "gamma": args.gamma, "formulation": args.formulation, "window": args.window,
        "segments": args.segments,
        "baseline": args.baseline, "method": args.method, "margin": args.margin, "ig_steps": args.ig_steps,
        "layout": args.layout, "image_shape": args.image_shape, "solver": args.solver, "timeout": args.timeout,
    }


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], Callable[[str, int, bool], None]]]:
    """Two rich bars with ETA: inputs, and method runs (what finished last in the description)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as progress:

        def start(photos: int, runs: int) -> Callable[[str, int, bool], None]:
            inputs = progress.add_task("inputs", total=photos)
            methods = progress.add_task("method runs", total=runs)

            def advance(what: str, count: int, photo_done: bool) -> None:
                progress.update(methods, advance=count, description=f"method runs (last: {what[:20]})")
                if photo_done:
                    progress.advance(inputs)

            return advance

        yield start


def _eval_text(args: argparse.Namespace) -> int:
    """The table for a text model: word scores, the text saliency metric, no boxes and no OptBox."""
    from rich.progress import track

    from smugir.datasets import read_dataset, select
    from smugir.errors import InputError
    from smugir.evaluation.comparison import summarize
    from smugir.evaluation.gallery import write_text_index
    from smugir.evaluation.plots import lsc_boxplot
    from smugir.evaluation.report import print_table, summary_table, write_csv
    from smugir.evaluation.sentences import TEXT_METHODS, compare_sentences
    from smugir.exporters.files import check_folder, staged_folder
    from smugir.model import load_model
    from smugir.text import Vocabulary

    if not args.vocab:
        raise InputError(f"{args.model!r} is a text model (integer token ids); pass --vocab VOCAB.txt")
    methods = list(TEXT_METHODS) if args.methods == _names(EVAL_METHODS) else args.methods
    if args.out:
        check_folder(args.out, TEXT_EVAL_FILES, args.force)
    model = load_model(args.model, args.output)
    items = select(read_dataset(args.dataset, model.input_shape, None), True, args.dataset, args.limit)
    smug = {"top_k": args.top_k, "rank": args.rank, "gamma": args.gamma, "formulation": args.formulation, "baseline": args.baseline, "ig_steps": args.ig_steps,
            "solver": args.solver, "timeout": args.timeout}
    vocabulary, scores = Vocabulary.load(args.vocab), {}
    records, skipped = compare_sentences(model, vocabulary, items, methods, smug, args.correct_only,
                                         progress=lambda items: track(items, description="scoring", transient=True), kept_scores=scores)
    if not records:
        print(f"nothing scored: the model misclassifies all {len(skipped)} sentences" if skipped else "nothing scored")
        return 0
    rows = summarize(records, seed=args.seed)
    scored = len({r.sample for r in records})
    extra = f", {len(skipped)} misclassified skipped" if skipped else ""
    title = f"{model.path.name}: {scored} sentences{extra} (LSC: lower is better; area = kept words)"
    print_table(summary_table(rows, title))
    if args.out:
        with staged_folder(args.out, TEXT_EVAL_FILES, args.force) as folder:
            written = [
                write_csv(folder / "records.csv", [r.to_row() for r in records]),
                write_csv(folder / "summary.csv", [r.to_json() for r in rows]),
                lsc_boxplot(records, folder / "lsc.png"),
                write_text_index(folder, records, scores, title, args.seed),
            ]
        print(f"wrote {', '.join(str(Path(args.out) / p.name) for p in written)}")
    return 0


def _truth(spec: str, count: int):
    """The first `count` ground-truth masks of `file.npz:key` (N, H, W), one per scored input."""
    from smugir.archives import read_npz
    from smugir.errors import InputError

    path, _, key = spec.rpartition(":")
    if not path.endswith(".npz") or not key:
        raise InputError(f"--truth needs file.npz:key, got {spec!r}")
    masks = read_npz(path, key)
    if len(masks) < count:
        raise InputError(f"--truth holds {len(masks)} masks for {count} inputs")
    return masks[:count]


def _write_eval(args: argparse.Namespace, out: Path, report, rows, title: str) -> None:
    """The derived files, rewritten from the records after every run (they are not the results)."""
    from smugir.evaluation.gallery import write_index
    from smugir.evaluation.plots import lsc_boxplot, map_grid
    from smugir.evaluation.report import write_csv
    from smugir.evaluation.run import figure_comparison

    written = [
        write_csv(out / "records.csv", [r.to_row() for r in report.records], force=True),
        write_csv(out / "summary.csv", [r.to_json() for r in rows], force=True),
        map_grid(figure_comparison(out, report), out / "maps.png", args.figure_inputs, force=True),
        lsc_boxplot(report.records, out / "lsc.png", force=True),
        write_index(out, report.records, title, seed=args.seed),
    ]
    print(f"wrote {', '.join(str(p) for p in written)}")


def _sanity(args: argparse.Namespace) -> int:
    _require_packages("sanity")
    from rich.progress import track

    from smugir.evaluation.baselines import check_methods
    from smugir.evaluation.randomize import parse_mode
    from smugir.evaluation.report import display_name, print_table, sanity_table
    from smugir.evaluation.sanity import sanity_check
    from smugir.exporters.files import check_folder

    check_methods(args.methods)
    for mode in args.modes:
        parse_mode(mode)
    if args.out:
        check_folder(args.out, SANITY_FILES, args.force)
    model, samples, setting = _setup(args)
    result = sanity_check(model, samples.inputs, samples.labels, args.methods, args.modes, setting, samples.ids, args.seed,
                          progress=lambda items: track(items, description="randomising", transient=True), max_steps=args.steps)
    for method, reason in result.unavailable.items():
        print(f"unavailable {display_name(method)}: {reason}")
    if not result.records:
        print("nothing measured")
        return 0
    title = (f"{model.path.name}: similarity of each map to the original one at the last step "
             f"({len(samples.ids)} inputs; 1 = unchanged, a model-blind method stays at 1)")
    print_table(sanity_table(result.records, title))
    if args.out:
        _write_sanity(args, result, title)
    return 0


def _write_sanity(args: argparse.Namespace, result, title: str) -> None:
    from smugir.evaluation.gallery import write_sanity_index
    from smugir.evaluation.plots import randomisation_curves
    from smugir.evaluation.report import write_csv
    from smugir.exporters.files import staged_folder

    with staged_folder(args.out, SANITY_FILES, args.force) as folder:
        written = [
            write_csv(folder / "sanity.csv", [r.to_json() for r in result.records]),
            randomisation_curves(result.records, folder / "sanity.png"),
            write_sanity_index(folder, result.records, title),
        ]
    print(f"wrote {', '.join(str(Path(args.out) / p.name) for p in written)}")
