"""The live line of a running solve: incumbent, bound and gap on stderr, updated in place.

Shown only when stderr is a terminal, and only once a solve has run for `AFTER` seconds, so quick
solves and redirected output stay clean. It renders `SolveProgress` snapshots (smugir.solve).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from smugir.solve import OnProgress, SolveProgress

AFTER = 1.0  # seconds before the line appears


def describe(progress: SolveProgress | None) -> str:
    """`incumbent 29  bound 27.5  gap 5.2 %` (or what is known so far)."""
    if progress is None:
        return "no mask yet"
    incumbent = "no mask yet" if progress.incumbent is None else f"incumbent {progress.incumbent:g}"
    bound = "" if progress.bound is None else f"  bound {progress.bound:.6g}"
    gap = "" if progress.gap is None else f"  gap {100 * progress.gap:.1f} %"
    return f"{incumbent}{bound}{gap}"


class _Line:
    def __init__(self, label: str):
        self.label, self.start, self.latest = label, time.monotonic(), None
        self.lock = threading.Lock()

    def update(self, progress: SolveProgress) -> None:
        with self.lock:
            self.latest = progress

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.start
        if elapsed < AFTER:
            return Text("")
        with self.lock:
            latest = self.latest
        solver = f" ({latest.solver})" if latest is not None and latest.solver else ""
        return Text(f"{self.label} {elapsed:6.1f} s  {describe(latest)}{solver}", style="cyan")


@contextmanager
def live_line(label: str = "solving", console: Console | None = None) -> Iterator[OnProgress | None]:
    """Yield an `on_progress` callback that drives the line, or None when stderr is no terminal."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    line = _Line(label)
    with Live(line, console=console, refresh_per_second=4, transient=True):
        yield line.update
