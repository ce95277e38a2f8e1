"""A strategy for what exporters emit in front of and after the first layer: constant subgraphs
computing a Pad's pads, constant Pad before or after a normalisation (zero or non-zero value),
BatchNormalization after the linear op, and every activation the reader knows, in the opset
forms exporters write (Clip with attributes at opset 10, with inputs later, x * Sigmoid(x), ...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper

from smugir.testing.graphs import Built, GraphBuilder, normalise, random_weights, sample_input, suffix_network
from smugir.testing.models import ACTIVATIONS, activation

EXPORTER_ACTIVATIONS = ("ClipAttributes", *ACTIVATIONS)


@dataclass
class ExporterBuilt(Built):
    activation_label: str = "none"  # how the reader names the activation
    batch_norm: bool = False
    pad_value: float | None = None  # None: no Pad
    pad_is_conv_padding: bool = False  # a zero Pad straight into a Conv: the reader turns it into conv pads


def _torch_pads(b: GraphBuilder, torch_pads: list[int], data: str | None) -> str:
    """ONNX pads computed the way torch.onnx exports F.pad: [w_b, w_e, h_b, h_e] -> zeros appended ->
    Reshape(-1, 2) -> reversed rows (Slice, step -1) -> Transpose -> Reshape(-1) -> Cast. With `data`,
    the last pad is computed from Shape(data) like a "same" padding does (Shape, Gather, Sub)."""
    pads = b.const(np.array(torch_pads[:-1], np.int64))
    if data is None:
        last = b.const(np.array([torch_pads[-1]], np.int64))
    else:
        width = b.node("Gather", [b.node("Shape", [data]), b.const(np.array([3], np.int64))], axis=0)
        last = b.node("Sub", [b.node("Add", [width, b.const(np.array([torch_pads[-1]], np.int64))]), width])
    zeros = b.node("ConstantOfShape", [b.const(np.array([4], np.int64))], value=numpy_helper.from_array(np.array([0], np.int64)))
    flat = b.node("Concat", [pads, last, zeros], axis=0)
    rows = b.node("Reshape", [flat, b.const(np.array([-1, 2], np.int64))])
    reversed_rows = b.node("Slice", [rows, *(b.const(np.array([v], np.int64)) for v in (-1, -(2**63) + 1, 0, -1))])
    onnx_pads = b.node("Reshape", [b.node("Transpose", [reversed_rows], perm=[1, 0]), b.const(np.array([-1], np.int64))])
    return b.node("Cast", [onnx_pads], to=TensorProto.INT64)


def _flatten(b: GraphBuilder, draw, t: str, batch, opset: int) -> str:
    """Flatten, or x.view(x.size(0), -1) as torch exports it (Shape, Gather, Unsqueeze, Concat, Reshape)."""
    if batch != "N" or not draw(st.booleans()):
        return b.node("Flatten", [t], axis=1)
    size = b.node("Gather", [b.node("Shape", [t]), b.const(np.array(0, np.int64))], axis=0)
    size = b.node("Unsqueeze", [size], axes=[0]) if opset < 13 else b.node("Unsqueeze", [size, b.const(np.array([0], np.int64))])
    return b.node("Reshape", [t, b.node("Concat", [size, b.const(np.array([-1], np.int64))], axis=0)])


@st.composite
def exporter_models(draw) -> ExporterBuilt:
    """x -> [normalise] -> [Pad] -> [normalise] -> Conv or Flatten+Gemm -> [BatchNormalization] -> activation -> suffix."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    act = draw(st.sampled_from(EXPORTER_ACTIVATIONS))
    opset = 10 if act == "ClipAttributes" else 17
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    h0, w0 = h, w
    batch = draw(st.sampled_from([1, "N"]))
    t = "x"
    if draw(st.booleans()):
        t = normalise(b, t, c, 1, 4)
    pad_value = None
    if draw(st.booleans()):
        torch_pads = [draw(st.integers(-1 if w > 2 else 0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2))]
        pad_value = float(draw(st.sampled_from([0.0, 0.0, 1.5, -0.75])))
        onnx_pads = [0, 0, torch_pads[2], torch_pads[0], 0, 0, torch_pads[3], torch_pads[1]]
        if opset < 11:
            t = b.node("Pad", [t], pads=onnx_pads, value=pad_value, mode="constant")
        else:
            how = draw(st.sampled_from(["initializer", "subgraph", "subgraph-with-shape"]))
            pads = b.const(np.array(onnx_pads, np.int64)) if how == "initializer" else _torch_pads(b, torch_pads, t if how == "subgraph-with-shape" else None)
            inputs = [t, pads] if pad_value == 0.0 and draw(st.booleans()) else [t, pads, b.const(np.float32(pad_value))]
            t = b.node("Pad", inputs, mode="constant")
        h, w = h + torch_pads[2] + torch_pads[3], w + torch_pads[0] + torch_pads[1]
    normalised_after_pad = pad_value is not None and draw(st.booleans())
    if normalised_after_pad or (pad_value is None and draw(st.booleans())):
        t = normalise(b, t, c, 1, 4)
    linear = draw(st.sampled_from(["conv", "gemm"]))
    n = draw(st.integers(1, 4))
    if linear == "conv":
        k = draw(st.integers(1, min(3, h, w)))
        conv_inputs = [t, b.const(random_weights(rng, (n, c, k, k)))]
        if draw(st.booleans()):
            conv_inputs.append(b.const(rng.normal(size=n).astype(np.float32)))
        pre = b.node("Conv", conv_inputs, kernel_shape=[k, k], strides=[draw(st.integers(1, 2))] * 2, pads=[draw(st.integers(0, 1))] * 4)
    else:
        flat = _flatten(b, draw, t, batch, opset)
        pre = b.node("Gemm", [flat, b.const(random_weights(rng, (n, c * h * w))), b.const(rng.normal(size=n).astype(np.float32))], transB=1)
    batch_norm = draw(st.booleans())
    if batch_norm:
        stats = [rng.uniform(0.5, 2, n), rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2, n)]
        pre = b.node("BatchNormalization", [pre, *(b.const(v.astype(np.float32)) for v in stats)], epsilon=1e-3)
    post, label = activation(b, act, pre)
    pooled = b.node("GlobalAveragePool", [post]) if linear == "conv" else post
    out, n_out = suffix_network(b, pooled, n)
    proto = b.model("x", [batch, c, h0, w0], out, n_out, opset=opset, batch=batch)
    desc = f"{linear} act={act} opset={opset} batch={batch} pad={pad_value} bn={batch_norm}"
    conv_padding = pad_value == 0.0 and not normalised_after_pad and linear == "conv"
    one = (1, c, h0, w0)
    return ExporterBuilt(proto, one, pre, post, desc, sample_input(rng, one), label, batch_norm, pad_value, conv_padding)
