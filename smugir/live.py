"""The live line of a running phase on stderr, updated in place: a solve's incumbent, bound and
gap (`SolveProgress`, smugir.solve), or Integrated Gradients' points and time left (`IGProgress`,
smugir.attribution).

Shown only when stderr is a terminal, and only once the phase has run for `AFTER` seconds, so
quick runs and redirected output stay clean.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from smugir.solve import SolveProgress

if TYPE_CHECKING:
    from smugir.attribution import IGProgress

AFTER = 1.0  # seconds before the line appears


def describe(progress: SolveProgress | None) -> str:
    """`incumbent 29  bound 27.5  gap 5.2 %` (or what is known so far)."""
    if progress is None:
        return "no mask yet"
    incumbent = "no mask yet" if progress.incumbent is None else f"incumbent {progress.incumbent:g}"
    bound = "" if progress.bound is None else f"  bound {progress.bound:.6g}"
    gap = "" if progress.gap is None else f"  gap {100 * progress.gap:.1f} %"
    return f"{incumbent}{bound}{gap}"


def describe_solve(progress: SolveProgress | None) -> str:
    """The solve's line: what `describe` says and the solver's name."""
    solver = f" ({progress.solver})" if progress is not None and progress.solver else ""
    return describe(progress) + solver


def describe_ig(progress: IGProgress | None) -> str:
    return "starting" if progress is None else progress.describe()


class _Line:
    def __init__(self, label: str, render: Callable[[Any], str]):
        self.label, self.render, self.start, self.latest = label, render, time.monotonic(), None
        self.lock = threading.Lock()

    def update(self, progress: Any) -> None:
        with self.lock:
            self.latest = progress

    def __rich__(self) -> Text:
        elapsed = time.monotonic() - self.start
        if elapsed < AFTER:
            return Text("")
        with self.lock:
            latest = self.latest
        return Text(f"{self.label} {elapsed:6.1f} s  {self.render(latest)}", style="cyan")


@contextmanager
def live_line(label: str = "solving", console: Console | None = None,
              render: Callable[[Any], str] = describe_solve) -> Iterator[Callable[[Any], None] | None]:
    """Yield an `on_progress` callback that drives the line, or None when stderr is no terminal;
    `render` turns the latest snapshot (None before the first) into the line's text."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    line = _Line(label, render)
    with Live(line, console=console, refresh_per_second=4, transient=True):
        yield line.update
