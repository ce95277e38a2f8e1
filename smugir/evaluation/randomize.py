"""Model randomisation for the sanity checks (Adebayo et al. 2018), on ONNX initializers.

A layer is a linear node (Conv, ConvTranspose, Gemm, MatMul) with its constant weight, plus the
constant bias of an Add that directly follows it (MatMul + Add is how many exporters write a dense
layer). Layers are listed from the logits down. Re-initialisation draws weights Glorot-uniform
(the usual training initialiser) and sets biases to 0; the noise test adds N(0, sigma) to the
weights instead. Every step returns a fresh copy; the original proto is never changed.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from smugir.errors import InputError, UnsupportedModelError
from smugir.model import Model, model_from_proto
from smugir import weights

LINEAR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Layer:
    node: str  # the linear node's name (or its output tensor when it has no name)
    op_type: str
    weight: str  # initializer names
    bias: str | None


def parameter_layers(proto: onnx.ModelProto) -> list[Layer]:
    """The model's layers with constant weights, the one nearest the output first."""
    initializers = {t.name for t in proto.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    layers = []
    for node in proto.graph.node:
        if node.op_type not in LINEAR_OPS:
            continue
        constant = [t for t in node.input[:2] if t in initializers]
        if len(constant) != 1:
            continue
        weight = constant[0]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in initializers else None
        following = readers.get(node.output[0], [])
        if bias is None and len(following) == 1 and following[0].op_type == "Add":
            bias = next((t for t in following[0].input if t in initializers), None)
        layers.append(Layer(node.name or node.output[0], node.op_type, weight, bias))
    if not layers:
        raise UnsupportedModelError("the model has no Conv/Gemm/MatMul node with a constant weight to randomise")
    return layers[::-1]


def _glorot(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Glorot-uniform: limit sqrt(6 / (fan_in + fan_out)); the sum needs no knowledge of which
    axis is the input (Conv: (out, in, k...), MatMul: (in, out), Gemm: either)."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fans = (shape[0] + shape[1]) * receptive if len(shape) >= 2 else 2 * shape[0]
    return rng.uniform(-np.sqrt(6.0 / fans), np.sqrt(6.0 / fans), size=shape)


def randomized(proto: onnx.ModelProto, layers: Sequence[Layer], seed: int = 0,
               noise: float | None = None) -> onnx.ModelProto:
    """A copy with `layers` re-initialised, or with N(0, noise) added to their weights when `noise` is set.

    Each layer draws from its own generator (seed, layer's weight name), so a cascading sequence
    keeps the same random weights in the layers it already randomised.
    """
    if noise is not None and not noise > 0:
        raise InputError(f"the noise standard deviation must be > 0, got {noise}")
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    tensors = {t.name: t for t in copy.graph.initializer}

    def store(name: str, values: np.ndarray) -> None:
        dtype = weights.array(tensors[name]).dtype
        tensors[name].CopyFrom(numpy_helper.from_array(values.astype(dtype), name))

    for layer in layers:
        rng = np.random.default_rng([seed, zlib.crc32(layer.weight.encode())])
        weight = weights.array(tensors[layer.weight]).astype(np.float64)
        if noise is not None:
            store(layer.weight, weight + rng.normal(0.0, noise, size=weight.shape))
        else:
            store(layer.weight, _glorot(weight.shape, rng))
            if layer.bias:
                store(layer.bias, np.zeros(weights.array(tensors[layer.bias]).shape))
    return copy


@dataclass(frozen=True)
class Step:
    """One model of a randomisation sequence: which layers were changed, and the result."""

    mode: str  # "cascading", "independent", or "noise:SIGMA" (cascading)
    index: int  # 0 = the original model
    layers: tuple[str, ...]
    model: Model


def _model(proto: onnx.ModelProto, like: Model) -> Model:
    """A `Model` for a changed proto; its own sha256, so no cache hands back the original's results."""
    digest = hashlib.sha256(proto.SerializeToString()).hexdigest()
    return model_from_proto(proto, like.path, digest)


def parse_mode(mode: str) -> float | None:
    """`cascading` / `independent` -> None; `noise:SIGMA` -> sigma (> 0)."""
    if mode in ("cascading", "independent"):
        return None
    if mode.startswith("noise:"):
        try:
            sigma = float(mode[6:])
        except ValueError:
            sigma = float("nan")
        if sigma > 0:
            return sigma
    raise InputError(f"unknown randomisation {mode!r}; accepted: cascading, independent, noise:SIGMA with SIGMA > 0")


def steps(model: Model, mode: str, seed: int = 0, max_steps: int | None = None) -> Iterator[Step]:
    """The original model, then one model per layer: `cascading` (re-initialised from the logits
    down, cumulatively), `independent` (one layer at a time), or `noise:SIGMA` (N(0, SIGMA) added
    to the weights, cascading). Models are built one at a time, as they are consumed.

    `max_steps` keeps that many of them, evenly spread and always with the last (every layer, or
    the layer nearest the input): a 50-layer network is checked at a few depths, not at each."""
    noise = parse_mode(mode)
    layers = parameter_layers(model.proto)
    if max_steps is not None and int(max_steps) < 1:
        raise InputError(f"the number of randomisation steps must be >= 1, got {max_steps}")
    chosen_steps = range(1, len(layers) + 1) if max_steps is None else \
        sorted({int(k) for k in np.linspace(1, len(layers), int(max_steps) + 1)[1:].round()})
    yield Step(mode, 0, (), model)
    for k in chosen_steps:
        chosen = [layers[k - 1]] if mode == "independent" else layers[:k]
        yield Step(mode, k, tuple(layer.node for layer in chosen), _model(randomized(model.proto, chosen, seed, noise), model))
