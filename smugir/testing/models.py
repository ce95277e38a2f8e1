"""Hypothesis strategies for random small ONNX classifiers whose first layer smugir reads.

`dense_models()` and `conv_models()` (1-D and 2-D: strides, pads, auto_pad, dilations, groups,
channels-last inputs) put random preprocessing (layout ops, Sub/Div/Mul constants) in front of the
first linear op, one of the activations the reader supports after it, and a small suffix network
to the logits, so every part of the first-layer reader runs. Each draws a `Built`: the in-memory
model and an input for it. `exporter_models()` (smugir.testing.exporter_models) adds the forms
exporters write: constant Pad, BatchNormalization, activations in several opset forms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from hypothesis import strategies as st

from smugir.testing.graphs import Built, GraphBuilder, normalise, random_weights, sample_input, suffix_network

# Activations as exporters write them; the label is how smugir's reader names what it read.
ACTIVATIONS = ("Relu", "ClipInputs", "ClipMaxOnly", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "SiLU", "Tanh", None)


def activation(b: GraphBuilder, act: str | None, pre: str) -> tuple[str, str]:
    """(output tensor, the reader's label) of activation `act` (None: identity) applied to `pre`."""
    if act is None:
        return pre, "none"
    if act == "ClipAttributes":  # opset < 11
        return b.node("Clip", [pre], min=-0.5, max=1.5), "Clip(-0.5, 1.5)"
    if act == "ClipInputs":
        return b.node("Clip", [pre, b.const(np.float32(0.0)), b.const(np.float32(6.0))]), "Clip(0, 6)"
    if act == "ClipMaxOnly":
        return b.node("Clip", [pre, "", b.const(np.float32(0.7))]), "Clip(-inf, 0.7)"
    if act == "LeakyRelu":
        return b.node(act, [pre], alpha=0.1), "LeakyRelu(alpha=0.1)"
    if act == "HardSigmoid":
        return b.node(act, [pre], alpha=0.25, beta=0.4), "HardSigmoid(alpha=0.25, beta=0.4)"
    if act == "SiLU":
        return b.node("Mul", [b.node("Sigmoid", [pre]), pre]), "SiLU"
    return b.node(act, [pre]), act


@st.composite
def dense_models(draw, activations: tuple[str | None, ...] = ACTIVATIONS) -> Built:
    """x [N,C,H,W] or [N,H,W,C] -> [Sub/Div] -> [Transpose] -> Flatten/Reshape -> [Mul] -> Gemm or MatMul(+Add) -> activation -> suffix."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    nhwc = draw(st.booleans())
    shape = ["N", h, w, c] if nhwc else ["N", c, h, w]
    t = "x"
    if draw(st.booleans()):
        t = normalise(b, t, c, 3 if nhwc else 1, 4)
    if nhwc and draw(st.booleans()):
        t = b.node("Transpose", [t], perm=[0, 3, 1, 2])
    layout = draw(st.sampled_from(["flatten", "reshape"]))
    k = c * h * w
    t = b.node("Flatten", [t], axis=1) if layout == "flatten" else b.node("Reshape", [t, b.const(np.array([-1, k], np.int64))])
    if draw(st.booleans()):
        t = b.node("Mul", [t, b.const(np.float32(rng.uniform(0.5, 2)))])
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["gemm", "matmul"]))
    weight = random_weights(rng, (n, k))
    if kind == "gemm":
        trans_b = draw(st.booleans())
        inputs = [t, b.const(weight if trans_b else weight.T)]
        if draw(st.booleans()):
            inputs.append(b.const(rng.normal(size=n).astype(np.float32)))
        pre = b.node("Gemm", inputs, transB=int(trans_b), alpha=float(rng.uniform(0.5, 2)), beta=float(rng.uniform(0.5, 2)))
    else:
        pre = b.node("MatMul", [t, b.const(weight.T)])
        if draw(st.booleans()):
            pre = b.node("Add", [pre, b.const(rng.normal(size=n).astype(np.float32))])
    act = draw(st.sampled_from(activations))
    post, _ = activation(b, act, pre)
    out, n_out = suffix_network(b, post, n, flatten=False, hidden=draw(st.sampled_from([0, 0, 4])))
    one = (1, h, w, c) if nhwc else (1, c, h, w)
    return Built(b.model("x", shape, out, n_out), one, pre, post, f"dense {kind} nhwc={nhwc} act={act}", sample_input(rng, one))


@st.composite
def conv_models(draw, activations: tuple[str | None, ...] = ACTIVATIONS) -> Built:
    """x -> [Sub/Div] -> [Transpose from channels-last] -> Conv 1-D/2-D -> activation -> GlobalAveragePool -> suffix."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    dims = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2]))
    c = group * draw(st.integers(1, 2))
    m = group * draw(st.integers(1, 3))
    spatial = [draw(st.integers(3, 8)) for _ in range(dims)]
    kernel = [draw(st.integers(1, 3)) for _ in range(dims)]
    strides = [draw(st.integers(1, 3)) for _ in range(dims)]
    dilations = [draw(st.integers(1, 2)) for _ in range(dims)]
    channels_last = draw(st.booleans())
    shape = ["N", *spatial, c] if channels_last else ["N", c, *spatial]
    t = "x"
    if draw(st.booleans()):
        t = normalise(b, t, c, dims + 1 if channels_last else 1, dims + 2)
    if channels_last:
        t = b.node("Transpose", [t], perm=[0, dims + 1, *range(1, dims + 1)])
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations, group=group)
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if auto_pad == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * dims)]
    else:
        attrs["auto_pad"] = auto_pad
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    padded = [s + (attrs["pads"][i] + attrs["pads"][i + dims] if "pads" in attrs else 0) for i, s in enumerate(spatial)]
    if auto_pad in ("NOTSET", "VALID") and any(p < sp for p, sp in zip(padded, span)):
        attrs.pop("pads", None)
        attrs["auto_pad"] = "SAME_UPPER"
    if attrs.get("auto_pad", "").startswith("SAME"):
        attrs["dilations"] = [1] * dims  # onnxruntime rejects dilations with SAME padding
    weight = random_weights(rng, (m, c // group, *kernel))
    inputs = [t, b.const(weight)]
    if draw(st.booleans()):
        inputs.append(b.const(rng.normal(size=m).astype(np.float32)))
    pre = b.node("Conv", inputs, **attrs)
    act = draw(st.sampled_from(activations))
    post, _ = activation(b, act, pre)
    pooled = b.node("GlobalAveragePool", [post])
    out, n_out = suffix_network(b, pooled, m)
    one = (1, *spatial, c) if channels_last else (1, c, *spatial)
    desc = (f"conv{dims}d c={c} m={m} g={group} k={kernel} s={strides} d={dilations} "
            f"{attrs.get('auto_pad', attrs.get('pads'))} nhwc={channels_last} act={act}")
    return Built(b.model("x", shape, out, n_out), one, pre, post, desc, sample_input(rng, one))


def first_layer_models(activations: tuple[str | None, ...] = ACTIVATIONS) -> st.SearchStrategy[Built]:
    """A dense or conv classifier (see the module docstring)."""
    return st.one_of(dense_models(activations), conv_models(activations))


def loaded_with_units(built: Built, folder: str | Path, rng: np.random.Generator, unit_kind: str):
    """(model, first layer, mask units of `unit_kind`: pixel, random window size or random segments),
    the model saved to `folder` and loaded by smugir as a user's file would be."""
    from smugir.firstlayer import first_layer
    from smugir.model import load_model
    from smugir.units import input_layout, pixel_units, segment_units, window_units

    path = Path(folder) / "m.onnx"
    onnx.save(built.proto, path)
    model = load_model(path)
    layout = input_layout(model.input_shape)
    if unit_kind == "pixel":
        units = pixel_units(layout)
    elif unit_kind == "window":
        units = window_units(layout, int(rng.integers(1, 4)))
    else:
        units = segment_units(layout, rng.integers(-1, 4, size=(layout.height, layout.width)))
    return model, first_layer(model), units
