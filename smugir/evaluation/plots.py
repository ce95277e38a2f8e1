"""Figures like the papers': a grid of maps per method, LSC box plots, randomisation curves.

matplotlib with the Agg backend (no display needed); every figure is written all-or-nothing.
"""

from __future__ import annotations

import io
import os
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import numpy as np  # noqa: E402

from smugir.evaluation.comparison import Comparison, Record  # noqa: E402
from smugir.evaluation.report import display_name  # noqa: E402
from smugir.evaluation.sanity import SanityRecord  # noqa: E402
from smugir.exporters.files import write_atomically  # noqa: E402
from smugir.exporters.pictures import spread_sparse  # noqa: E402

DPI = 110
PANEL_INCHES = 1.75
PANEL_PIXELS = int(PANEL_INCHES * DPI)  # about what one map panel of `map_grid` gets
MEASURES = (("spearman_absolute", "Spearman (absolute)"), ("spearman_signed", "Spearman (signed)"), ("ssim", "SSIM"), ("hog", "HOG similarity"))


def _png(figure) -> bytes:
    """The figure as PNG bytes, closed afterwards."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _save(figure, path: str | os.PathLike, force: bool):
    data = _png(figure)
    return write_atomically(path, lambda stream: stream.write(data), force)


def _shown(image_chw: np.ndarray) -> np.ndarray:
    image = np.asarray(image_chw, dtype=np.float64).transpose(1, 2, 0)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image[..., 0] if image.shape[-1] == 1 else image


def map_grid(comparison: Comparison, path: str | os.PathLike, max_samples: int = 6, force: bool = False):
    """Rows: inputs; columns: the image, then each method's map (its 99th percentile = brightest, on
    the colour bar's scale) with its best LSC box in green; OptBox, which has no map, shows its box
    on the image. Sparse maps (SMUG's) have their non-zero pixels spread over a few pixels so that
    they stay visible at figure size; such columns are marked with *."""
    samples = list(comparison.images)[:max_samples]
    methods = list(dict.fromkeys(r.method for r in comparison.records))
    boxes = {(r.sample, r.method): r.box for r in comparison.records}
    lsc = {(r.sample, r.method): r.lsc for r in comparison.records}
    rows, cols = max(1, len(samples)), 1 + len(methods)
    figure, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES * cols + 0.6, (PANEL_INCHES + 0.15) * rows + 0.5), squeeze=False)
    spread_methods = set()
    shown = None
    for row, sample in enumerate(samples):
        image = _shown(comparison.images[sample])
        axes[row, 0].imshow(image, cmap="gray")
        axes[row, 0].set_ylabel(str(sample)[:18], fontsize=7)
        for col, method in enumerate(methods, start=1):
            values = comparison.maps.get((sample, method))
            if values is None:
                axes[row, col].imshow(image, cmap="gray")
            else:
                top = np.percentile(values, 99) or values.max() or 1.0
                values, spread = spread_sparse(values, max(1, PANEL_PIXELS // max(values.shape)))
                if spread:
                    spread_methods.add(method)
                shown = axes[row, col].imshow(np.clip(values / top, 0, 1), cmap="inferno", vmin=0, vmax=1)
            box = boxes.get((sample, method))
            if box:
                top_, left, bottom, right = box
                axes[row, col].add_patch(plt.Rectangle((left - 0.5, top_ - 0.5), right - left, bottom - top_, fill=False, edgecolor="lime", linewidth=1.2))
            if (sample, method) in lsc:
                axes[row, col].set_xlabel(f"LSC {lsc[(sample, method)]:.2f}", fontsize=7, labelpad=1)
    titles = ["input", *(display_name(m) + (" *" if m in spread_methods else "") for m in methods)]
    for col, title in enumerate(titles):
        axes[0, col].set_title(textwrap.fill(title, 14), fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if shown is not None:
        bar = figure.colorbar(shown, ax=axes, fraction=0.02, pad=0.01)
        bar.set_label("map value / its 99th percentile", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    note = "green: the best LSC box (lower LSC is better)"
    if spread_methods:
        note += "; * sparse maps: non-zero pixels enlarged to stay visible"
    figure.suptitle(note, fontsize=8, y=0.005, va="bottom")
    return _save(figure, path, force)


def lsc_boxplot(records: Sequence[Record], path: str | os.PathLike, force: bool = False):
    """LSC per method (lower is better), one box per method over its inputs."""
    methods = list(dict.fromkeys(r.method for r in records))
    figure, axis = plt.subplots(figsize=(1.1 * len(methods) + 2, 3.2))
    scores = [[r.lsc for r in records if r.method == m and np.isfinite(r.lsc)] for m in methods]  # p = 0 gives +inf
    axis.boxplot(scores, tick_labels=[display_name(m) for m in methods])
    axis.set_ylabel("LSC (lower is better)")
    axis.tick_params(axis="x", labelrotation=30, labelsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path, force)


def randomisation_curves(records: Sequence[SanityRecord], path: str | os.PathLike, force: bool = False):
    """The figure of `randomisation_figure` as a PNG file."""
    return _save(randomisation_figure(records), path, force)


def curves_png(records: Sequence[SanityRecord]) -> bytes:
    """The figure of `randomisation_figure` as PNG bytes (a notebook's view embeds them)."""
    return _png(randomisation_figure(records))


def randomisation_figure(records: Sequence[SanityRecord]):
    """One row per mode, one panel per similarity measure: the mean over inputs against the number
    of randomised layers (0 = original), one line per method, the band +- one standard deviation."""
    modes = list(dict.fromkeys(r.mode for r in records))
    methods = list(dict.fromkeys(r.method for r in records))
    figure, axes = plt.subplots(len(modes), len(MEASURES), figsize=(3.2 * len(MEASURES), 2.6 * len(modes)), squeeze=False)
    for row, mode in enumerate(modes):
        chosen = [r for r in records if r.mode == mode]
        indices = sorted({r.step for r in chosen})
        labels = {r.step: (r.layer or "original") for r in chosen}
        for col, (measure, title) in enumerate(MEASURES):
            axis = axes[row, col]
            for method in methods:
                values = [[getattr(r, measure) for r in chosen if r.method == method and r.step == i] for i in indices]
                mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in values])
                spread = np.array([np.nanstd(v) if np.isfinite(v).any() else np.nan for v in values])
                axis.plot(indices, mean, marker="o", markersize=3, label=display_name(method))
                axis.fill_between(indices, mean - spread, mean + spread, alpha=0.15)
            axis.set_ylim(-1.05, 1.05)
            axis.axhline(0, color="gray", linewidth=0.5)
            axis.set_title(f"{mode}: {title}", fontsize=9)
            axis.set_xticks(indices, [labels[i] for i in indices], rotation=60, fontsize=6)
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    return figure
