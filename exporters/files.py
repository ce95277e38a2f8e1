"""Writing result files all-or-nothing: a temporary file in the target folder, then a rename.

An interrupted or failed export never leaves a half-written file under the final name, and an
existing file is replaced only when the caller says so (`force`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from smugir.errors import OutputError


def check_target(path: str | os.PathLike, force: bool = False) -> Path:
    """The path to write, after checking its folder exists and it may be (over)written."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    if path.exists() and not force:
        raise OutputError(f"{str(path)!r} already exists; pass force=True (--force) to replace it")
    if path.is_dir():
        raise OutputError(f"{str(path)!r} is a folder, not a file")
    return path


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None], force: bool = False) -> Path:
    """Call `write` on a temporary file beside `path` and rename it into place when it succeeds."""
    path = check_target(path, force)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str, force: bool = False) -> Path:
    return write_atomically(path, lambda stream: stream.write(text.encode("utf-8")), force)


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
        if path.exists() and not force:
            raise OutputError(f"{str(path)!r} already exists; pass force=True (--force) to replace it")
    return folder


def prepare_folder(folder: str | os.PathLike, names: list[str], force: bool = False) -> Path:
    """`check_folder`, then create the folder if it is missing."""
    folder = check_folder(folder, names, force)
    folder.mkdir(exist_ok=True)
    return folder
