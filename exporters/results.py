"""A batch's results as JSON lines that survive crashes: one complete line per finished input.

Only the coordinating process writes, one `write` of a whole line followed by flush and fsync, so
a crash or Ctrl-C can at worst leave a partial last line; reopening the file drops it. A write that
fails (a full disk) is cut back at once and becomes one OutputError line. Ids whose
line says `"status": "error"` are not done: a rerun tries them again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from smugir.errors import OutputError
from smugir.exporters.files import output_error, utf8
from smugir.exporters.report import json_ready


class ResultsFile:
    """Append-only results.jsonl with the ids already finished."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OutputError(f"cannot write {str(self.path)!r}: the folder {str(self.path.parent)!r} does not exist")
        self.records: dict[str, dict[str, Any]] = {}  # the last line of every id (a retried error is replaced)
        if os.path.lexists(self.path):
            if not self.path.is_file():
                raise OutputError(f"{str(self.path)!r} exists and is not a regular file")
            self._recover()

    def _recover(self) -> None:
        """Keep every complete line; cut a partial last line left by a crash."""
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:keep].splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise OutputError(f"{str(self.path)!r} line {number} is not JSON; it is not a smugir results file") from None
            if not isinstance(record, dict) or "id" not in record:
                raise OutputError(f"{str(self.path)!r} line {number} has no id; it is not a smugir results file")
            self.records[str(record["id"])] = record
        if keep < len(data):
            with open(self.path, "r+b") as stream:
                stream.truncate(keep)

    @property
    def done(self) -> set[str]:
        return {i for i, r in self.records.items() if r.get("status") != "error"}

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(json_ready(record), separators=(",", ":"), allow_nan=False) + "\n"
        data = utf8(line)
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise output_error(exc, self.path) from None
        size = os.fstat(handle).st_size
        try:
            if os.write(handle, data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(handle)
        except OSError as exc:
            os.ftruncate(handle, size)
            raise output_error(exc, self.path) from None
        finally:
            os.close(handle)
        self.records[str(record["id"])] = record


LOCK = ".lock"


@dataclass(frozen=True)
class FolderLock:
    created: bool  # this run made the lock file


@contextmanager
def locked_folder(out: Path, command: str) -> Iterator[FolderLock]:
    """Hold an exclusive flock on OUT/.lock while `smug COMMAND` writes there; a second live run is
    refused. The kernel drops the lock when its holder dies, so the lock of a killed run is taken
    over without any cleanup."""
    path = out / LOCK
    created = not os.path.lexists(path)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise output_error(exc, path) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode("ascii", errors="replace").strip() or "?"
            raise OutputError(f"another smug {command} (pid {holder}) is writing to {str(out)!r}; wait for it or choose another --out") from None
        if not os.path.lexists(path) or os.stat(path).st_ino != os.fstat(handle).st_ino:
            raise OutputError(f"another smug {command} started on {str(out)!r} at the same moment; run again")
        with suppress(OSError):  # the pid only makes the message above friendlier
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield FolderLock(created)
    finally:
        os.close(handle)  # releases the lock
