"""Reading the input to explain: an image file, a .npy array, or one entry of an .npz archive.

Images are turned into the model's raw input the way the model was trained to see them:
value = (pixel * scale - mean) / std per channel, placed on the model's layout.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from smugir.archives import read_npy, read_npz
from smugir.errors import InputError, SmugError, printable
from smugir.safefiles import open_regular
from smugir.units import InputLayout

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # the only Pillow plugins tried: EPS would run gs
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
        array = read_npz(Path(match["path"]), match["key"], None if match["index"] is None else int(match["index"]))
    else:
        path = Path(spec)
        if not path.exists():
            raise InputError(f"input file {spec!r} does not exist (accepted: an image, a .npy file, or file.npz:key[index])")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            array = image_to_input(path, input_shape, layout, scale, mean, std)
        elif suffix == ".npy":
            array = read_npy(path, "input")
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
    with np.errstate(over="ignore", invalid="ignore"):  # out of float32's range: inf, refused just below
        array = array.astype(np.float32).reshape(input_shape)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what} contains NaN or infinite values")
    return array


def image_to_input(
    path: Path,
    input_shape: tuple[int, ...],
    layout: InputLayout,
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    pixels = read_image(path, layout)
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if chw.shape[0] != layout.channels:
        raise InputError(f"image {str(path)!r} has {chw.shape[0]} channels, the model takes {layout.channels}")
    return layout.from_image(normalise_pixels(chw, scale, mean, std), input_shape)


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read_image(path: Path, layout: InputLayout) -> np.ndarray:
    """Pixels (height, width[, channels]) as float64 in 8-bit units (0..255), for the model's grid.

    The header is read first (Pillow opens lazily): an image whose size is not the model's is
    refused before it is decoded, so a decompression bomb costs nothing. 16-bit greyscale keeps
    its precision (value * 255 / 65535); Pillow reads 16-bit colour PNGs at 8 bits per channel;
    palette, LA and RGBA images are converted (alpha dropped). Only IMAGE_FORMATS are tried, whatever
    the name says: Pillow would otherwise hand an EPS file to Ghostscript from PATH.
    """
    from PIL import Image, UnidentifiedImageError

    name = printable(repr(str(path)))
    with open_regular(path, "image", InputError) as stream, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream, formats=IMAGE_FORMATS) as image:
                if image.size != (layout.width, layout.height):
                    raise InputError(
                        f"image {name} is {image.size[0]}x{image.size[1]} (width x height) but the model takes "
                        f"{layout.width}x{layout.height}; resize it first"
                    )
                if image.mode in SIXTEEN_BIT_MODES:
                    grey = np.asarray(image).astype(np.float64) * (255 / 65535)
                    return grey if layout.channels == 1 else np.repeat(grey[:, :, None], layout.channels, axis=2)
                if image.mode in ("I", "F"):
                    raise InputError(f"image {name} has mode {image.mode} (32-bit values with no defined range); save it with 8 or 16 bits per channel")
                return np.asarray(image.convert("L" if layout.channels == 1 else "RGB"), dtype=np.float64)
        except SmugError:
            raise
        except UnidentifiedImageError:
            raise InputError(f"cannot read image {name}: not a {', '.join(IMAGE_FORMATS)} file") from None
        except Exception as exc:  # noqa: BLE001 (Pillow's decoders raise many types on hostile files: OSError, SyntaxError, struct.error, DecompressionBomb*)
            raise InputError(f"cannot read image {name}: {printable(exc) or type(exc).__name__}") from None


def normalise_pixels(chw: np.ndarray, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(pixel * scale - mean) / std per channel, for images as (..., channels, height, width)."""
    channels = chw.shape[-3]
    mean_a, std_a = per_channel(mean, channels, "mean"), per_channel(std, channels, "std")
    if np.any(std_a == 0):
        raise InputError("std must not contain 0")
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are refused by `check_input`
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
    return read_npy(path, "segments")


def slic_segments(x: np.ndarray, layout: InputLayout, count: int) -> np.ndarray:
    """SLIC superpixels (scikit-image) of the input shown as an image, about `count` of them."""
    from skimage.segmentation import slic

    if not 1 <= count <= layout.height * layout.width:
        raise InputError(f"slic needs 1 to {layout.height * layout.width} segments (one per pixel at most), got {count}")
    image = layout.to_image(np.asarray(x).reshape(-1)).astype(np.float64).transpose(1, 2, 0)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return slic(image, n_segments=count, compactness=10.0, start_label=0, channel_axis=-1, convert2lab=layout.channels == 3)
