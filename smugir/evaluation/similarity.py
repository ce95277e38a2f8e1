"""How alike two saliency maps are, the four ways Adebayo et al. (2018) compare them.

Spearman rank correlation of absolute values and of signed values, SSIM (Gaussian weights) on
maps scaled to [0, 1], and Spearman correlation of HOG features. Maps are (H, W) or (C, H, W);
channels are summed (absolute values for the absolute measures, signed for the signed one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from smugir.errors import InputError

HOG_CELL = 16  # pixels, as the paper; smaller images use cells of a quarter of their side


def _flat_2d(saliency: np.ndarray, absolute: bool) -> np.ndarray:
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim == 3:
        return np.abs(saliency).sum(axis=0) if absolute else saliency.sum(axis=0)
    if saliency.ndim == 2:
        return np.abs(saliency) if absolute else saliency
    raise InputError(f"a saliency map must be (H, W) or (C, H, W), got shape {list(saliency.shape)}")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # a constant map has no ranking; say so instead of warning
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _unit_range(values: np.ndarray) -> np.ndarray:
    span = np.ptp(values)
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def spearman_absolute(a: np.ndarray, b: np.ndarray) -> float:
    return _spearman(_flat_2d(a, True), _flat_2d(b, True))


def spearman_signed(a: np.ndarray, b: np.ndarray) -> float:
    return _spearman(_flat_2d(a, False), _flat_2d(b, False))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM with Gaussian weights (sigma 1.5) of the absolute maps, each scaled to [0, 1]."""
    x, y = _unit_range(_flat_2d(a, True)), _unit_range(_flat_2d(b, True))
    return float(structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0))


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of the HOG features of the absolute maps scaled to [0, 1]."""
    x, y = _unit_range(_flat_2d(a, True)), _unit_range(_flat_2d(b, True))
    cell = max(2, min(HOG_CELL, min(x.shape) // 4))
    features = [hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(1, 1), feature_vector=True) for m in (x, y)]
    return _spearman(*features)


@dataclass(frozen=True)
class Similarity:
    spearman_absolute: float
    spearman_signed: float
    ssim: float
    hog: float

    def to_json(self) -> dict:
        return asdict(self)


def similarity(a: np.ndarray, b: np.ndarray) -> Similarity:
    """All four measures between two maps of the same shape."""
    if np.shape(a) != np.shape(b):
        raise InputError(f"maps of different shapes cannot be compared: {list(np.shape(a))} and {list(np.shape(b))}")
    return Similarity(spearman_absolute(a, b), spearman_signed(a, b), ssim(a, b), hog_similarity(a, b))
