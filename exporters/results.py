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
import stat
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from smugir.errors import OutputError, printable
from smugir.exporters.files import output_error, utf8
from smugir.exporters.report import json_ready


MAX_LINE = 8 << 20  # bytes: a result line is a few kB (a long sentence's words: hundreds of kB)
MAX_SETTINGS = 16 << 20  # bytes of a settings.json / run.json
Keep = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def _everything(record: dict[str, Any]) -> dict[str, Any]:
    return record


class ResultsFile:
    """Append-only results.jsonl with the ids already finished.

    The file is read as a stream, line by line, each line within `MAX_LINE` bytes: a results file
    of any size costs one line of memory plus what `keep` returns for each record (the caller's
    projection; None drops the record, e.g. an id of another dataset), so a rerun on a huge or
    hostile file stays small. A line that is not a JSON object with an id is one OutputError line.
    """

    def __init__(self, path: str | os.PathLike, keep: Keep = _everything):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OutputError(f"cannot write {str(self.path)!r}: the folder {str(self.path.parent)!r} does not exist")
        self.keep = keep
        self.records: dict[str, dict[str, Any]] = {}  # what `keep` makes of the last line of every id
        if os.path.lexists(self.path):
            if not stat.S_ISREG(self.path.lstat().st_mode):
                raise OutputError(f"{str(self.path)!r} exists and is not a regular file")
            self._recover()

    def _recover(self) -> None:
        """Keep every complete line; cut a partial last line left by a crash."""
        name = printable(repr(str(self.path)))
        try:
            stream = open(self.path, "rb")
        except OSError as exc:
            raise OutputError(f"cannot read {name}: {exc.strerror}") from None
        with stream:
            complete, number = 0, 0
            while True:
                line = stream.readline(MAX_LINE + 1)
                if not line:
                    break
                number += 1
                if not line.endswith(b"\n"):
                    if len(line) > MAX_LINE:
                        raise OutputError(f"{name} line {number} is longer than {MAX_LINE >> 20} MiB; it is not a smugir results file")
                    break  # a partial last line (a crash while writing it): cut below
                record = parse_line(line, f"{name} line {number}")
                self._remember(record)
                complete += len(line)
        if complete < os.path.getsize(self.path):
            with open(self.path, "r+b") as stream:
                stream.truncate(complete)

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
        self._remember(json.loads(data))  # as a rerun will read it back

    def _remember(self, record: dict[str, Any]) -> None:
        kept = self.keep(record)
        if kept is None:
            self.records.pop(str(record["id"]), None)
        else:
            self.records[str(record["id"])] = kept


def parse_line(line: bytes, where: str) -> dict[str, Any]:
    """One results line: a JSON object with an id (a string or number), else one OutputError line."""
    record = _json(line, where, "a smugir results file")
    if not isinstance(record, dict) or not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool):
        raise OutputError(f"{where} has no id (each line is a JSON object with an id); it is not a smugir results file")
    return record


def _json(data: bytes, where: str, what: str) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise OutputError(f"{where} is not UTF-8 text; it is not {what}") from None
    except RecursionError:
        raise OutputError(f"{where} nests too deeply; it is not {what}") from None
    except ValueError:  # JSONDecodeError, and integers longer than Python converts
        raise OutputError(f"{where} is not JSON; it is not {what}") from None


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A small JSON file of a results folder (settings.json, run.json), within `MAX_SETTINGS`
    bytes; anything else (a folder, a FIFO, bad UTF-8, deep nesting) is one OutputError line."""
    from smugir.safefiles import file_size, open_regular

    name = printable(repr(str(path)))
    with open_regular(path, what, OutputError) as stream:
        if file_size(stream) > MAX_SETTINGS:
            raise OutputError(f"{name} is larger than {MAX_SETTINGS >> 20} MiB; it is not {what}")
        try:
            data = stream.read(MAX_SETTINGS + 1)
        except OSError as exc:
            raise OutputError(f"cannot read {name}: {exc.strerror}") from None
    return _json(data, name, what)


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


@dataclass(frozen=True)
class Layout:
    """What a resumable results folder holds: regular files (the results file first) and folders."""

    results: str
    files: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


def _remove(out: Path, names: list[str]) -> None:
    import shutil

    for name in names:
        if (out / name).is_dir() and not (out / name).is_symlink():
            shutil.rmtree(out / name, ignore_errors=True)
        else:
            (out / name).unlink(missing_ok=True)


def check_results_folder(out: Path, layout: Layout) -> None:
    """OUT is a folder or missing (not a dangling symlink, a loop, a file), and what a run writes
    there is not something else (a FIFO, a folder where a file goes, a file where a folder goes)."""
    if str(out) in ("", "."):
        pass
    elif os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"{printable(repr(str(out)))} exists and is not a folder (a file, or a symlink to nothing)")
    elif not out.parent.is_dir():
        raise OutputError(f"cannot create {printable(repr(str(out)))}: the folder {printable(repr(str(out.parent)))} does not exist")
    for name in (layout.results, *layout.files, LOCK):
        path = out / name
        if os.path.lexists(path) and not stat.S_ISREG(path.lstat().st_mode):
            raise OutputError(f"{printable(repr(str(path)))} exists and is not a regular file")
    for name in layout.folders:
        path = out / name
        if os.path.lexists(path) and not (path.is_dir() and not path.is_symlink()):
            raise OutputError(f"{printable(repr(str(path)))} exists and is not a folder")


@contextmanager
def results_folder(out: Path, layout: Layout, command: str) -> Iterator[None]:
    """OUT checked, created and locked for one run of `smug COMMAND`; a run that fails before its
    first result leaves nothing behind that it made (folders, files, the lock, OUT itself), so a
    failed or refused run does not change the folder."""
    check_results_folder(out, layout)
    created = not os.path.lexists(out)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise output_error(exc, out) from None
    try:
        with locked_folder(out, command) as lock:
            new = [name for name in (layout.results, *layout.files, *layout.folders) if not os.path.lexists(out / name)]
            try:
                for name in layout.folders:
                    try:
                        (out / name).mkdir(exist_ok=True)
                    except OSError as exc:
                        raise output_error(exc, out / name) from None
                yield
            except BaseException:
                results = out / layout.results
                if not results.exists() or results.stat().st_size == 0:  # failed before its first result: leave nothing
                    _remove(out, new)
                    if lock.created:
                        (out / LOCK).unlink(missing_ok=True)  # still locked: no one else can hold this file
                raise
    finally:
        if created:
            with suppress(OSError):
                out.rmdir()  # only when empty: a run that failed in a folder it made
