"""Writing result files all-or-nothing: a temporary file or folder beside the target, then a rename.

Every command writes its files into a staging folder beside `--out` (same file system, so the
final renames cannot run out of space) and moves them into place only when all of them are
written. A full disk, a read-only folder or an odd file in the way (a folder, a FIFO) becomes one
`OutputError` line and leaves nothing behind, not even the staging folder. Files get the mode the
umask gives (0666 & ~umask), as `open` would, not mkstemp's 0600.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
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
    return OutputError(f"cannot write {str(path)!r}: {reason}")


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
    """Yield an empty staging folder beside `folder`; when the block ends without error, move what it
    holds into `folder` (created if missing). On any error the staging folder is removed and
    `folder` is as it was; an OSError becomes one OutputError line."""
    folder = check_folder(folder, names, force)
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    except OSError as exc:
        raise output_error(exc, folder) from None
    try:
        yield staging
        _move_into(staging, folder, force)
    except OSError as exc:
        raise output_error(exc, folder) from None
    except OutputError as exc:  # name the final path, not the staging folder
        raise OutputError(str(exc).replace(str(staging), str(folder))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(staging: Path, folder: Path, force: bool) -> None:
    """Rename the staged files into `folder`, checking again for clashes (another run may have written)."""
    names = sorted(p.name for p in staging.iterdir())
    if not folder.exists():
        os.chmod(staging, 0o777 & ~_umask())
        staging.rename(folder)
        return
    check_folder(folder, names, force)
    for name in names:
        os.replace(staging / name, folder / name)
