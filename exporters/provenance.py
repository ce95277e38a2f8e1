"""Where an exported instance came from, by name and SHA-256 only: never a path of the machine that made it.

A benchmark file travels: its metadata must let anyone rebuild it (the same model file, the same
input) without leaking the exporter's folders. So the model is named by its file name and digest,
the input by its file name (plus the array selector, e.g. `samples.npz:images[3]`) and the digest
of the array smugir built from it, and every value is cleaned (`plain_text`) so that no name can
add a line, close a comment or end a `|...|` block in any of the formats.
"""

from __future__ import annotations

import hashlib
import os
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping

import numpy as np

_UNSAFE = re.compile(r"[|\\`\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # and C1 controls, undecodable bytes
_SELECTOR = re.compile(r"^(.*?)(:[^/\\]*)$")  # file.npz:images[3] -> (file.npz, :images[3])
KEPT = ("model", "model_sha256", "label", "top_k", "variant", "formulation", "gamma", "units")  # scalar metadata worth keeping


def plain_text(value: Any) -> str:
    """One line with no '|', backslash, backtick or control character (they become '_')."""
    return _UNSAFE.sub("_", str(value))


def generator() -> str:
    try:
        return f"smugir {version('smugir')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
        return "smugir"


def input_name(text: str) -> str:
    """The name an input goes by in a file: the base name of its path, with any `:key[index]`
    selector kept; a sentence (no such file) is named by its length only."""
    path, selector = text, ""
    match = _SELECTOR.match(text)
    if match and not os.path.exists(text) and os.path.exists(match[1]):
        path, selector = match[1], match[2]
    if os.path.exists(path):
        return plain_text(os.path.basename(os.path.normpath(path)) + selector)
    return f"a sentence of {len(text)} characters"


def input_digest(x: Any) -> str:
    """SHA-256 of the input as smugir read it: a sentence's UTF-8, or the array's C-order bytes."""
    if isinstance(x, str):
        return hashlib.sha256(x.encode("utf-8", errors="surrogatepass")).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def source_fields(name: str, x: Any, metadata: Mapping[str, Any]) -> dict[str, str]:
    """The provenance of one instance, in the order the files print it."""
    fields: dict[str, Any] = {"generator": generator()}
    fields.update({key: metadata[key] for key in ("model", "model_sha256") if metadata.get(key) is not None})
    fields.update(input=name, input_sha256=input_digest(x))
    if not isinstance(x, str):
        array = np.asarray(x)
        fields["input_array"] = f"{array.dtype}{list(array.shape)}"
    fields.update({key: metadata[key] for key in KEPT if key not in fields and metadata.get(key) is not None})
    return {key: plain_text(value) for key, value in fields.items()}


ORIGIN_SETTINGS = ("method", "top_k", "gamma", "window", "baseline", "formulation", "margin", "bounds", "logic", "formats",
                   "rounding", "solver", "timeout", "min_seconds")


def family_origin(model: Any, dataset: str, args: Any) -> dict[str, str]:
    """What a family's README says it was made from: the model and dataset by name, the settings."""
    origin = {"generator": generator(), "model": os.path.basename(str(model.path)), "model_sha256": model.sha256, "dataset": dataset}
    settings = {key: getattr(args, key) for key in ORIGIN_SETTINGS if getattr(args, key, None) is not None}
    origin["settings"] = " ".join(f"{key}={value}" for key, value in settings.items())
    return {key: plain_text(value) for key, value in origin.items()}
