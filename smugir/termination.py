"""SIGTERM unwinds a `smug` command like Ctrl-C: staging folders are removed, locks released, workers
and solver processes ended, and the command says it was terminated (exit 143) instead of vanishing."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_CODE = 128 + signal.SIGTERM  # what a shell shows for a process killed by SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM; a KeyboardInterrupt, so every cleanup for Ctrl-C runs."""


def _raise(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While it lasts (main thread only), SIGTERM raises Terminated; the previous handler after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
