"""The `smug` command: argument parsing and the mapping of errors to exit codes, nothing else.

Exit codes: 0 success, 2 bad input or unsupported model (one line on stderr, no traceback),
130 interrupted.
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
