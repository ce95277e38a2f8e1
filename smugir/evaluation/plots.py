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
    """Columns: inputs; rows: the image, then each method's map (its 99th percentile = brightest, on
    the colour bar's scale) with its best LSC box in green; OptBox, which has no map, shows its box
    on the image. Inputs as columns keep the figure about 1,000 pixels wide however many methods
    there are, so its text stays legible at README width. Sparse maps (SMUG's) have their non-zero
    pixels spread over a few pixels so that they stay visible at figure size; such rows are marked *."""
    samples = list(comparison.images)[:max_samples]
    methods = list(dict.fromkeys(r.method for r in comparison.records))
    boxes = {(r.sample, r.method): r.box for r in comparison.records}
    lsc = {(r.sample, r.method): r.lsc for r in comparison.records}
    rows, cols = 1 + len(methods), max(1, len(samples))
    figure, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES * cols + 1.8, (PANEL_INCHES + 0.3) * rows + 0.4), squeeze=False,
                                layout="constrained")
    spread_methods = set()
    shown = None
    for col, sample in enumerate(samples):
        image = _shown(comparison.images[sample])
        axes[0, col].imshow(image, cmap="gray")
        axes[0, col].set_title(str(sample)[:24], fontsize=9)
        for row, method in enumerate(methods, start=1):
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
                axes[row, col].add_patch(plt.Rectangle((left - 0.5, top_ - 0.5), right - left, bottom - top_, fill=False, edgecolor="lime", linewidth=1.5))
            if (sample, method) in lsc:
                axes[row, col].set_xlabel(f"LSC {lsc[(sample, method)]:.2f}", fontsize=9, labelpad=1)
    labels = ["input", *(display_name(m) + (" *" if m in spread_methods else "") for m in methods)]
    for row, label in enumerate(labels):
        axes[row, 0].set_ylabel(textwrap.fill(label, 13), fontsize=10)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    if shown is not None:
        bar = figure.colorbar(shown, ax=axes, fraction=0.03, pad=0.01, shrink=min(1.0, 4 / rows))
        bar.set_label("map value / its 99th percentile", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    note = "green: the best LSC box (lower LSC is better)"
    if spread_methods:
        note += "\n* sparse maps: non-zero pixels enlarged to stay visible"
    figure.supxlabel(note, fontsize=9)
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
    figure, axes = plt.subplots(len(modes), len(MEASURES), figsize=(2.4 * len(MEASURES), 2.3 * len(modes) + 0.5), squeeze=False)
    for row, mode in enumerate(modes):
        chosen = [r for r in records if r.mode == mode]
        indices = sorted({r.step for r in chosen})
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
            if row == 0:
                axis.set_title(title, fontsize=10)
            axis.set_xticks(indices, [str(i) for i in indices], fontsize=9)
            axis.tick_params(axis="y", labelsize=9)
        axes[row, 0].set_xlabel("randomised layers (step)", fontsize=9)
        axes[row, 0].set_ylabel(mode, fontsize=10)
    axes[0, 0].legend(fontsize=8)
    steps = {r.step: (r.layer or "original") for r in records}
    key = "; ".join(f"{i}: {steps[i]}" for i in sorted(steps))
    figure.tight_layout(rect=(0, 0.04 + 0.012 * (len(key) // 150), 1, 1))
    figure.text(0.01, 0.005, textwrap.fill("steps, by the layer randomised (cascading: the last of those randomised so far): " + key, 150), fontsize=8, va="bottom")
    return figure
