"""What a recorded result depends on, as digests: a result is reused only when they are equal.

A results folder keeps each input's result beside the sha256 of that input's content (the array
or sentence actually explained, or the image file's bytes), so a rerun with the same ids but other
content recomputes those inputs instead of showing the old results as the new ones. Digests are
computed per input, from what is read anyway (an image file is hashed as a stream).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from smugir.errors import InputError, SmugError
from smugir.safefiles import open_regular


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and values (C order)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{list(array.shape)}".encode("ascii"))
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file's bytes, read as a stream; None when it cannot be read (its input then
    fails on its own, and nothing recorded for it is reused)."""
    try:
        with open_regular(path, "input file", InputError) as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except (OSError, SmugError):
        return None


def input_digest(x: np.ndarray | str | None) -> str | None:
    """The digest of one input as read (None: it could not be read)."""
    if x is None:
        return None
    return text_digest(x) if isinstance(x, str) else array_digest(np.asarray(x))
