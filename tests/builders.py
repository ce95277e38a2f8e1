"""Small ONNX models built with onnx.helper, for property tests against onnxruntime.

`first_layer_models()` is a hypothesis strategy drawing a model whose data input goes through
random preprocessing (layout + Sub/Div normalisation) into a random dense or conv first layer,
followed by an activation and a small dense head, so every part of the first-layer reader runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from smugir.problem import MaskProblem, NetworkMaskProblem

OPSET = 17


@dataclass
class Built:
    proto: onnx.ModelProto
    input_shape: tuple[int, ...]  # with batch 1
    pre_name: str
    post_name: str
    description: str


class GraphBuilder:
    """Accumulates nodes and initializers; names are generated so they never collide."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def model(self, input_name: str, input_shape: list, output: str, n_out: int) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "random",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", n_out])],
            self.initializers,
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = 8
        onnx.checker.check_model(proto)
        return proto


def _weights(rng: np.random.Generator, size) -> np.ndarray:
    """Random weights bounded away from 0, so every tap measurably moves its neuron in float32."""
    return (rng.choice([-1.0, 1.0], size=size) * rng.uniform(0.2, 1.5, size=size)).astype(np.float32)


def _normalise(b: GraphBuilder, tensor: str, channels: int, channel_axis: int, rank: int) -> str:
    """x -> (x - mean) / std with per-channel constants shaped to broadcast on `channel_axis`."""
    shape = [1] * rank
    shape[channel_axis] = channels
    mean = b.rng.uniform(-0.5, 0.5, size=shape).astype(np.float32)
    std = b.rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    return b.node("Div", [b.node("Sub", [tensor, b.const(mean)]), b.const(std)])


def _head(b: GraphBuilder, post: str, features: int, batch_flatten: bool = True) -> tuple[str, int]:
    flat = b.node("Flatten", [post], axis=1) if batch_flatten else post
    n_out = 3
    w = b.rng.normal(size=(features, n_out)).astype(np.float32)
    return b.node("Gemm", [flat, b.const(w), b.const(np.zeros(n_out, np.float32))]), n_out


@st.composite
def dense_models(draw) -> Built:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder(rng)
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    nhwc = draw(st.booleans())
    shape = ["N", h, w, c] if nhwc else ["N", c, h, w]
    x = "x"
    t = x
    if draw(st.booleans()):
        t = _normalise(b, t, c, 3 if nhwc else 1, 4)
    if nhwc and draw(st.booleans()):
        t = b.node("Transpose", [t], perm=[0, 3, 1, 2])
    layout = draw(st.sampled_from(["flatten", "reshape"]))
    k = c * h * w
    t = b.node("Flatten", [t], axis=1) if layout == "flatten" else b.node("Reshape", [t, b.const(np.array([-1, k], np.int64))])
    if draw(st.booleans()):
        t = b.node("Mul", [t, b.const(np.float32(rng.uniform(0.5, 2)))])
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["gemm", "matmul"]))
    weight = _weights(rng, (n, k))
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
    act = draw(st.sampled_from(["Relu", "LeakyRelu", "Sigmoid", "Tanh", None]))
    post = b.node(act, [pre]) if act else pre
    out, n_out = _head(b, post, n, batch_flatten=False)
    one = [1, h, w, c] if nhwc else [1, c, h, w]
    return Built(b.model(x, shape, out, n_out), tuple(one), pre, post, f"dense {kind} nhwc={nhwc}")


@st.composite
def conv_models(draw) -> Built:
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
        t = _normalise(b, t, c, dims + 1 if channels_last else 1, dims + 2)
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
    weight = _weights(rng, (m, c // group, *kernel))
    inputs = [t, b.const(weight)]
    if draw(st.booleans()):
        inputs.append(b.const(rng.normal(size=m).astype(np.float32)))
    pre = b.node("Conv", inputs, **attrs)
    act = draw(st.sampled_from(["Relu", "LeakyRelu", None]))
    post = b.node(act, [pre], **({"alpha": 0.1} if act == "LeakyRelu" else {})) if act else pre
    pooled = b.node("GlobalAveragePool", [post])
    out, n_out = _head(b, pooled, m)
    one = [1, *spatial, c] if channels_last else [1, c, *spatial]
    desc = f"conv{dims}d c={c} m={m} g={group} k={kernel} s={strides} d={dilations} {attrs.get('auto_pad', attrs.get('pads'))} nhwc={channels_last}"
    return Built(b.model("x", shape, out, n_out), tuple(one), pre, post, desc)


def first_layer_models() -> st.SearchStrategy[Built]:
    return st.one_of(dense_models(), conv_models())


def loaded_with_units(built: Built, folder, rng: np.random.Generator, unit_kind: str):
    """(model, first layer, mask units of `unit_kind`: pixel, random window size or random segments)."""
    from smugir.firstlayer import first_layer
    from smugir.model import load_model
    from smugir.units import input_layout, pixel_units, segment_units, window_units

    path = folder / "m.onnx"
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


def exhaustive_minimum(problem) -> tuple[float | None, list[np.ndarray]]:
    """The true minimum and every mask that attains it (None when no mask works)."""
    best, masks = None, []
    for bits in itertools.product([False, True], repeat=problem.n_units):
        mask = np.array(bits)
        if problem.is_satisfied(mask):
            value = problem.objective(mask)
            if best is None or value < best - 1e-12:
                best, masks = value, [mask]
            elif abs(value - best) <= 1e-12:
                masks.append(mask)
    return best, masks


@st.composite
def mask_problems(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 6))
    coefficients = rng.normal(size=(k, n)) * 10.0 ** rng.integers(-3, 3, size=(k, 1))
    bounds = rng.normal(size=k) * np.abs(coefficients).sum(axis=1) * draw(st.sampled_from([0.1, 0.4, 1.2]))
    weights = np.ones(n) if draw(st.booleans()) else rng.integers(1, 4, size=n).astype(float)
    return MaskProblem(coefficients, bounds, weights, {})


@st.composite
def network_problems(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_inputs, n_units = draw(st.integers(2, 6)), draw(st.integers(1, 5))
    widths = [n_inputs, draw(st.integers(1, 5)), draw(st.integers(1, 4)), 3]
    layers = tuple((rng.normal(size=(o, i)), rng.normal(size=o) * 0.3) for i, o in zip(widths, widths[1:]))
    return NetworkMaskProblem(
        base=np.zeros(n_inputs),
        delta=rng.normal(size=n_inputs),
        unit_of=rng.integers(0, n_units, size=n_inputs),
        layers=layers,
        label=int(rng.integers(0, 3)),
        margin=float(draw(st.sampled_from([0.0, 0.1]))),
        weights=np.ones(n_units),
    )
