"""The inputs an evaluation runs on, and what "black" and "white" mean for the model.

A dataset is read by `smugir.datasets.read_dataset` (an .npz of raw model inputs, a folder of
images). Datasets are often stored as pixels instead, e.g. CIFAR images in [0, 1], channels last,
for a model that wants normalised NCHW input; `pixels=True` reads such an .npz array like image
files: value = (pixel * scale - mean) / std per channel, placed on the model's layout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from smugir.datasets import archive_entry, index_ids, read_dataset, unique_ids
from smugir.errors import InputError
from smugir.evaluation.run import Photo
from smugir.inputs import IMAGE_SUFFIXES, normalise_pixels
from smugir.model import Model
from smugir.units import InputLayout


@dataclass(frozen=True)
class Samples:
    ids: list[str]
    inputs: np.ndarray  # (N, *model.input_shape) float32
    labels: np.ndarray | None  # (N,) int64, when the dataset has labels


def black_and_white(mean: tuple[float, ...], std: tuple[float, ...], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Black (0) and white (1, after scaling) in model-input units: (0 - mean) / std, (1 - mean) / std."""
    black_white = normalise_pixels(np.array([0.0, 1.0])[:, None, None, None] * np.ones((1, channels, 1, 1)), 1.0, mean, std)
    return black_white[0, :, 0, 0], black_white[1, :, 0, 0]


def load_samples(
    spec: str | os.PathLike,
    model: Model,
    layout: InputLayout,
    pixels: bool = False,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    limit: int | None = None,
) -> Samples:
    """The first `limit` inputs of `spec` (`file.npz[:key]` or a folder of images) as raw model inputs."""
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    if pixels:
        ids, inputs, labels = _pixel_archive(str(spec), model, layout, scale, mean, std)
    else:
        items = read_dataset(spec, model.input_shape, layout, scale, mean, std)
        broken = next((item for item in items if item.error), None)
        if broken is not None:
            raise InputError(f"input {broken.id}: {broken.error}")
        if any(isinstance(item.x, str) for item in items):
            raise InputError(f"dataset {str(spec)!r} holds sentences, but the model takes images")
        ids, inputs = [item.id for item in items], np.stack([item.x for item in items]) if items else np.zeros((0, *model.input_shape))
        known = [item.label for item in items if item.label is not None]
        labels = np.asarray(known, dtype=np.int64) if items and len(known) == len(items) else None
    if not len(ids):
        raise InputError(f"dataset {str(spec)!r} holds no inputs")
    end = len(ids) if limit is None else limit
    return Samples(ids[:end], np.asarray(inputs[:end], dtype=np.float32), None if labels is None else labels[:end])


def _pixel_archive(spec: str, model: Model, layout: InputLayout, scale: float, mean, std) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    path, _, key = spec.rpartition(":") if not spec.endswith(".npz") else (spec, "", "")
    if not path.endswith(".npz") or not Path(path).is_file():
        raise InputError(f"--pixels reads an existing file.npz[:key], got {spec!r}")
    shapes = ((layout.height, layout.width), (layout.height, layout.width, layout.channels))
    key, images, labels = archive_entry(Path(path), key or None, lambda array: array.shape[1:] in shapes, "images")
    images = np.asarray(images, dtype=np.float64)
    if images.shape[1:] not in shapes or not np.all(np.isfinite(images)):
        raise InputError(f"{Path(path).name}:{key} must hold finite images (N, {layout.height}, {layout.width}[, {layout.channels}]) "
                         f"for this model, got {list(images.shape)}")
    chw = images.reshape(len(images), layout.height, layout.width, -1).transpose(0, 3, 1, 2)
    values = normalise_pixels(chw, scale, mean, std)
    inputs = np.stack([layout.from_image(v, model.input_shape) for v in values]) if len(values) else np.zeros((0, *model.input_shape))
    return index_ids(len(images)), inputs, labels


_LEADING_NUMBER = re.compile(r"^(\d+)")


def load_photos(
    spec: str | os.PathLike,
    model: Model,
    layout: InputLayout,
    pixels: bool = False,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    limit: int | None = None,
    label_from_name: bool = False,
    figure_inputs: int = 0,
) -> list[Photo]:
    """The first `limit` inputs of `spec` as `smug eval` tasks, the first `figure_inputs` marked for
    maps.png. A folder of images is listed, not read: each worker reads its own image, so memory
    does not grow with the dataset. `label_from_name`: a file's label is the number its name starts with."""
    path = Path(str(spec))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not files:
            raise InputError(f"folder {str(spec)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        labels = [_label_of(p) if label_from_name else None for p in files]
        photos = [Photo(id, label, path=str(p.resolve())) for id, p, label in zip(unique_ids(files), files, labels)]
    else:
        if label_from_name:
            raise InputError("--label-from-name reads labels from image file names; the dataset is not a folder of images")
        samples = load_samples(spec, model, layout, pixels, scale, mean, std, limit)
        labels = [None] * len(samples.ids) if samples.labels is None else [int(v) for v in samples.labels]
        photos = [Photo(i, label, x=x) for i, label, x in zip(samples.ids, labels, samples.inputs)]
    return [replace(photo, figure=number < figure_inputs) for number, photo in enumerate(photos)]


def _label_of(path: Path) -> int:
    match = _LEADING_NUMBER.match(path.name)
    if match is None:
        raise InputError(f"--label-from-name: the file name {path.name!r} does not start with a number")
    return int(match[1])
