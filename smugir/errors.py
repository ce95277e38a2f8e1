"""The `SmugError` family.

Every message names what was wrong and what is accepted, so the CLI can print it as one line and
exit with code 2 instead of showing a traceback.
"""

from __future__ import annotations


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


class MissingDependencyError(SmugError):
    """An optional extra (eval, dist) is needed for this command but not installed."""


class NoExplanationError(SmugError):
    """The input's explanation would say nothing (a status of `smugir.explain.VACUOUS`): exit code 3."""
