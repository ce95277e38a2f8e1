"""What a masked-out unit becomes, in raw model-input space.

`zero` (the original method's choice), a constant, the per-channel mean of the input, or a
Gaussian-blurred copy of the input (`blur` or `blur:SIGMA`, sigma in pixels, default 3).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from smugir.budget import require
from smugir.errors import InputError
from smugir.units import InputLayout

BASELINES = ("zero", "mean", "blur", "blur:SIGMA", "a number")
DEFAULT_SIGMA = 3.0
TRUNCATE = 4.0  # scipy's default: the kernel spans 4 sigma each side


def make_baseline(spec: str | float, x: np.ndarray, layout: InputLayout) -> np.ndarray:
    """The baseline input for `x` (same shape, float32)."""
    x = np.asarray(x, dtype=np.float32)
    text = str(spec).strip().lower()
    if text == "zero":
        return np.zeros_like(x)
    if text == "mean":
        image = layout.to_image(x.reshape(-1))
        means = image.reshape(layout.channels, -1).mean(axis=1)
        return layout.from_image(np.broadcast_to(means[:, None, None], image.shape), x.shape).astype(np.float32)
    if text == "blur" or text.startswith("blur:"):
        sigma = blur_sigma(text, layout)
        image = layout.to_image(x.reshape(-1)).astype(np.float64)
        blurred = gaussian_filter(image, sigma=(0, sigma, sigma), mode="nearest", truncate=TRUNCATE)
        return layout.from_image(blurred, x.shape).astype(np.float32)
    return np.full_like(x, _number(text, spec))


def blur_sigma(text: str, layout: InputLayout | None) -> float:
    """The sigma of `blur[:SIGMA]`: > 0, and at most the image's larger side (a wider Gaussian is a
    flat mean already, and its kernel of 8 sigma taps would cost memory and time for nothing)."""
    sigma = _number(text[5:], text) if text.startswith("blur:") else DEFAULT_SIGMA
    if sigma <= 0:
        raise InputError(f"blur sigma must be > 0, got {sigma}")
    require(f"the blur baseline's kernel (sigma {sigma:g})", (2 * TRUNCATE * sigma + 1) * 8)
    if layout is not None and sigma > max(layout.height, layout.width):
        raise InputError(f"blur sigma {sigma:g} is wider than the image ({layout.height}x{layout.width}); at most {max(layout.height, layout.width)}")
    return sigma


def _number(text: str, spec: str | float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"unknown baseline {spec!r}; accepted: {', '.join(BASELINES)}") from None
    if not abs(value) <= float(np.finfo(np.float32).max):
        raise InputError(f"baseline {spec!r} is not a finite float32 number")
    return value
