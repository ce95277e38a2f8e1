"""Mask units: which raw input elements one 0/1 mask variable switches together.

A unit is a pixel (all channels of one position), a w x w window of pixels (the original method's
grid; edge windows may be smaller), a segment of a user-given integer label map (e.g. SLIC
superpixels), or a word (text models). Units live on the image grid of an `InputLayout`, which
says where each raw input element sits: (channel, row, column).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

import numpy as np

from smugir.errors import InputError

UNIT_KINDS = ("pixel", "window", "segment", "word")


@dataclass(frozen=True)
class InputLayout:
    """Where each raw input element sits on the image grid: coords[e] = (channel, row, column)."""

    channels: int
    height: int
    width: int
    coords: np.ndarray  # (n_inputs, 3) int64
    name: str  # e.g. "NCHW", "NHWC", "flat 28x28"

    @property
    def n_inputs(self) -> int:
        return int(self.coords.shape[0])

    def to_image(self, values: np.ndarray) -> np.ndarray:
        """Raw-input-shaped values -> (channels, height, width) array."""
        image = np.zeros((self.channels, self.height, self.width), dtype=np.asarray(values).dtype)
        image[self.coords[:, 0], self.coords[:, 1], self.coords[:, 2]] = np.asarray(values).reshape(-1)
        return image

    def from_image(self, image: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """(channels, height, width) or (height, width) array -> raw input of `input_shape`."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.broadcast_to(image, (self.channels, *image.shape))
        return image[self.coords[:, 0], self.coords[:, 1], self.coords[:, 2]].reshape(input_shape)


LAYOUTS = ("auto", "NCHW", "NHWC", "CHW", "HWC", "HW", "flat")


def input_layout(input_shape: tuple[int, ...], layout: str = "auto", image_shape: tuple[int, int] | None = None) -> InputLayout:
    """The image grid of a model input.

    `auto` reads a rank-4 shape as NCHW unless its last dim looks like channels (1, 3 or 4) and its
    second does not, a rank-3 sample likewise as CHW/HWC, and a flat input of n elements as a square
    single-channel image when n is a square (`image_shape=(h, w)` overrides), else as one row.
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    sample = tuple(input_shape[1:]) if len(input_shape) >= 3 and input_shape[0] == 1 else tuple(input_shape)
    n = int(np.prod(sample))
    if layout == "auto":
        layout = _guess_layout(sample, image_shape)
    if layout in ("NCHW", "CHW", "NHWC", "HWC"):
        if len(sample) != 3:
            raise InputError(f"layout {layout} needs a 3-D sample (plus batch), but the model input is {list(input_shape)}")
        channels_first = layout in ("NCHW", "CHW")
        c, h, w = sample if channels_first else (sample[2], sample[0], sample[1])
        grid = np.indices((c, h, w)).reshape(3, -1).T if channels_first else np.indices((h, w, c)).reshape(3, -1).T[:, [2, 0, 1]]
        return InputLayout(c, h, w, grid.astype(np.int64), "NCHW" if channels_first else "NHWC")
    if layout == "HW":
        squeezed = tuple(s for s in sample if s != 1) or (1,)
        if len(squeezed) != 2:
            raise InputError(f"layout HW needs a 2-D sample, but the model input is {list(input_shape)}")
        h, w = squeezed
    else:
        h, w = image_shape if image_shape else ((isqrt(n), isqrt(n)) if isqrt(n) ** 2 == n else (1, n))
        if h * w != n:
            raise InputError(f"image shape {h}x{w} does not hold the model input's {n} elements")
    rows, cols = np.divmod(np.arange(n), w)
    coords = np.stack([np.zeros(n, dtype=np.int64), rows, cols], axis=1)
    return InputLayout(1, h, w, coords, f"flat {h}x{w}")


def _guess_layout(sample: tuple[int, ...], image_shape: tuple[int, int] | None) -> str:
    if image_shape is None and len(sample) == 3:
        if sample[-1] in (1, 3, 4) and sample[0] not in (1, 3, 4):
            return "HWC"
        if sample[0] <= 4 or sample[-1] > 4:
            return "CHW"
        return "HWC"
    squeezed = [s for s in sample if s != 1]
    if image_shape is None and len(squeezed) == 2 and len(sample) <= 3:
        return "HW"
    return "flat"


@dataclass(frozen=True)
class MaskUnits:
    """unit_of[e] is the mask unit of raw input element e, or -1 when e is never masked (padding)."""

    kind: str
    unit_of: np.ndarray  # (n_inputs,) int64
    n_units: int
    grid: np.ndarray  # (height, width) int64: the unit of each pixel (-1 where none), for pictures
    description: str

    def expand(self, unit_mask: np.ndarray) -> np.ndarray:
        """Per-unit 0/1 (n_units,) -> per-element bool (n_inputs,); non-units count as kept."""
        unit_mask = np.asarray(unit_mask, dtype=bool)
        kept = np.ones(self.unit_of.shape, dtype=bool)
        inside = self.unit_of >= 0
        kept[inside] = unit_mask[self.unit_of[inside]]
        return kept

    def masked_input(self, x: np.ndarray, baseline: np.ndarray, unit_mask: np.ndarray) -> np.ndarray:
        """x where the unit is kept, the baseline where it is masked out (shapes of x)."""
        kept = self.expand(unit_mask).reshape(np.shape(x))
        return np.where(kept, x, baseline)


def pixel_units(layout: InputLayout) -> MaskUnits:
    grid = np.arange(layout.height * layout.width, dtype=np.int64).reshape(layout.height, layout.width)
    return _on_grid("pixel", layout, grid, f"pixels ({layout.height}x{layout.width})")


def window_units(layout: InputLayout, window: int) -> MaskUnits:
    if int(window) < 1:
        raise InputError(f"window must be >= 1, got {window}")
    rows = -(-layout.height // window)
    cols = -(-layout.width // window)
    r, c = np.indices((layout.height, layout.width))
    grid = (r // window) * cols + (c // window)
    return _on_grid("window", layout, grid, f"{window}x{window} windows ({rows}x{cols} grid)")


def segment_units(layout: InputLayout, labels: np.ndarray) -> MaskUnits:
    """Arbitrary segments: an integer label map of the image's height x width (negative = never masked)."""
    labels = np.asarray(labels)
    if labels.shape != (layout.height, layout.width) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"segments must be an integer label map of shape {(layout.height, layout.width)}, got {labels.dtype} {labels.shape}"
        )
    grid = np.full(labels.shape, -1, dtype=np.int64)
    valid = labels >= 0
    _, dense = np.unique(labels[valid], return_inverse=True)
    grid[valid] = dense.reshape(-1)
    return _on_grid("segment", layout, grid, f"{int(grid.max()) + 1} segments")


def _on_grid(kind: str, layout: InputLayout, grid: np.ndarray, description: str) -> MaskUnits:
    unit_of = grid[layout.coords[:, 1], layout.coords[:, 2]].astype(np.int64)
    return MaskUnits(kind, unit_of, int(grid.max()) + 1 if grid.size else 0, grid.astype(np.int64), description)
