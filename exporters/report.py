"""An explanation as files: JSON report, .npy arrays, PNG pictures.

Everything is rendered in memory first, written into a staging folder beside the target and moved
into place at the end (`staged_folder`), so a bad output folder, a full disk or an existing file
leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from smugir.exporters.files import staged_folder, utf8, write_atomically
from smugir.exporters.html_report import report_html
from smugir.exporters.pictures import explanation_figure, overlay_picture, png_bytes, saliency_picture

FILES = ("report.json", "mask.npy", "saliency.npy", "saliency.png", "overlay.png", "explanation.png", "report.html")


def json_ready(value: Any) -> Any:
    """numpy scalars and arrays as Python values; NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def to_json_text(data: Any) -> str:
    """Indented strict JSON of `data` (see `json_ready`)."""
    return json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_explanation(explanation, folder: str | os.PathLike, force: bool = False, html: bool = True,
                      command: Sequence[str] | str | None = None) -> dict[str, Path]:
    """Write the report, the mask and map arrays, the pictures and (`html`) report.html, which names
    `command`, into `folder`; returns the paths."""
    folder = Path(folder)
    layout = explanation.layout
    contents = {
        "report.json": utf8(to_json_text(explanation.to_json())),
        "mask.npy": _npy(explanation.mask),
        "saliency.npy": _npy(explanation.saliency.astype(np.float32)),
        "saliency.png": png_bytes(saliency_picture(layout, explanation.saliency)),
        "overlay.png": png_bytes(overlay_picture(layout, explanation.x, explanation.mask)),
        "explanation.png": png_bytes(explanation_figure(explanation)),
    }
    if html:
        contents["report.html"] = utf8(report_html(explanation, command))
    with staged_folder(folder, list(FILES), force) as staging:
        for name, data in contents.items():
            write_atomically(staging / name, lambda stream, data=data: stream.write(data))
    return {name: folder / name for name in contents}
