"""Many inputs at once: an .npz archive of images (and labels), a folder of images, or sentences.

Every item gets a stable id (the index in the archive, the file name, the line number), which
names its output files and lets a batch run skip what is already done.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from smugir.archives import ArrayHeader, npz_headers, read_npz
from smugir.budget import elements, require
from smugir.errors import InputError, printable
from smugir.inputs import IMAGE_SUFFIXES, check_input, image_to_input
from smugir.safefiles import read_text_file
from smugir.units import InputLayout

SENTENCE_SUFFIXES = (".txt", ".tsv")
_NPZ_KEY = re.compile(r"^(?P<path>.+\.npz)(?::(?P<key>[^\[\]:]+))?$")
_ID = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Item:
    """One input: `x` is the raw model input, or a sentence for text models.

    An input that cannot be read (a corrupt image, NaN values) keeps its place with `error` set,
    so a batch records it as one failed input instead of refusing the whole dataset.
    """

    id: str
    x: np.ndarray | str | None
    label: int | None  # the dataset's label when it has one
    error: str | None = None


def _item(id: str, read, label: int | None = None) -> Item:
    """Read one input; whatever goes wrong (a bomb, a truncated file) becomes this item's error."""
    try:
        return Item(id, read(), label)
    except InputError as exc:
        return Item(id, None, label, str(exc))
    except Exception as exc:  # noqa: BLE001 (one unreadable file is one error line, not a dead batch)
        return Item(id, None, label, f"cannot read input {id!r}: {type(exc).__name__}: {exc}")


def _regular_image(path: Path, read: Callable[[], np.ndarray]) -> np.ndarray:
    """Refuse FIFOs, devices and folders named like images before opening them (a FIFO would hang)."""
    import stat

    if not stat.S_ISREG(path.stat().st_mode):
        raise InputError(f"{str(path)!r} is not a regular file")
    return read()


def read_dataset(
    spec: str | os.PathLike,
    input_shape: tuple[int, ...],
    layout: InputLayout | None,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> list[Item]:
    """`file.npz[:key]`, a folder of images, or a .txt/.tsv of sentences (`label<TAB>sentence` in .tsv)."""
    text = str(spec)
    match = _NPZ_KEY.match(text)
    if match:
        return _npz_items(Path(match["path"]), match["key"], input_shape)
    path = Path(text)
    if path.is_dir():
        if layout is None:
            raise InputError(f"{text!r} is a folder of images but the model does not take images")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {text!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        ids = unique_ids(files)
        return [
            _item(id, lambda p=p: _regular_image(p, lambda: image_to_input(p, input_shape, layout, scale, mean, std)))
            for id, p in zip(ids, files)
        ]
    if path.suffix.lower() in SENTENCE_SUFFIXES:
        return list(_sentences(path))
    raise InputError(f"dataset {text!r} is not an .npz archive, a folder of images, or a .txt/.tsv of sentences")


def select(items: list[Item], text_model: bool, spec: str | os.PathLike, limit: int | None = None) -> list[Item]:
    """The first `limit` items, after checking that they are what the model takes."""
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    sentences = any(isinstance(item.x, str) for item in items)
    if text_model and not sentences:
        raise InputError(f"the model is a text model but {str(spec)!r} holds no sentences (use a .txt or .tsv file)")
    if sentences and not text_model:
        raise InputError(f"{str(spec)!r} holds sentences but the model takes images or arrays")
    return items[:limit]


def archive_entry(path: Path, key: str | None, fits: Callable[[ArrayHeader], bool], what: str = "inputs",
                  copy_bytes: int = 0) -> tuple[str, np.ndarray, np.ndarray | None]:
    """(key, array, labels) of an .npz: the array named `key`, or else the only one whose header
    `fits`; the integer `labels` array when there is one, checked against the array's length.
    Headers are read first, so only these two arrays are ever inflated, within the memory budget
    (with `copy_bytes` more per entry for what the caller makes of each)."""
    if not path.exists():
        raise InputError(f"archive {str(path)!r} does not exist")
    headers = npz_headers(path)
    if key is None:
        candidates = [name for name, header in headers.items() if fits(header)]
        if len(candidates) != 1:
            raise InputError(
                f"archive {str(path)!r}: cannot tell which array holds the {what} ({', '.join(headers) or 'none'}); "
                f"name it as {path.name}:KEY"
            )
        key = candidates[0]
    if key not in headers:
        raise InputError(f"archive {str(path)!r} has no array {key!r}; it has: {', '.join(headers)}")
    header = headers[key]
    if header.ndim >= 1:
        require(f"the {header.shape[0]} {what} of {str(path)!r} (the array and its copies)", header.nbytes + copy_bytes * header.shape[0])
    array = read_npz(path, key)
    if array.ndim < 1:
        raise InputError(f"archive {str(path)!r}: {key!r} is a scalar, not an array of {what}")
    labels = read_npz(path, "labels") if "labels" in headers and key != "labels" else None
    if labels is not None and (labels.shape != (len(array),) or not np.issubdtype(labels.dtype, np.integer)):
        raise InputError(f"archive {str(path)!r}: 'labels' must be {len(array)} integers, got {labels.dtype} {list(labels.shape)}")
    return key, array, None if labels is None else labels.astype(np.int64)


def index_ids(count: int) -> list[str]:
    """'00', '01', ...: zero-padded so that ids sort like the inputs."""
    width = len(str(max(count - 1, 0)))
    return [f"{i:0{width}d}" for i in range(count)]


def _npz_items(path: Path, key: str | None, input_shape: tuple[int, ...]) -> list[Item]:
    size = int(np.prod(input_shape))

    def fits(header: ArrayHeader) -> bool:
        return np.issubdtype(header.dtype, np.number) and header.ndim >= 1 and elements(header.shape[1:]) == size

    key, images, labels = archive_entry(path, key, fits, copy_bytes=4 * size)  # each input becomes float32
    return [
        _item(id, lambda i=i: check_input(images[i], input_shape, f"{path.name}:{key}[{i}]"), None if labels is None else int(labels[i]))
        for i, id in enumerate(index_ids(len(images)))
    ]


def _sentences(path: Path) -> Iterator[Item]:
    lines = read_text_file(path, "sentence file", errors="replace").splitlines()
    ids = index_ids(len(lines))
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        label = None
        if path.suffix.lower() == ".tsv":
            head, _, line = line.partition("\t")
            try:
                label = int(head)
            except ValueError:
                raise InputError(f"{path.name} line {number + 1}: expected 'label<TAB>sentence', got {head!r} as the label") from None
        yield Item(ids[number], line.strip(), label)


MAX_ID = 100  # characters: an id names files (`{id}_saliency.npy`, hidden temporaries) within NAME_MAX (255 bytes)


def clean_id(stem: str) -> str:
    """File names become ids usable as file names and CSV fields; a long one is cut and made
    unique again by a digest of the whole name, so that no file it names is too long."""
    cleaned = _ID.sub("_", stem) or "input"
    if len(cleaned) <= MAX_ID:
        return cleaned
    digest = hashlib.sha256(stem.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
    return f"{cleaned[: MAX_ID - 13]}~{digest}"


def unique_ids(files: list[Path]) -> list[str]:
    """The ids of image files, refused (one line naming both files) when two names clean to one id:
    their results would overwrite each other."""
    ids = [clean_id(p.stem) for p in files]
    check_unique(ids, [p.name for p in files])
    return ids


def check_unique(ids: list[str], sources: list[str] | None = None) -> None:
    """Every id once: ids name the result lines and the files of each input."""
    seen: dict[str, int] = {}
    for number, id in enumerate(ids):
        if id in seen:
            if sources is None:
                raise InputError(f"input id {id!r} appears twice in the dataset; ids name the result lines and mask files")
            raise InputError(f"the files {printable(repr(sources[seen[id]]))} and {printable(repr(sources[number]))} both become the "
                             f"input id {id!r} (ids name the result lines and files); rename one of them")
        seen[id] = number
