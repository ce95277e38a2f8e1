"""Writing result files all-or-nothing: a temporary file or folder beside the target, then a rename.

Every command writes its files into a staging folder beside `--out` (same file system, so the
final renames cannot run out of space) and publishes it as `--out` in one rename only when all of
them are written, so a folder never mixes the files of two runs. A full disk, a read-only folder or an odd file in the way (a folder, a FIFO) becomes one
`OutputError` line and leaves nothing behind, not even the staging folder. Files get the mode the
umask gives (0666 & ~umask), as `open` would, not mkstemp's 0600.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from smugir.errors import OutputError

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a folder",
    errno.ENOTDIR: "a part of the path is not a folder",
}


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError:
    """One line naming the path and the reason, for any OSError met while writing."""
    reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    if exc.errno is None and _SHORT_WRITE.search(str(exc)):  # numpy's tofile: "1024 requested and 992 written"
        reason = _REASONS[errno.ENOSPC] if _full(path) else f"a short write ({exc})"
    return OutputError(f"cannot write {str(path)!r}: {reason}")


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def _full(path: str | os.PathLike) -> bool:
    """Whether the file system of `path` has (next to) no room left: what a short write means there."""
    folder = Path(path).parent
    try:
        info = os.statvfs(folder)
    except OSError:
        return True  # a short write with no other explanation
    return info.f_bavail * info.f_frsize < (1 << 20)


NAME_MAX = 255  # bytes of one file name on Linux, macOS and Windows file systems
_TEMPORARY = len(".") + len(".XXXXXXXX.part")  # what `write_atomically`'s temporary adds to a name


def name_fits(name: str) -> bool:
    """Whether a file of this name (and its temporary) can be created on common file systems."""
    return len(os.fsencode(name)) + _TEMPORARY <= NAME_MAX


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from the umask."""
    return 0o666 & ~_umask()


def _check_not_special(path: Path) -> None:
    """A folder, FIFO, socket or device where a file goes is refused, even with --force."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise output_error(exc, path) from None
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{str(path)!r} is a folder, not a file")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise OutputError(f"{str(path)!r} exists and is not a regular file (a FIFO, socket or device); remove it or choose another path")


def check_target(path: str | os.PathLike, force: bool = False) -> Path:
    """The path to write, after checking its folder exists and it may be (over)written."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    _check_not_special(path)
    if os.path.lexists(path) and not force:
        raise OutputError(f"{str(path)!r} already exists; pass force=True (--force) to replace it")
    return path


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None], force: bool = False) -> Path:
    """Call `write` on a temporary file beside `path` and rename it into place when it succeeds."""
    path = check_target(path, force)
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fchmod(stream.fileno(), file_mode())
        os.replace(temporary, path)
    except OSError as exc:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise output_error(exc, path) from None
    except BaseException:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise
    return path


def utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`; what UTF-8 cannot hold (lone surrogates, e.g. undecodable bytes of a
    command-line argument) becomes U+FFFD instead of an error after other files were written."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogateescape" if _escaped_only(text) else "replace").decode("utf-8", errors="replace").encode("utf-8")


def _escaped_only(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def write_text(path: str | os.PathLike, text: str, force: bool = False) -> Path:
    data = utf8(text)
    return write_atomically(path, lambda stream: stream.write(data), force)


def check_folder(folder: str | os.PathLike, names: list[str], force: bool = False) -> Path:
    """Check `folder` can hold `names`: it exists or its parent does, and no name is in the way."""
    folder = Path(folder)
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputError(f"cannot create {str(folder)!r}: the folder {str(folder.parent)!r} does not exist")
        return folder
    if not folder.is_dir():
        raise OutputError(f"{str(folder)!r} exists and is not a folder")
    for name in names:
        path = folder / name
        _check_not_special(path)
        if os.path.lexists(path) and not force:
            raise OutputError(f"{str(path)!r} already exists; pass force=True (--force) to replace it")
    return folder


@contextmanager
def staged_folder(folder: str | os.PathLike, names: list[str], force: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside `folder`; when the block ends without error, publish it
    as `folder` in one step (`publish`). On any error the staging folder is removed and `folder`
    is as it was; an OSError becomes one OutputError line."""
    folder = Path(os.path.realpath(check_folder(folder, names, force)))  # a symlinked --out: its target is replaced
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    except OSError as exc:
        raise output_error(exc, folder) from None
    try:
        yield staging
        publish(staging, folder, names, force)
    except OSError as exc:
        raise output_error(exc, folder) from None
    except OutputError as exc:  # name the final path, not the staging folder
        raise OutputError(str(exc).replace(str(staging), str(folder))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


LOCK_WAIT = 60.0  # seconds another publisher may hold the lock (a publish takes milliseconds)


@contextmanager
def _publishing(parent: Path) -> Iterator[None]:
    """An exclusive flock on the parent folder itself (nothing is left behind): the publishers of
    one parent take turns, so two runs onto one --out never interleave their renames."""
    handle = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(f"another smug has been publishing into {str(parent)!r} for {LOCK_WAIT:g} s; run again") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(handle)


def publish(staging: Path, folder: Path, names: list[str], force: bool) -> None:
    """Make `folder` hold what `staging` holds, in one rename: the old folder is renamed aside (its
    entries that are not `names`, e.g. the user's own files, carried over first) and removed after.
    Under the parent's lock, so a folder only ever holds the files of one run."""
    with _publishing(folder.parent):
        if not os.path.lexists(folder):
            os.chmod(staging, 0o777 & ~_umask())
            staging.rename(folder)
            return
        check_folder(folder, sorted(p.name for p in staging.iterdir()), force)  # another run may have written since
        if _holds_cwd(folder):  # renaming the current folder away would strand this process: file by file
            _move_into(staging, folder)
            return
        carried = [entry for entry in os.listdir(folder) if entry not in set(names)]
        try:
            for entry in carried:
                os.rename(folder / entry, staging / entry)
            os.chmod(staging, stat.S_IMODE(folder.stat().st_mode))
            aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
            try:
                os.replace(folder, aside)  # onto the empty folder just made: one rename
                try:
                    staging.rename(folder)
                except OSError:
                    aside.rename(folder)
                    raise
            except OSError:
                if aside.is_dir() and not os.listdir(aside):  # the old folder is back in place
                    aside.rmdir()
                raise
        except OSError:
            for entry in carried:  # the user's files go back, whatever failed
                if os.path.lexists(staging / entry):
                    os.rename(staging / entry, folder / entry)
            raise
        shutil.rmtree(aside, ignore_errors=True)


def _holds_cwd(folder: Path) -> bool:
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except OSError:
        return False
    return cwd == folder or folder in cwd.parents


def _move_into(staging: Path, folder: Path) -> None:
    for name in sorted(p.name for p in staging.iterdir()):
        os.replace(staging / name, folder / name)
