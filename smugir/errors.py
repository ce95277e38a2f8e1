"""The `SmugError` family.

Every message names what was wrong and what is accepted, so the CLI can print it as one line and
exit with code 2 instead of showing a traceback.
"""

from __future__ import annotations

import unicodedata


class SmugError(Exception):
    """Base class of every error smugir raises on bad input or unsupported models."""


class ModelFileError(SmugError):
    """The model file is missing, unreadable, not ONNX, truncated or fails the ONNX checker."""


class UnsafeModelError(SmugError):
    """The model asks to read data outside its own folder (ONNX external data)."""


class UnsupportedModelError(SmugError):
    """The graph has a shape smugir cannot handle (op, input count, dynamic shape, ...)."""


class UnsupportedOpError(UnsupportedModelError):
    """A node's operator is not supported at that place in the graph."""

    def __init__(self, node_name: str, op_type: str, where: str, supported: list[str] | tuple[str, ...]):
        self.node_name = node_name
        self.op_type = op_type
        self.supported = tuple(supported)
        super().__init__(
            f"unsupported op {op_type} (node {node_name!r}) {where}; supported: {', '.join(self.supported)}"
        )


class InputError(SmugError):
    """An input array, image, label or option value does not fit the model or the method."""


class SolverError(SmugError):
    """A solver backend is unknown, unavailable or failed."""


class OutputError(SmugError):
    """An output path cannot be written (missing folder, existing file without --force)."""


class BudgetError(SmugError):
    """A declared shape, header or option asks for more memory than the budget (`--max-memory`)."""


class NotAClassifierError(UnsupportedModelError):
    """The model's output is not class scores: not float, not (C,) or (N, C), fewer than 2 classes, non-finite."""


class MissingDependencyError(SmugError):
    """An optional extra (eval, dist) is needed for this command but not installed."""


def printable(text: object) -> str:
    """`text` with control characters, ANSI escapes, newlines and undecodable bytes escaped.

    Names come from untrusted files (node and tensor names, file names): printed raw, an escape
    sequence would drive the terminal and a newline would split one error into several lines.
    """
    out = []
    for char in str(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
class NoExplanationError(SmugError):
    """The input's explanation would say nothing (a status of `smugir.explain.VACUOUS`): exit code 3."""
