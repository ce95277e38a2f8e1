"""The geometry of an ONNX Conv node, read once for the first-layer IR and the gradient rules.

ONNX gives padding either explicitly (`pads`) or through `auto_pad`; both readers need the same
begin/end padding per spatial axis, so it is worked out here, by the ONNX operator's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import onnx

from smugir.errors import UnsupportedModelError


def node_attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@dataclass(frozen=True)
class ConvWindow:
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads_begin: list[int]
    pads_end: list[int]

    @property
    def span(self) -> list[int]:
        """Input extent one output reads along each axis: (k - 1) d + 1."""
        return [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations)]

    def output_spatial(self, spatial: Sequence[int]) -> list[int]:
        return [(i + b + e - sp) // s + 1 for i, b, e, sp, s in zip(spatial, self.pads_begin, self.pads_end, self.span, self.strides)]


def check_runnable(node: onnx.NodeProto) -> None:
    """Refuse a Conv that onnxruntime accepts but fails on at run time: SAME padding with dilation."""
    attrs = node_attributes(node)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    dilations = list(attrs.get("dilations", []))
    if auto_pad.startswith("SAME") and any(d != 1 for d in dilations):
        raise UnsupportedModelError(
            f"Conv node {node.name or node.output[0]!r} combines auto_pad {auto_pad} with dilations {dilations}, which "
            "onnxruntime cannot run; give explicit pads instead"
        )


def check_model_convolutions(proto: onnx.ModelProto) -> None:
    """`check_runnable` on every Conv of the graph, at load time."""
    for node in proto.graph.node:
        if node.op_type == "Conv":
            check_runnable(node)


def conv_window(node: onnx.NodeProto, weight_shape: Sequence[int], spatial: Sequence[int]) -> ConvWindow:
    """Kernel, strides, dilations and explicit begin/end pads of a Conv on an input of `spatial` size."""
    check_runnable(node)
    attrs = node_attributes(node)
    nk = len(weight_shape) - 2
    kernel = list(attrs.get("kernel_shape", weight_shape[2:]))
    strides = list(attrs.get("strides", [1] * nk))
    dilations = list(attrs.get("dilations", [1] * nk))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-i // s) for i, s in zip(spatial, strides)]
        total = [max(0, (o - 1) * s + sp - i) for o, s, sp, i in zip(out, strides, span, spatial)]
        small, big = [t // 2 for t in total], [t - t // 2 for t in total]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        begin, end = [0] * nk, [0] * nk
    else:
        pads = list(attrs.get("pads", [0] * 2 * nk))
        begin, end = pads[:nk], pads[nk:]
    return ConvWindow(kernel, strides, dilations, begin, end)
