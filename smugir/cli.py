"""The `smug` command: argument parsing and the mapping of errors to exit codes, nothing else.

Exit codes: 0 success; 1 a result that did not verify (e.g. a mask failing its constraints in
float32); 2 bad input or unsupported model (one line on stderr, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from smugir.errors import SmugError


def _inspect(args: argparse.Namespace) -> int:
    from smugir.inspection import format_summary, inspect_model

    summary = inspect_model(args.model)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from smugir.explain import explain
    from smugir.exporters.files import check_folder
    from smugir.exporters.report import FILES, to_json_text, write_explanation
    from smugir.inputs import load_input, load_segments
    from smugir.model import load_model
    from smugir.text import is_text_model
    from smugir.units import input_layout

    if args.out:
        check_folder(args.out, list(FILES), args.force)  # fail before the work, not after it
    model = load_model(args.model)
    if is_text_model(model):
        return _explain_text(args, model)
    layout = input_layout(model.input_shape, args.layout, args.image_shape)
    x = load_input(args.input, model.input_shape, layout, args.scale, args.mean, args.std)
    segments = load_segments(args.segments, x, layout) if args.segments else None
    result = explain(
        model,
        x,
        label=args.label,
        top_k=args.top_k,
        gamma=args.gamma,
        window=args.window,
        segments=segments,
        baseline=args.baseline,
        solver=args.solver,
        timeout=args.timeout,
        solutions=args.solutions,
        method=args.method,
        ig_steps=args.ig_steps,
        layout=args.layout,
        image_shape=args.image_shape,
        margin=args.margin,
        rank=args.rank,
    )
    written = write_explanation(result, args.out, force=args.force) if args.out else {}
    if args.json:
        print(to_json_text(result.to_json()), end="")
    else:
        print(result.summary())
        if written:
            print(f"wrote       {', '.join(str(p) for p in written.values())}")
    return 0 if result.best.verified else 1


def _explain_text(args: argparse.Namespace, model) -> int:
    from rich.console import Console

    from smugir.errors import InputError
    from smugir.exporters.files import prepare_folder, write_text
    from smugir.exporters.report import to_json_text
    from smugir.exporters.text import highlighted_html, highlighted_markup
    from smugir.text import Vocabulary, explain_sentence

    if not args.vocab:
        raise InputError(f"{args.model!r} is a text model (integer token ids); pass --vocab VOCAB.txt and a sentence as INPUT")
    result = explain_sentence(
        model, args.input, Vocabulary.load(args.vocab), baseline=args.baseline,
        label=args.label, top_k=args.top_k, gamma=args.gamma, solver=args.solver, timeout=args.timeout,
        solutions=args.solutions, method=args.method, ig_steps=args.ig_steps, rank=args.rank,
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


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _image_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 28x28, got {text!r}") from None
    return height, width


def _add_explain(commands) -> None:
    from smugir.explain import METHODS, RANKINGS
    from smugir.solve import DEFAULT_SOLVER
    from smugir.units import LAYOUTS

    explain = commands.add_parser(
        "explain",
        help="find a provably minimal mask that keeps the important first-layer neurons active",
        description="Explain MODEL's prediction on INPUT with a minimal mask (SMUG).",
    )
    explain.add_argument("model", help="path to an .onnx classifier")
    explain.add_argument("input", help="an image (.png/.jpg/...), a .npy array, file.npz:key[index], or a sentence (text models)")
    explain.add_argument("--vocab", help="text models: the vocabulary file (one token per line, line number = id)")
    explain.add_argument("--label", type=int, help="class to explain (default: the predicted class)")
    explain.add_argument("--top-k", type=int, default=32, help="first-layer neurons to keep active (default 32)")
    explain.add_argument("--rank", choices=RANKINGS, default="ig", help="choose neurons by Integrated Gradients (default) or by raw activation")
    explain.add_argument("--gamma", type=float, default=0.5, help="keep each neuron above gamma x its value, 0 <= gamma < 1 (default 0.5)")
    explain.add_argument("--window", type=int, help="mask unit: WxW windows of pixels (default: single pixels)")
    explain.add_argument("--segments", help="mask unit: segments from an integer label map (.npy, HxW) or slic:N superpixels")
    explain.add_argument("--baseline", default="zero", help="what masked units become: zero, mean, blur[:SIGMA] or a number; text: zero or pad (default zero)")
    explain.add_argument("--method", choices=METHODS, default="smug", help="smug (minimal mask), smug_base (no minimisation), network (whole ReLU MLP)")
    explain.add_argument("--margin", type=float, default=0.0, help="network method: the label's logit must beat the others by this much")
    explain.add_argument("--solver", default=DEFAULT_SOLVER, help=f"highs, z3, z3-optimize or pysmt:NAME (default {DEFAULT_SOLVER})")
    explain.add_argument("--timeout", type=float, help="seconds for the solver; the best mask so far is kept")
    explain.add_argument("--solutions", type=int, default=1, help="find N distinct minimal masks (default 1)")
    explain.add_argument("--ig-steps", type=int, help="fixed Integrated Gradients steps (default: adaptive until 1%% completeness error)")
    explain.add_argument("--scale", type=float, default=1 / 255, help="image files: multiply pixel values (0-255) by this (default 1/255)")
    explain.add_argument("--mean", type=_floats, default=(0.0,), help="image files: subtract per-channel mean after scaling, e.g. 0.4914,0.4822,0.4465")
    explain.add_argument("--std", type=_floats, default=(1.0,), help="image files: divide by per-channel std after the mean")
    explain.add_argument("--layout", choices=LAYOUTS, default="auto", help="how the model input holds the image (default auto)")
    explain.add_argument("--image-shape", type=_image_shape, help="HxW of a flat input (default: square)")
    explain.add_argument("--out", help="folder for report.json, mask.npy, saliency.npy and PNG pictures")
    explain.add_argument("--force", action="store_true", help="replace files already in --out")
    explain.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    explain.set_defaults(run=_explain)


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
