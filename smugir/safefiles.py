"""Opening untrusted input files: regular files only, their size known before anything is read.

A FIFO named `x.png` would block a plain `open()` forever, a device never ends, and a hard link
can name any file of the file system from inside an innocent-looking folder. Files are opened
without blocking, checked with `fstat` on the open descriptor (no race between check and read),
and refused by name when they are not what they claim to be.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from smugir.errors import SmugError, printable

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike, what: str, error: type[SmugError], single_link: bool = False) -> BinaryIO:
    """`path` opened for binary reading; `error` names it when missing, unreadable or not a regular
    file (or, with `single_link`, when other hard links to it exist)."""
    name = printable(repr(os.fspath(path)))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {name} does not exist") from None
    except OSError as exc:
        raise error(f"cannot open {what} {name}: {exc.strerror}") from None
    info = os.fstat(fd)
    kind = next((label for test, label in _KINDS if test(info.st_mode)), None if stat.S_ISREG(info.st_mode) else "not a regular file")
    if kind is None and single_link and info.st_nlink > 1:
        kind = f"a file with {info.st_nlink} hard links (a hard link can name any file of the file system)"
    if kind is not None:
        os.close(fd)
        raise error(f"{what} {name} is {kind}; refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size
