"""Results for people and for other programs: rich tables in the terminal, markdown, CSV files.

Numbers keep their units in the column names (LSC is a log-ratio, lower is better; Win % and
sparsity are percentages; time is seconds per input), so a CSV can be read without this code.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from smugir.evaluation.comparison import Summary
from smugir.evaluation.sanity import SanityRecord
from smugir.exporters.files import write_text

DISPLAY_NAMES = {
    "smug": "SMUG", "smug_base": "SMUG_base", "smug_default": "SMUG (smugir defaults)", "ig": "IG", "ig_white": "IG (white)", "ig_black_white": "IG (black+white)",
    "gradcam": "Grad-CAM", "smoothgrad": "SmoothGrad", "xrai": "XRAI", "optbox": "OptBox", "gradient": "Gradient",
    "blur_ig": "Blur IG", "guided_ig": "Guided IG", "occlusion": "Occlusion", "edges": "Sobel edges (control)",
}
SIMILARITIES = ("spearman_absolute", "spearman_signed", "ssim", "hog")


def display_name(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def _number(value: float | None, digits: int = 3, scale: float = 1.0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{scale * value:.{digits}f}"


def _lsc(value: float) -> str:
    """An LSC cell: inf when the class probability was 0 on every box, n/a when it is undefined
    (a model whose probabilities are not numbers), never "nan"."""
    return "n/a" if np.isnan(value) else f"{value:.2f}"


def summary_rows(rows: Sequence[Summary]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table; AUC / F1 / MAE columns only when measured."""
    header = ["method", "inputs", "LSC median [Q1, Q3]", "Win % [95 % CI]", "sparsity %", "s / input"]
    with_cpu = any(row.cpu_seconds is not None for row in rows)
    if with_cpu:
        header += ["LSC s / input", "CPU s / input"]
    with_truth = any(row.auc is not None for row in rows)
    if with_truth:
        header += ["AUC", "max F1", "min MAE"]
    with_solver = any(row.proven is not None for row in rows)
    if with_solver:
        header += ["proven %", "mean gap %"]
    cells = []
    for row in rows:
        win = "-" if row.win is None else f"{100 * row.win:.1f} [{100 * row.win_low:.1f}, {100 * row.win_high:.1f}]"
        line = [display_name(row.method), str(row.inputs), f"{_lsc(row.lsc_median)} [{_lsc(row.lsc_q1)}, {_lsc(row.lsc_q3)}]", win,
                _number(row.sparsity, 1, 100), _number(row.seconds)]
        if with_cpu:
            line += [_number(row.metric_seconds), _number(row.cpu_seconds)]
        if with_truth:
            line += [_number(row.auc), _number(row.max_f1), _number(row.min_mae)]
        if with_solver:
            line += [_number(row.proven, 1, 100), _number(row.gap, 2, 100)]
        cells.append(line)
    return header, cells


def summary_table(rows: Sequence[Summary], title: str = "") -> Table:
    header, cells = summary_rows(rows)
    return _table(header, cells, title)


def summary_markdown(rows: Sequence[Summary]) -> str:
    """The comparison table as GitHub markdown, for docs."""
    header, cells = summary_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    return "\n".join(lines) + "\n"


def sanity_table(records: Sequence[SanityRecord], title: str = "") -> Table:
    """Per mode and method: the mean similarity to the original map at the last step (cascading
    and noise: every layer changed; independent: the layer nearest the input alone)."""
    header = ["mode", "method", "changed", "inputs", "Spearman |map|", "Spearman map", "SSIM", "HOG"]
    cells = []
    for mode in dict.fromkeys(r.mode for r in records):
        last = max(r.step for r in records if r.mode == mode)
        for method in dict.fromkeys(r.method for r in records):
            chosen = [r for r in records if r.mode == mode and r.method == method and r.step == last]
            if not chosen:
                continue
            changed = f"only {chosen[0].layer}" if mode == "independent" else f"all {last} layers"
            means = [np.nanmean([getattr(r, k) for r in chosen]) if any(np.isfinite(getattr(r, k)) for r in chosen) else None
                     for k in SIMILARITIES]
            cells.append([mode, display_name(method), changed, str(len(chosen)), *(_number(m) for m in means)])
    return _table(header, cells, title)


def _table(header: list[str], cells: list[list[str]], title: str) -> Table:
    table = Table(title=title or None)
    for number, column in enumerate(header):
        table.add_column(column, justify="left" if number == 0 or column in ("mode", "method", "changed") else "right")
    for line in cells:
        table.add_row(*line)
    return table


def print_table(table: Table) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file has no width to respect: keep each row on one line
        console.width = 200
    console.print(table)


def csv_text(rows: Sequence[dict]) -> str:
    """Rows of flat dicts (e.g. `Record.to_json()`) as CSV; lists become space-separated values, None empty."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def write_csv(path: str | os.PathLike, rows: Sequence[dict], force: bool = False):
    return write_text(path, csv_text(rows), force)
