"""Reading the input to explain: an image file, a .npy array, or one entry of an .npz archive.

Images are turned into the model's raw input the way the model was trained to see them:
value = (pixel * scale - mean) / std per channel, placed on the model's layout.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from smugir.errors import InputError
from smugir.units import InputLayout

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_NPZ_ENTRY = re.compile(r"^(?P<path>.+\.npz):(?P<key>[^\[\]]+)(?:\[(?P<index>-?\d+)\])?$")


def load_input(
    spec: str,
    input_shape: tuple[int, ...],
    layout: InputLayout,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    """The raw model input (float32, `input_shape`) described by `spec`."""
    match = _NPZ_ENTRY.match(spec)
    if match:
        array = _npz_entry(Path(match["path"]), match["key"], match["index"])
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"input file {spec!r} does not exist (accepted: an image, a .npy file, or file.npz:key[index])")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            array = image_to_input(path, input_shape, layout, scale, mean, std)
        elif suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise InputError(f"cannot read {spec!r} as a .npy array: {exc}") from None
        else:
            raise InputError(f"input {spec!r} has an unknown type; accepted: {', '.join(IMAGE_SUFFIXES)}, .npy, file.npz:key[index]")
    return check_input(array, input_shape, spec)


def check_input(array: np.ndarray, input_shape: tuple[int, ...], what: str = "input") -> np.ndarray:
    """float32 of `input_shape`: dims of size 1 may be missing or extra; a flat model input takes
    any array of its size (e.g. a 28x28 image for a 784-element input), read row-major."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{what} has dtype {array.dtype}; a real-valued array is needed")
    if array.size != int(np.prod(input_shape)):
        raise InputError(f"{what} has shape {list(array.shape)} ({array.size} values) but the model input is {list(input_shape)}")
    squeezed_in = [d for d in array.shape if d != 1]
    squeezed_model = [d for d in input_shape if d != 1]
    if squeezed_in != squeezed_model and len(squeezed_model) > 1:  # a flat model input takes any layout row-major
        raise InputError(f"{what} has shape {list(array.shape)} but the model input is {list(input_shape)}")
    array = array.astype(np.float32).reshape(input_shape)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what} contains NaN or infinite values")
    return array


def _npz_entry(path: Path, key: str, index: str | None) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"archive {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise InputError(f"archive {str(path)!r} has no array {key!r}; it has: {', '.join(archive.files)}")
            array = archive[key]
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read archive {str(path)!r}: {exc}") from None
    if index is None:
        return array
    i = int(index)
    if not -len(array) <= i < len(array):
        raise InputError(f"index {i} is out of range for {key!r} in {str(path)!r} ({len(array)} entries)")
    return array[i]


def image_to_input(
    path: Path,
    input_shape: tuple[int, ...],
    layout: InputLayout,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L" if layout.channels == 1 else "RGB"), dtype=np.float64)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {str(path)!r}: {exc}") from None
    if pixels.shape[:2] != (layout.height, layout.width):
        raise InputError(
            f"image {str(path)!r} is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but the model takes "
            f"{layout.width}x{layout.height}; resize it first"
        )
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if chw.shape[0] != layout.channels:
        raise InputError(f"image {str(path)!r} has {chw.shape[0]} channels, the model takes {layout.channels}")
    return layout.from_image(normalise_pixels(chw, scale, mean, std), input_shape)


def normalise_pixels(chw: np.ndarray, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(pixel * scale - mean) / std per channel, for images as (..., channels, height, width)."""
    channels = chw.shape[-3]
    mean_a, std_a = per_channel(mean, channels, "mean"), per_channel(std, channels, "std")
    if np.any(std_a == 0):
        raise InputError("std must not contain 0")
    return (chw * scale - mean_a[:, None, None]) / std_a[:, None, None]


def per_channel(values: float | tuple[float, ...] | np.ndarray, channels: int, name: str) -> np.ndarray:
    """One value per channel, from one value or one per channel."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size not in (1, channels):
        raise InputError(f"--{name} has {array.size} values but the model input has {channels} channels")
    return np.broadcast_to(array, (channels,)).copy()


def load_segments(spec: str, x: np.ndarray, layout: InputLayout) -> np.ndarray:
    """An integer label map (height, width): from a .npy file, or `slic:N` SLIC superpixels of x."""
    if spec.startswith("slic:"):
        try:
            count = int(spec[5:])
        except ValueError:
            raise InputError(f"--segments slic:N needs an integer N, got {spec!r}") from None
        return slic_segments(x, layout, count)
    path = Path(spec)
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise InputError(f"segments {spec!r} must be an existing .npy label map or slic:N")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read segments {spec!r}: {exc}") from None


def slic_segments(x: np.ndarray, layout: InputLayout, count: int) -> np.ndarray:
    """SLIC superpixels (scikit-image) of the input shown as an image, about `count` of them."""
    from skimage.segmentation import slic

    if count < 1:
        raise InputError(f"slic needs at least 1 segment, got {count}")
    image = layout.to_image(np.asarray(x).reshape(-1)).astype(np.float64).transpose(1, 2, 0)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return slic(image, n_segments=count, compactness=10.0, start_label=0, channel_axis=-1, convert2lab=layout.channels == 3)
