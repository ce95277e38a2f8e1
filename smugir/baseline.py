"""What a masked-out unit becomes, in raw model-input space.

`zero` (the original method's choice), a constant, the per-channel mean of the input, or a
Gaussian-blurred copy of the input (`blur` or `blur:SIGMA`, sigma in pixels, default 3).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from smugir.errors import InputError
from smugir.units import InputLayout

BASELINES = ("zero", "mean", "blur", "blur:SIGMA", "a number")


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
        sigma = _number(text[5:], spec) if text.startswith("blur:") else 3.0
        if sigma <= 0:
            raise InputError(f"blur sigma must be > 0, got {sigma}")
        image = layout.to_image(x.reshape(-1)).astype(np.float64)
        blurred = gaussian_filter(image, sigma=(0, sigma, sigma), mode="nearest")
        return layout.from_image(blurred, x.shape).astype(np.float32)
    return np.full_like(x, _number(text, spec))


def _number(text: str, spec: str | float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"unknown baseline {spec!r}; accepted: {', '.join(BASELINES)}") from None
    if not np.isfinite(value):
        raise InputError(f"baseline {spec!r} is not a finite number")
    return value
