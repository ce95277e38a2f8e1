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
    try:  # stat first: a socket cannot even be opened, but it can be named
        _check_kind(os.stat(path), name, what, error, single_link)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {name} does not exist") from None
    except OSError as exc:
        raise error(f"cannot open {what} {name}: {exc.strerror}") from None
    try:
        _check_kind(os.fstat(fd), name, what, error, single_link)  # the file opened, not one swapped in since
    except SmugError:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_kind(info: os.stat_result, name: str, what: str, error: type[SmugError], single_link: bool) -> None:
    kind = next((label for test, label in _KINDS if test(info.st_mode)), None if stat.S_ISREG(info.st_mode) else "not a regular file")
    if kind is None and single_link and info.st_nlink > 1:
        kind = f"a file with {info.st_nlink} hard links (a hard link can name any file of the file system)"
    if kind is not None:
        raise error(f"{what} {name} is {kind}; refused")


def file_size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size


TEXT_FACTOR = 10  # a Python str per line and a dict entry per token: about ten times the file


def read_text_file(path: str | os.PathLike, what: str, errors: str = "strict") -> str:
    """A UTF-8 text file (vocabulary, sentences) within the memory budget; with errors="strict",
    bytes that are not UTF-8 are one named error, not a UnicodeDecodeError."""
    from smugir.budget import require
    from smugir.errors import InputError

    with open_regular(path, what, InputError) as stream:
        require(f"reading the {what} {printable(repr(os.fspath(path)))}", TEXT_FACTOR * file_size(stream))
        data = stream.read()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{what} {printable(repr(os.fspath(path)))} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
