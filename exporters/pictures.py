"""PNG pictures of an explanation: the saliency map, the mask over the input, and both side by side.

Small inputs (MNIST's 28x28) are enlarged with nearest-neighbour sampling so each pixel of the
mask stays a crisp square.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smugir.units import InputLayout

MIN_SIDE = 224


def _to_rgb(image_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) raw values -> (H, W, 3) floats in [0, 1], min-max scaled per picture."""
    image = image_chw.astype(np.float64)
    image = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return scaled.transpose(1, 2, 0)


def _heat(values_hw: np.ndarray) -> np.ndarray:
    """(H, W) non-negative map -> (H, W, 3) grayscale in [0, 1] (white = most salient)."""
    top = float(np.abs(values_hw).max())
    gray = np.abs(values_hw) / top if top > 0 else np.zeros_like(values_hw, dtype=np.float64)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _image(rgb: np.ndarray) -> Image.Image:
    picture = Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), "RGB")
    factor = max(1, -(-MIN_SIDE // max(picture.size)))
    return picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)


def input_picture(layout: InputLayout, x: np.ndarray) -> Image.Image:
    return _image(_to_rgb(layout.to_image(np.asarray(x).reshape(-1))))


def saliency_picture(layout: InputLayout, saliency: np.ndarray) -> Image.Image:
    per_pixel = layout.to_image(np.asarray(saliency, dtype=np.float64).reshape(-1)).max(axis=0)
    return _image(_heat(per_pixel))


def overlay_picture(layout: InputLayout, x: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The input with masked-out pixels darkened and tinted, kept pixels as they are."""
    rgb = _to_rgb(layout.to_image(np.asarray(x).reshape(-1)))
    kept = layout.to_image(np.asarray(mask, dtype=bool).reshape(-1)).any(axis=0)
    tint = np.array([0.15, 0.05, 0.25])
    shown = np.where(kept[:, :, None], rgb, 0.25 * rgb + tint)
    return _image(shown)


def side_by_side(pictures: list[Image.Image], gap: int = 8) -> Image.Image:
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    height = max(p.height for p in pictures)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    left = 0
    for picture in pictures:
        canvas.paste(picture, (left, 0))
        left += picture.width + gap
    return canvas


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
