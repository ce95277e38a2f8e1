"""A batch's results as JSON lines that survive crashes: one complete line per finished input.

Only the coordinating process writes, one `write` of a whole line followed by flush and fsync, so
a crash or Ctrl-C can at worst leave a partial last line; reopening the file drops it. A write that
fails (a full disk) is cut back at once and becomes one OutputError line. Ids whose
line says `"status": "error"` are not done: a rerun tries them again.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

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
