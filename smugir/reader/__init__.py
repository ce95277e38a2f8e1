"""Read the first layer of an ONNX classifier: from the data input to the first linear layer's activations.

`walk` follows the graph from the data input (a DAG: branches part and join) with one rule per op
(`rules`), tracking for every element of every tensor which raw input element it reads and the
affine map applied to it. The linear op then sees z = scale * x'[index] + shift, folded into the
layer exactly (in float64); per-channel ops after it fold into its weight and bias, and the
activation that follows is read by `rules.activations` (no activation: the neurons are the linear
layer's outputs).
"""

from __future__ import annotations

import weakref

import numpy as np
import onnx
import onnxruntime as ort

from smugir.affine import apply_roundings
from smugir.budget import elements, require
from smugir.errors import UnsupportedModelError

from smugir.folding import SHAPE_OPS, fold_constants
from smugir.layers import ConvLayer, DenseLayer, FirstLayer
from smugir.model import Model, make_session, with_batch_of_one
from smugir.reader.graph import ReaderGraph, node_label
from smugir.reader.rules.activations import read_activation
from smugir.reader.rules.after_linear import Linear, fold_after_linear
from smugir.reader.rules.linear import conv_params, dense_params, fold_dense
from smugir.reader.walk import Reached, walk_to_linear

__all__ = ["first_layer"]

_PER_SAMPLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Model -> its graph folded at batch 1


def _per_sample_proto(model: Model) -> onnx.ModelProto:
    """The graph with batch 1: a dynamic batch may leave shape arithmetic (x.size(0)) that folds at batch 1."""
    if not (model.batch_dynamic and any(n.op_type in SHAPE_OPS for n in model.proto.graph.node)):
        return model.proto
    if model not in _PER_SAMPLE:
        _PER_SAMPLE[model] = fold_constants(with_batch_of_one(model.proto), model.input_name, make_session)[0]
    return _PER_SAMPLE[model]


def first_layer(model: Model) -> FirstLayer:
    """Follow the data input through the supported preprocessing to the first linear layer."""
    graph = ReaderGraph(_per_sample_proto(model), model.opset)
    dtype = onnx.helper.np_dtype_to_tensor_dtype(model.data_input.dtype)
    reached = walk_to_linear(graph, model.input_name, model.input_shape, dtype)
    if reached.affine.roundings and _rounding_error(model, reached) is not None:  # float16 as ONNX defines it, or as onnxruntime runs it
        error = _rounding_error(model, reached := walk_to_linear(graph, model.input_name, model.input_shape, dtype, True))
        if error is not None:
            raise UnsupportedModelError(
                f"the float16 rounding in front of the first layer {node_label(reached.node)!r} is neither what ONNX defines nor "
                f"how onnxruntime {ort.__version__} runs float16 arithmetic in float32 (the reading is {error:.3g} off on a random "
                "input); smugir reads float16 only where one of the two matches onnxruntime exactly"
            )
    return _read_linear(model, graph, reached)


NEURON_BYTES = 64  # per first-layer neuron while it is read: its order, channel and float64 values on x and the baseline
ROUNDING_PROBES = 3
ROUNDING_TOLERANCE = 1e-6  # of the largest |z|: float16's rounding moves values by up to 4.9e-4 of themselves


def _rounding_error(model: Model, reached: Reached) -> float | None:
    """None when the float16 roundings read are the ones onnxruntime computes, on random inputs and
    on inputs with zeroed elements (masked ones); else the largest difference. onnxruntime 1.31 runs
    float16 arithmetic its CPU lacks kernels for in float32 and drops the Cast pairs it inserts, so a
    `Cast(float16) -> Mul` is computed without either rounding ONNX defines: read both ways, checked."""
    rng = np.random.default_rng(0)
    for probe in range(ROUNDING_PROBES):
        x = (rng.normal(size=model.input_shape) * 4 * (rng.random(model.input_shape) < 0.7 if probe else 1)).astype(model.data_input.dtype)
        z = np.asarray(model.run(x, (reached.tensor,))[1], dtype=np.float64)
        read = reached.affine.apply(apply_roundings(reached.affine.roundings, x.astype(np.float64).reshape(-1)))
        error = np.abs(z.reshape(-1) - read.reshape(-1)).max(initial=0.0)
        if not error <= ROUNDING_TOLERANCE * np.abs(z).max(initial=0.0):
            return float(error)
    return None


def _read_linear(model: Model, graph: ReaderGraph, reached: Reached) -> FirstLayer:
    node, affine = reached.node, reached.affine
    if node.op_type == "Conv":
        weight, bias, geometry, affine = conv_params(node, graph, affine)
        grid = geometry.pop("output_shape")
        require(f"the first layer's {elements(grid)} neurons (Conv {node_label(node)!r}, output {list(grid)})", NEURON_BYTES * elements(grid))
        channel_of = np.repeat(np.arange(grid[1]), int(np.prod(grid[2:])))
    else:
        weight, bias = dense_params(node, graph, reached.tensor, affine)
        grid = (1, weight.shape[0]) if node.op_type == "Gemm" else affine.shape[:-1] + (weight.shape[0],)
        channel_of = np.arange(weight.shape[0])
    order = np.arange(int(np.prod(grid)), dtype=np.int64).reshape(grid)
    linear, pre_name, after = fold_after_linear(graph, node, Linear(weight, bias, order, channel_of),
                                                lambda tensor: read_activation(graph, tensor)[0].kind != "none")
    activation, post_name = read_activation(graph, pre_name)
    common = dict(
        input_shape=model.input_shape,
        output_shape=tuple(linear.order.shape),
        activation=activation,
        pre_name=pre_name,
        post_name=post_name,
        linear_node=node_label(node),
        preprocessing=reached.described,
        folded_after=after,
        input_roundings=affine.roundings,
    )
    order = linear.order.reshape(-1)
    in_grid_order = np.array_equal(order, np.arange(order.size))
    if node.op_type != "Conv":
        dense_w, dense_b = fold_dense(linear.weight, linear.bias, affine, int(np.prod(model.input_shape)))
        if not in_grid_order:
            dense_w, dense_b = dense_w[order], dense_b[order]
        return DenseLayer(weight=dense_w, bias=dense_b, **common)
    return ConvLayer(affine=affine, weight=linear.weight, bias=linear.bias, grid=tuple(grid),
                     neuron_order=None if in_grid_order else order, **geometry, **common)
