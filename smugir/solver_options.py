"""The solver options every solving command shares (explain, batch, export, export-benchmarks, eval)."""

from __future__ import annotations

import argparse

from smugir.solve import BACKENDS, DEFAULT_SOLVER, DEFAULT_TIMEOUT, MAX_TIMEOUT

NO_LIMIT = ("0", "none")


def parse_timeout(text: str) -> float | None:
    """Seconds > 0, or `0` / `none` for no limit (None)."""
    if text.strip().lower() in NO_LIMIT:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, 0 or none, got {text!r}") from None
    if not 0 < seconds <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, {MAX_TIMEOUT:g}], 0 or none, got {text!r}")
    return seconds


def add_solver_options(command: argparse.ArgumentParser, per: str = "") -> None:
    """--solver and --timeout, with one default budget everywhere."""
    names = ", ".join(BACKENDS)
    command.add_argument("--solver", default=DEFAULT_SOLVER, help=f"{names} or pysmt:NAME (default {DEFAULT_SOLVER})")
    command.add_argument(
        "--timeout", type=parse_timeout, default=DEFAULT_TIMEOUT,
        help=f"solver seconds{per} (default {DEFAULT_TIMEOUT:g}; 0 or none: no limit); the best mask so far is kept with its bound and gap",
    )
