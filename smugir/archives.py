""".npy and .npz files from anyone: headers first, then only the data that was asked for and fits.

An .npy header can declare 1e10 elements in a 100-byte file, an .npz member can inflate 4 MB into
4 GB (a zip bomb), and a pickle inside either would run code. So the header is read with numpy's
own reader (`read_magic`, `read_array_header_*`), an .npz member's uncompressed size comes from its
zip entry (`ZipInfo.file_size`, which bounds what zipfile will inflate), object dtypes are refused
without unpickling, and the size is checked against the file and the memory budget before one
data byte is read. `file.npz:key[index]` inflates the archive as a stream and keeps one entry.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from smugir.budget import elements, require
from smugir.errors import InputError, printable
from smugir.safefiles import file_size, open_regular

_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)
_CHUNK = 1 << 24


@dataclass(frozen=True)
class ArrayHeader:
    """What an .npy header declares: enough to choose an array and to know its size."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return elements(self.shape) * self.dtype.itemsize


def _name(path: str | os.PathLike) -> str:
    return printable(repr(os.fspath(path)))


def read_header(stream: BinaryIO, what: str) -> ArrayHeader:
    """The header at the stream's position; refuses object (pickled) dtypes by name."""
    try:
        version = np.lib.format.read_magic(stream)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, fortran_order, dtype = reader(stream)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise InputError(f"{what} is not a valid .npy array ({printable(exc) or type(exc).__name__})") from None
    if dtype.hasobject:
        raise InputError(f"{what} holds Python objects (dtype {dtype}); refused, reading them would mean unpickling")
    if elements(d for d in shape if d) * max(dtype.itemsize, 1) >= 1 << 63:  # numpy cannot even describe it
        raise InputError(f"{what} declares the impossible shape {list(shape)}")
    return ArrayHeader(tuple(int(d) for d in shape), dtype, bool(fortran_order))


def _read_data(stream: BinaryIO, header: ArrayHeader, what: str, available: int) -> np.ndarray:
    if header.nbytes > available:
        raise InputError(f"{what} declares {list(header.shape)} {header.dtype} ({header.nbytes} bytes) but holds only {available}")
    require(f"reading {what} {list(header.shape)} {header.dtype}", header.nbytes)
    data = _read_exactly(stream, header.nbytes, what)
    array = np.frombuffer(data, dtype=header.dtype)
    order = "F" if header.fortran_order else "C"
    return array.reshape(header.shape, order=order)


def _read_exactly(stream: BinaryIO, count: int, what: str) -> bytearray:
    buffer = bytearray(count)
    view, done = memoryview(buffer), 0
    while done < count:
        read = stream.readinto(view[done : done + _CHUNK])
        if not read:
            raise InputError(f"{what} ends after {done} of its {count} data bytes")
        done += read
    return buffer


def read_npy(path: str | os.PathLike, what: str = "array") -> np.ndarray:
    """An .npy file, its header and size checked first (object arrays refused)."""
    label = f"{what} {_name(path)}"
    with open_regular(path, what, InputError) as stream:
        header = read_header(stream, label)
        return _read_data(stream, header, label, file_size(stream) - stream.tell())


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}


def npz_headers(path: str | os.PathLike) -> dict[str, ArrayHeader]:
    """Every array's header, without inflating any data."""
    label = f"archive {_name(path)}"
    with open_regular(path, "archive", InputError) as stream:
        try:
            with zipfile.ZipFile(stream) as archive:
                headers = {}
                for key, info in _members(archive).items():
                    with archive.open(info) as member:
                        headers[key] = read_header(member, f"{label}: array {key!r}")
                return headers
        except _ZIP_ERRORS as exc:
            raise InputError(f"cannot read {label}: {printable(exc) or type(exc).__name__}") from None


def read_npz(path: str | os.PathLike, key: str, index: int | None = None) -> np.ndarray:
    """One array of an .npz (or one entry `index` of its first axis, inflating only up to it)."""
    label = f"archive {_name(path)}"
    with open_regular(path, "archive", InputError) as stream:
        try:
            with zipfile.ZipFile(stream) as archive:
                members = _members(archive)
                if key not in members:
                    raise InputError(f"{label} has no array {printable(repr(key))}; it has: {printable(', '.join(members)) or 'none'}")
                info = members[key]
                with archive.open(info) as member:
                    what = f"{label}: array {key!r}"
                    header = read_header(member, what)
                    available = info.file_size - member.tell()
                    if index is None:
                        return _read_data(member, header, what, available)
                    return _entry(member, header, what, available, index)
        except _ZIP_ERRORS as exc:
            raise InputError(f"cannot read {label}: {printable(exc) or type(exc).__name__}") from None


def _entry(member: BinaryIO, header: ArrayHeader, what: str, available: int, index: int) -> np.ndarray:
    """Entry `index` of the first axis: skip the entries before it (streamed), read one."""
    if not header.shape:
        raise InputError(f"{what} is a scalar; it has no entry [{index}]")
    count = header.shape[0]
    if not -count <= index < count:
        raise InputError(f"index {index} is out of range for {what} ({count} entries)")
    if header.fortran_order:
        return _read_data(member, header, what, available)[index]
    index %= count
    row = ArrayHeader(header.shape[1:], header.dtype, False)
    if header.nbytes > available:
        raise InputError(f"{what} declares {list(header.shape)} {header.dtype} ({header.nbytes} bytes) but holds only {available}")
    skip = index * row.nbytes
    while skip > 0:
        skipped = len(member.read(min(skip, _CHUNK)))
        if not skipped:
            raise InputError(f"{what} ends before entry [{index}]")
        skip -= skipped
    return _read_data(member, row, f"{what}[{index}]", row.nbytes)
