"""The first-layer IR: raw model input x -> first linear layer's pre-activations, pre = L(x) + c.

The walk from the data input to the first linear operator tracks, for every element of the current
tensor, which raw input element it comes from and the affine map applied to it (`InputAffine`).
Layout ops (Reshape, Transpose, ...) move those arrays around with numpy; elementwise ops with
constants update the scale and shift. The linear op then sees z = scale * x[index] + shift, which
is folded into the layer exactly (in float64). A constant-mode Pad adds elements that read no input
(their value is carried in the shift); a zero border in front of a Conv becomes the conv's padding.
Per-channel ops after the linear op (BatchNormalization, a bias) fold into its weight and bias, and
the activation that follows is read by a table of rules. Convolutions stay structured (kernel +
geometry), so a 224x224x3 input under a 7x7/2 conv with 64 filters costs a few MB, not a dense matrix.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from smugir.activations import Activation
from smugir.budget import elements, require
from smugir.convolution import conv_window, node_attributes
from smugir.errors import InputError, UnsupportedModelError, UnsupportedOpError
from smugir.folding import SHAPE_OPS, fold_constants
from smugir.model import Model, make_session, with_batch_of_one

LINEAR_OPS = ("Gemm", "MatMul", "Conv")
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
CONSTANT_ELEMENT = -1  # InputAffine.index of an element that reads no input (a Pad's value)


@dataclass(frozen=True)
class InputAffine:
    """z = scale * x.flat[index] + shift, elementwise; all three arrays have z's shape.

    An element with index `CONSTANT_ELEMENT` reads no input (scale 0): it is z = shift, e.g. a value
    a `Pad` wrote, carried through later elementwise ops exactly.
    """

    index: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    def apply(self, x_flat: np.ndarray) -> np.ndarray:
        """z for raw inputs of shape (..., n_inputs): leading axes are a batch."""
        if self.index.min(initial=0) >= 0:
            return self.scale * x_flat[..., self.index] + self.shift
        reads = self.index >= 0
        taken = x_flat[..., np.where(reads, self.index, 0)]
        return np.where(reads, self.scale * taken, 0.0) + self.shift

    def layout(self, fn: Callable[[np.ndarray], np.ndarray]) -> InputAffine:
        return InputAffine(fn(self.index), fn(self.scale), fn(self.shift))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.index.shape)


@dataclass(frozen=True)
class NeuronTerms:
    """pre_i(x) = coefficients @ x.flat[field] + constant; `field` is sorted and every coefficient != 0."""

    field: np.ndarray
    coefficients: np.ndarray
    constant: float


@dataclass(frozen=True)
class ReceptiveFields:
    """The terms of several neurons at once, row by row in CSR form (one row per neuron asked for).

    Row r is pre(x) = coefficients[s] @ x.flat[field[s]] + constants[r] with s = indptr[r]:indptr[r+1];
    fields are sorted within a row and every coefficient is != 0. Its size is the total receptive
    field size, never neurons x inputs: this is what keeps conv problems sparse.
    """

    indptr: np.ndarray  # (n_rows + 1,) int64
    field: np.ndarray  # (nnz,) int64: raw input elements
    coefficients: np.ndarray  # (nnz,) float64
    constants: np.ndarray  # (n_rows,) float64

    @property
    def n_rows(self) -> int:
        return int(self.constants.size)

    def rows(self) -> np.ndarray:
        """The row of every entry, (nnz,) int64."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))

    def neuron(self, row: int) -> NeuronTerms:
        span = slice(int(self.indptr[row]), int(self.indptr[row + 1]))
        return NeuronTerms(self.field[span], self.coefficients[span], float(self.constants[row]))

    def values(self, x_flat: np.ndarray) -> np.ndarray:
        """Each row's pre-activation on a flat float64 input, (n_rows,)."""
        products = self.coefficients * np.asarray(x_flat, dtype=np.float64)[self.field]
        return np.bincount(self.rows(), products, minlength=self.n_rows) + self.constants


def _merged_fields(rows: np.ndarray, field: np.ndarray, coefficients: np.ndarray, constants: np.ndarray) -> ReceptiveFields:
    """CSR rows from (row, element, coefficient) triples: repeated elements summed, zeros dropped."""
    n_rows = constants.size
    order = np.lexsort((field, rows))
    rows, field, coefficients = rows[order], field[order], coefficients[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(rows) != 0) | (np.diff(field) != 0)]) if rows.size else np.zeros(0, np.int64)
    merged = np.add.reduceat(coefficients, starts) if rows.size else np.zeros(0)
    rows, field = rows[starts], field[starts]
    keep = merged != 0
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=n_rows))].astype(np.int64)
    return ReceptiveFields(indptr, field[keep].astype(np.int64), merged[keep].astype(np.float64), constants.astype(np.float64))


@dataclass(frozen=True)
class FirstLayer:
    """What every first layer answers; `DenseLayer` and `ConvLayer` fill it in."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]  # the pre-activation tensor's shape, batch dim included
    activation: Activation
    pre_name: str
    post_name: str
    linear_node: str
    preprocessing: tuple[str, ...]
    folded_after: tuple[str, ...] = ()  # per-channel ops after the linear op folded into it (BatchNormalization, ...)

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def preactivations(self, x: np.ndarray) -> np.ndarray:
        """All pre-activations, flat (n_neurons,), in float64; a leading batch axis is kept."""
        raise NotImplementedError

    def activations(self, x: np.ndarray) -> np.ndarray:
        return self.activation(self.preactivations(x))

    def neuron(self, i: int) -> NeuronTerms:
        return self.fields(np.array([_check_neuron(self, i)])).neuron(0)

    def fields(self, neurons: np.ndarray) -> ReceptiveFields:
        """The terms of these neurons, in one vectorised pass (see `ReceptiveFields`)."""
        raise NotImplementedError

    def receptive_field(self, i: int) -> np.ndarray:
        return self.neuron(i).field

    def receptive_field_size(self) -> int:
        """The largest receptive field over all neurons."""
        raise NotImplementedError

    def geometry(self) -> dict:
        raise NotImplementedError

    def _flat(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        n = self.n_inputs
        if x.size == n:
            return x.reshape(n)
        if x.ndim >= 1 and x.size % n == 0 and int(np.prod(x.shape[1:])) == n:
            return x.reshape(x.shape[0], n)
        raise InputError(
            f"input of shape {tuple(x.shape)} does not fit the model input {self.input_shape} "
            f"({n} elements per sample)"
        )

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "node": self.linear_node,
            "neurons": self.n_neurons,
            "output_shape": list(self.output_shape),
            "receptive_field_size": self.receptive_field_size(),
            "activation": self.activation.label,
            "folded_into_layer": list(self.folded_after),
            "pre_activation_tensor": self.pre_name,
            "post_activation_tensor": self.post_name,
            "geometry": self.geometry(),
        }


@dataclass(frozen=True)
class DenseLayer(FirstLayer):
    """pre = weight @ x.flat + bias, with the preprocessing already folded into weight and bias."""

    weight: np.ndarray = field(default=None, repr=False)  # (n_neurons, n_inputs) float64
    bias: np.ndarray = field(default=None, repr=False)  # (n_neurons,) float64

    @property
    def kind(self) -> str:
        return "dense"

    def preactivations(self, x: np.ndarray) -> np.ndarray:
        return self._flat(x) @ self.weight.T + self.bias

    def fields(self, neurons: np.ndarray) -> ReceptiveFields:
        neurons = _check_neurons(self, neurons)
        rows, field = np.nonzero(self.weight[neurons])
        return _merged_fields(rows, field, self.weight[neurons[rows], field], self.bias[neurons])

    def receptive_field_size(self) -> int:
        return int(np.count_nonzero(self.weight, axis=1).max(initial=0))

    def geometry(self) -> dict:
        return {"in_features": self.n_inputs, "out_features": self.n_neurons}


@dataclass(frozen=True)
class ConvLayer(FirstLayer):
    """An N-D (1-D or 2-D) convolution over z = affine(x); padding is zero in z space, as in ONNX."""

    affine: InputAffine = field(default=None, repr=False)  # z = affine(x), shape (1, C, *spatial)
    weight: np.ndarray = field(default=None, repr=False)  # (M, C/group, *kernel) float64
    bias: np.ndarray = field(default=None, repr=False)  # (M,) float64
    strides: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    pads_begin: tuple[int, ...] = ()
    pads_end: tuple[int, ...] = ()
    group: int = 1

    @property
    def kind(self) -> str:
        return f"conv{len(self.strides)}d"

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(self.output_shape[2:])

    def fields(self, neurons: np.ndarray) -> ReceptiveFields:
        """Every tap of every neuron at once: arrays of (neurons, channels per group, kernel taps)."""
        neurons = _check_neurons(self, neurons)
        m, *out_pos = np.unravel_index(neurons, self.output_shape[1:])
        m_total, c_per_group = self.weight.shape[:2]
        taps = np.indices(self.kernel).reshape(len(self.kernel), -1)  # (n_axes, n_taps)
        positions = [o[:, None] * s - p + t[None, :] * d for o, s, p, t, d in zip(out_pos, self.strides, self.pads_begin, taps, self.dilations)]
        inside = np.ones(positions[0].shape, dtype=bool)  # (n, n_taps): taps outside are zero padding
        for pos, size in zip(positions, self.affine.shape[2:]):
            inside &= (pos >= 0) & (pos < size)
        channels = (m // (m_total // self.group))[:, None] * c_per_group + np.arange(c_per_group)  # (n, C/g)
        z_index = (0, channels[:, :, None], *[np.where(inside, pos, 0)[:, None, :] for pos in positions])
        weights = self.weight.reshape(m_total, c_per_group, -1)[m] * inside[:, None, :]  # (n, C/g, n_taps)
        constants = self.bias[m] + np.einsum("nct,nct->n", weights, self.affine.shift[z_index])
        live = np.broadcast_to(inside[:, None, :], weights.shape)
        rows = np.broadcast_to(np.arange(neurons.size)[:, None, None], weights.shape)[live]
        raw_index = self.affine.index[z_index][live]
        return _merged_fields(rows, raw_index, (weights * self.affine.scale[z_index])[live], constants)

    def preactivations(self, x: np.ndarray) -> np.ndarray:
        flat = self._flat(x)
        batch = flat.shape[:-1]
        z = self.affine.apply(flat).reshape(batch + self.affine.shape[1:])  # (*batch, C, *spatial)
        pad_width = [(0, 0)] * (len(batch) + 1) + list(zip(self.pads_begin, self.pads_end))
        z = np.pad(z, pad_width)
        windows = _sliding_windows(z, self.kernel, self.strides, self.dilations, self.out_spatial)
        # windows: (*batch, C, *out_spatial, *kernel)
        groups, m_total = self.group, self.weight.shape[0]
        c_per_group = self.weight.shape[1]
        outs = []
        nk = len(self.kernel)
        letters = "hwdv"[:nk]
        klet = "klmn"[:nk]
        for g in range(groups):
            wg = self.weight[g * (m_total // groups) : (g + 1) * (m_total // groups)]
            xg = windows[(Ellipsis, slice(g * c_per_group, (g + 1) * c_per_group)) + (slice(None),) * (2 * nk)]
            outs.append(np.einsum(f"...c{letters}{klet},oc{klet}->...o{letters}", xg, wg, optimize=True))
        pre = np.concatenate(outs, axis=-1 - nk) + self.bias.reshape((-1,) + (1,) * nk)
        return pre.reshape(batch + (self.n_neurons,))

    def receptive_field_size(self) -> int:
        """Channels per group times the kernel taps of an interior neuron (or the largest seen)."""
        centre = tuple(s // 2 for s in self.out_spatial)
        centre_index = int(np.ravel_multi_index((0, *centre), self.output_shape[1:]))
        return int(self.neuron(centre_index).field.size)

    def geometry(self) -> dict:
        return {
            "in_channels": int(self.affine.shape[1]),
            "in_spatial": list(self.affine.shape[2:]),
            "out_channels": int(self.weight.shape[0]),
            "out_spatial": list(self.out_spatial),
            "kernel": list(self.kernel),
            "strides": list(self.strides),
            "dilations": list(self.dilations),
            "pads_begin": list(self.pads_begin),
            "pads_end": list(self.pads_end),
            "group": self.group,
        }


def _sliding_windows(z, kernel, strides, dilations, out_spatial) -> np.ndarray:
    """View (*lead, C, *out_spatial, *kernel) of the padded input, without copying."""
    nk = len(kernel)
    lead = z.ndim - nk
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = np.lib.stride_tricks.sliding_window_view(z, span, axis=tuple(range(lead, z.ndim)))
    selector = [slice(None)] * lead
    selector += [slice(0, (o - 1) * s + 1, s) for o, s in zip(out_spatial, strides)]
    selector += [slice(None, None, d) for d in dilations]
    return view[tuple(selector)]


def _check_neuron(layer: FirstLayer, i: int) -> int:
    if not 0 <= int(i) < layer.n_neurons:
        raise InputError(f"neuron index {i} is out of range: the first layer has {layer.n_neurons} neurons")
    return int(i)


def _check_neurons(layer: FirstLayer, neurons: np.ndarray) -> np.ndarray:
    neurons = np.asarray(neurons, dtype=np.int64).reshape(-1)
    outside = neurons[(neurons < 0) | (neurons >= layer.n_neurons)]
    if outside.size:
        _check_neuron(layer, int(outside[0]))
    return neurons


# --------------------------------------------------------------------------------------------------
# Reading the graph. Like onnx.reference (one class per op), the reader is a table of op rules:
# PREPROCESSING_RULES map z = affine(x) through an op in front of the linear layer, AFTER_LINEAR_RULES
# fold a per-channel affine op (BatchNormalization, a bias Add, ...) into the layer, and
# ACTIVATION_RULES read the activation that follows.


class _Graph:
    """Constant lookup and consumer lists for the walk from the data input."""

    def __init__(self, proto: onnx.ModelProto, opset: int):
        graph = proto.graph
        self.opset = opset
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = _constant_node_value(node)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in dict.fromkeys(node.input):
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}

    def constant(self, name: str, node: onnx.NodeProto, role: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        raise UnsupportedModelError(
            f"node {_node_label(node)!r} ({node.op_type}) takes its {role} from {name!r}, which is only known at run "
            "time; smugir needs it to be a constant (initializer, Constant node or a subgraph of constants whose size "
            "is known before it runs)"
        )

    def optional_constant(self, node: onnx.NodeProto, position: int, role: str) -> np.ndarray | None:
        """The constant at an optional input position, or None when the input is absent or empty."""
        if len(node.input) > position and node.input[position]:
            return self.constant(node.input[position], node, role)
        return None

    def sole_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The one node reading `tensor`, if exactly one does and it is not a graph output."""
        consumers = self.consumers.get(tensor, [])
        return consumers[0] if len(consumers) == 1 and tensor not in self.outputs else None

    def only_consumer(self, tensor: str, what: str) -> onnx.NodeProto:
        consumers = self.consumers.get(tensor, [])
        if tensor in self.outputs or len(consumers) != 1:
            if not consumers or tensor in self.outputs:
                raise UnsupportedModelError(f"{what} {tensor!r} reaches the model output before any linear layer ({', '.join(LINEAR_OPS)})")
            names = ", ".join(f"{n.name!r} ({n.op_type})" for n in consumers)
            raise UnsupportedModelError(
                f"{what} {tensor!r} is read by {len(consumers)} nodes ({names}); smugir needs a single chain "
                "from the data input to the first linear layer, whose other operands (pads, shapes, scales) can be "
                "computed without the data"
            )
        return consumers[0]


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.array(onnx.helper.get_attribute_value(attr))
        if attr.name in ("value_floats", "value_ints"):
            return np.array(list(onnx.helper.get_attribute_value(attr)))
    raise UnsupportedModelError(f"Constant node {node.name!r} has no tensor, float or int value smugir can read")


def _node_label(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}->{node.output[0]}"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


AFFINE_BYTES = 24  # per input element: the int64 index, float64 scale and shift of `InputAffine`


def _check_elements(node: onnx.NodeProto, shape: tuple[int, ...]) -> None:
    """The walk keeps three float64/int64 arrays of z's shape: refuse a shape that would not fit the budget."""
    require(f"the first layer's map of the input after node {_node_label(node)!r} ({node.op_type}) {list(shape)}",
            AFFINE_BYTES * elements(shape))


@dataclass(frozen=True)
class _Step:
    """One node on the chain from the data input: `tensor` is the input the walk follows, z = affine(x)."""

    node: onnx.NodeProto
    graph: _Graph
    tensor: str
    affine: InputAffine

    @property
    def attrs(self) -> dict:
        return node_attributes(self.node)

    @property
    def label(self) -> str:
        return _node_label(self.node)


PreprocessingRule = Callable[[_Step], tuple[InputAffine, str]]  # -> (affine after the op, how inspect names it)


def _identity(step: _Step) -> tuple[InputAffine, str]:
    return step.affine, step.node.op_type


def _cast(step: _Step) -> tuple[InputAffine, str]:
    to = step.attrs.get("to")
    if to not in FLOAT_TYPES:
        raise UnsupportedModelError(
            f"node {step.label!r} casts the input to a non-float type ({to}); smugir folds only casts between float types"
        )
    return step.affine, "Cast"


def _flatten(step: _Step) -> tuple[InputAffine, str]:
    shape = step.affine.shape
    axis = step.attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    outer = int(np.prod(shape[:axis]))
    return step.affine.layout(lambda a: a.reshape(outer, -1)), "Flatten"


def _reshape(step: _Step) -> tuple[InputAffine, str]:
    shape = step.affine.shape
    target = [int(v) for v in step.graph.constant(step.node.input[1], step.node, "target shape")]
    if not step.attrs.get("allowzero", 0):
        target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
    try:
        return step.affine.layout(lambda a: a.reshape(target)), "Reshape"
    except ValueError:
        raise UnsupportedModelError(f"Reshape node {step.label!r} cannot reshape {list(shape)} to {target}") from None


def _squeeze_unsqueeze(step: _Step) -> tuple[InputAffine, str]:
    node, shape = step.node, step.affine.shape
    if step.graph.opset >= 13 and len(node.input) > 1:
        axes = [int(v) for v in step.graph.constant(node.input[1], node, "axes")]
    else:
        axes = list(step.attrs.get("axes", []))
    if node.op_type == "Squeeze":
        axes = axes or [i for i, s in enumerate(shape) if s == 1]
        return step.affine.layout(lambda a: np.squeeze(a, axis=tuple(ax % len(shape) for ax in axes))), "Squeeze"
    rank = len(shape) + len(axes)
    return step.affine.layout(lambda a: np.expand_dims(a, tuple(ax % rank for ax in axes))), "Unsqueeze"


def _transpose(step: _Step) -> tuple[InputAffine, str]:
    perm = step.attrs.get("perm") or list(range(len(step.affine.shape)))[::-1]
    return step.affine.layout(lambda a: np.ascontiguousarray(np.transpose(a, perm))), "Transpose"


def _elementwise(step: _Step) -> tuple[InputAffine, str]:
    """The affine map after `z op c` (or `c op z`)."""
    node, op, affine = step.node, step.node.op_type, step.affine
    position = list(node.input).index(step.tensor)
    if node.input[0] == node.input[1]:
        raise UnsupportedModelError(f"node {step.label!r} ({op}) combines the input with itself; not affine")
    raw = step.graph.constant(node.input[1 - position], node, "second operand")
    const = raw.astype(np.float64)
    _check_elements(node, np.broadcast_shapes(affine.shape, const.shape))
    index, scale, shift = np.broadcast_arrays(affine.index, affine.scale, affine.shift, const)[:3]
    const = np.broadcast_to(const, index.shape)
    if op == "Add":
        shift = shift + const
    elif op == "Sub":
        scale, shift = (scale, shift - const) if position == 0 else (-scale, const - shift)
    elif op == "Mul":
        scale, shift = scale * const, shift * const
    elif position == 0:  # Div by a constant
        if np.any(const == 0):
            raise UnsupportedModelError(f"Div node {step.label!r} divides by a constant that contains 0")
        scale, shift = scale / const, shift / const
    else:
        raise UnsupportedModelError(
            f"Div node {step.label!r} divides a constant by the input, which is not affine; "
            "smugir folds only division of the input by a constant"
        )
    folded = InputAffine(np.ascontiguousarray(index), np.ascontiguousarray(scale), np.ascontiguousarray(shift))
    return folded, f"{op} {_short(raw)}"


def _pad(step: _Step) -> tuple[InputAffine, str]:
    """Constant-mode Pad: padded elements read no input and hold the pad value in the tensor Pad sees.

    Later elementwise ops (a normalisation after the Pad) carry that value exactly; at a Conv, a
    border that is 0 in z becomes the conv's own zero padding (`_zero_border_as_padding`).
    """
    node, attrs, graph, affine = step.node, step.attrs, step.graph, step.affine
    mode = _text(attrs.get("mode", "constant"))
    if mode != "constant":
        raise UnsupportedModelError(
            f"Pad node {step.label!r} pads in mode {mode!r}; smugir reads only constant-mode padding in front of "
            "the first linear layer"
        )
    rank = len(affine.shape)
    if graph.opset < 11:
        pads, value, axes = list(attrs.get("pads", [])), float(attrs.get("value", 0.0)), list(range(rank))
    else:
        pads = [int(v) for v in np.ravel(graph.constant(node.input[1], node, "pads"))]
        constant_value = graph.optional_constant(node, 2, "pad value")
        value = 0.0 if constant_value is None else float(np.ravel(constant_value)[0]) if np.size(constant_value) == 1 else None
        axes_value = graph.optional_constant(node, 3, "axes")
        axes = list(range(rank)) if axes_value is None else [int(a) % rank for a in np.ravel(axes_value)]
        if value is None:
            raise UnsupportedModelError(f"Pad node {step.label!r} has a pad value that is not a scalar")
    if len(pads) != 2 * len(axes):
        raise UnsupportedModelError(f"Pad node {step.label!r} gives {len(pads)} pads for {len(axes)} axes of a {list(affine.shape)} input")
    begin, end = [0] * rank, [0] * rank
    for k, axis in enumerate(axes):
        begin[axis], end[axis] = pads[k], pads[k + len(axes)]
    crop = tuple(slice(max(0, -b), s - max(0, -e)) for b, e, s in zip(begin, end, affine.shape))
    affine = affine.layout(lambda a: a[crop])
    if min(affine.shape, default=1) < 1:
        raise UnsupportedModelError(f"Pad node {step.label!r} crops the input {list(step.affine.shape)} to nothing")
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    _check_elements(node, tuple(s + b + e for s, (b, e) in zip(affine.shape, width)))
    padded = InputAffine(
        np.pad(affine.index, width, constant_values=CONSTANT_ELEMENT),
        np.pad(affine.scale, width, constant_values=0.0),
        np.pad(affine.shift, width, constant_values=value),
    )
    return padded, f"Pad {pads} value {value:g}"


PREPROCESSING_RULES: dict[str, PreprocessingRule] = {
    "Identity": _identity,
    "Cast": _cast,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze_unsqueeze,
    "Unsqueeze": _squeeze_unsqueeze,
    "Transpose": _transpose,
    "Sub": _elementwise,
    "Add": _elementwise,
    "Mul": _elementwise,
    "Div": _elementwise,
    "Pad": _pad,
}


def _short(constant: np.ndarray) -> str:
    """A constant as `smug inspect` shows it: its values when there are few, else its shape."""
    values = np.asarray(constant, dtype=np.float64)
    if values.size == 1:
        return f"{values.item():.6g}"
    if values.size <= 4:
        return "[" + ", ".join(f"{v:.6g}" for v in values.ravel()) + "]"
    return f"<constant of shape {list(values.shape)}>"


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
    graph = _Graph(_per_sample_proto(model), model.opset)
    shape = model.input_shape
    _check_elements(onnx.NodeProto(name=model.input_name, op_type="input"), shape)
    affine = InputAffine(
        np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape),
        np.ones(shape),
        np.zeros(shape),
    )
    described: list[str] = []
    tensor = model.input_name
    while True:
        node = graph.only_consumer(tensor, "tensor")
        if node.op_type in LINEAR_OPS:
            return _read_linear(model, graph, node, tensor, affine, tuple(described))
        rule = PREPROCESSING_RULES.get(node.op_type)
        if rule is None:
            first = tensor == model.input_name
            where = "right after the data input" if first else "between the data input and the first linear layer"
            raise UnsupportedOpError(_node_label(node), node.op_type, where, tuple(PREPROCESSING_RULES) + LINEAR_OPS)
        affine, label = rule(_Step(node, graph, tensor, affine))
        described.append(f"{label} ({_node_label(node)}) -> {list(affine.shape)}")
        tensor = node.output[0]


def _read_linear(model, graph, node, tensor, affine, described) -> FirstLayer:
    if node.op_type == "Conv":
        weight, bias, geometry, affine = _conv_params(node, graph, affine)
        channel_axis, out_shape = 1, geometry["output_shape"]
    else:
        weight, bias = _dense_params(node, graph, tensor, affine)
        channel_axis = -1
        out_shape = (1, weight.shape[0]) if node.op_type == "Gemm" else affine.shape[:-1] + (weight.shape[0],)
    weight, bias, pre_name, after = _fold_after_linear(graph, node, weight, bias, out_shape, channel_axis)
    activation, post_name = _activation_after(graph, pre_name)
    common = dict(
        input_shape=model.input_shape,
        activation=activation,
        pre_name=pre_name,
        post_name=post_name,
        linear_node=_node_label(node),
        preprocessing=described,
        folded_after=after,
    )
    if node.op_type != "Conv":
        dense_w, dense_b = _fold_dense(weight, bias, affine, int(np.prod(model.input_shape)))
        return DenseLayer(output_shape=out_shape, weight=dense_w, bias=dense_b, **common)
    return ConvLayer(affine=affine, weight=weight, bias=bias, **geometry, **common)


def _dense_params(node, graph, tensor, affine):
    """(W (N, K), b (N,)) of a Gemm or MatMul; a bias Add after a MatMul is folded by AFTER_LINEAR_RULES."""
    shape = affine.shape
    if node.op_type == "Gemm":
        attrs = node_attributes(node)
        if node.input[0] != tensor:
            raise UnsupportedModelError(f"Gemm node {_node_label(node)!r} takes the input as its B operand; smugir needs it as A")
        b_mat = graph.constant(node.input[1], node, "weight B").astype(np.float64)
        b_mat = b_mat.T if attrs.get("transB", 0) else b_mat  # (K, N)
        if len(shape) != 2 or (shape[1] if attrs.get("transA", 0) else shape[0]) != 1:
            raise UnsupportedModelError(f"Gemm node {_node_label(node)!r} gets an input of shape {list(shape)}; smugir needs one sample (one row)")
        _check_features(node, b_mat.shape[0], shape)
        weight = attrs.get("alpha", 1.0) * b_mat.T
        bias = np.zeros(weight.shape[0])
        c = graph.optional_constant(node, 2, "bias C")
        if c is not None:
            c = c.astype(np.float64)
            if np.broadcast_shapes(c.shape, (1, weight.shape[0])) != (1, weight.shape[0]):
                raise UnsupportedModelError(f"Gemm node {_node_label(node)!r} has a bias C of shape {list(c.shape)}; one row of {weight.shape[0]} needs (N,) or (1, N)")
            bias = attrs.get("beta", 1.0) * np.broadcast_to(c, (1, weight.shape[0]))[0]
        return weight, bias
    if node.input[0] != tensor:
        raise UnsupportedModelError(f"MatMul node {_node_label(node)!r} takes the input as its right operand; smugir needs it on the left")
    b_mat = graph.constant(node.input[1], node, "weight").astype(np.float64)
    if b_mat.ndim != 2 or int(np.prod(shape[:-1])) != 1:
        raise UnsupportedModelError(
            f"MatMul node {_node_label(node)!r} multiplies {list(shape)} by {list(b_mat.shape)}; smugir needs one row times a 2-D weight"
        )
    _check_features(node, b_mat.shape[0], shape)
    return b_mat.T, np.zeros(b_mat.shape[1])


def _check_features(node: onnx.NodeProto, k: int, shape: tuple[int, ...]) -> None:
    if k != int(np.prod(shape)):
        raise UnsupportedModelError(
            f"{node.op_type} node {_node_label(node)!r} has a weight for {k} input features but receives {list(shape)}"
        )


def _fold_dense(weight: np.ndarray, bias: np.ndarray, affine: InputAffine, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """W_raw[:, index[k]] += W[:, k] * scale[k]; b_raw = b + W @ shift (constant elements add only to b)."""
    index, scale, shift = (a.reshape(-1) for a in (affine.index, affine.scale, affine.shift))
    require(f"the folded first-layer weight ({weight.shape[0]} x {n_inputs}, float64)", 16 * weight.shape[0] * n_inputs)
    folded = np.zeros((weight.shape[0], n_inputs))
    if np.array_equal(index, np.arange(index.size)):
        folded[:, : index.size] = weight * scale
    else:
        reads = index >= 0
        np.add.at(folded.T, index[reads], (weight[:, reads] * scale[reads]).T)
    return folded, bias + weight @ shift


def _conv_params(node, graph, affine):
    attrs = node_attributes(node)
    shape = affine.shape
    weight = graph.constant(node.input[1], node, "weight").astype(np.float64)
    nk = weight.ndim - 2
    if nk not in (1, 2) or len(shape) != nk + 2 or shape[0] != 1:
        raise UnsupportedModelError(
            f"Conv node {_node_label(node)!r} is {nk}-D on an input of shape {list(shape)}; smugir reads 1-D and 2-D convolutions of one sample"
        )
    group = int(attrs.get("group", 1))
    if shape[1] != weight.shape[1] * group or weight.shape[0] % group:
        raise UnsupportedModelError(f"Conv node {_node_label(node)!r}: weight {list(weight.shape)} and group {group} do not fit {shape[1]} input channels")
    window = conv_window(node, weight.shape, shape[2:])
    out_spatial = window.output_spatial(shape[2:])
    if min(out_spatial) < 1:
        raise UnsupportedModelError(f"Conv node {_node_label(node)!r} produces an empty output from {list(shape[2:])}")
    affine, extra_begin, extra_end = _zero_border_as_padding(affine)
    bias = np.zeros(weight.shape[0])
    conv_bias = graph.optional_constant(node, 2, "bias")
    if conv_bias is not None:
        bias = conv_bias.astype(np.float64)
    geometry = dict(
        output_shape=(1, weight.shape[0], *out_spatial),
        strides=tuple(window.strides),
        dilations=tuple(window.dilations),
        pads_begin=tuple(p + e for p, e in zip(window.pads_begin, extra_begin)),
        pads_end=tuple(p + e for p, e in zip(window.pads_end, extra_end)),
        group=group,
    )
    return weight, bias, geometry, affine


def _zero_border_as_padding(affine: InputAffine) -> tuple[InputAffine, list[int], list[int]]:
    """Strip spatial border slabs that are constant 0 in z: a conv pads them itself (exactly the same)."""
    rank = len(affine.shape)
    begin, end = [0] * (rank - 2), [0] * (rank - 2)
    if affine.index.min(initial=0) >= 0:
        return affine, begin, end
    for k, axis in enumerate(range(2, rank)):
        zero = (affine.index == CONSTANT_ELEMENT) & (affine.shift == 0)
        slab = zero.all(axis=tuple(a for a in range(rank) if a != axis))
        size = slab.size
        lead = int(np.argmin(slab)) if not slab.all() else size - 1
        trail = int(np.argmin(slab[::-1])) if not slab.all() else 0
        begin[k], end[k] = lead, trail
        keep = [slice(None)] * rank
        keep[axis] = slice(lead, size - trail)
        affine = affine.layout(lambda a: a[tuple(keep)])
    return affine, begin, end


# --------------------------------------------------------------------------------------------------
# After the linear op: per-channel affine ops folded into weight and bias (exactly, in float64).

AfterLinearRule = Callable[[_Graph, onnx.NodeProto, str, np.ndarray, np.ndarray, tuple, int], "tuple[np.ndarray, np.ndarray, str] | None"]


def _per_channel(value: np.ndarray, out_shape: tuple[int, ...], channel_axis: int) -> np.ndarray | None:
    """The constant as one value per output channel, or None if it varies otherwise or reshapes the output."""
    value = np.asarray(value, dtype=np.float64)
    try:
        if np.broadcast_shapes(value.shape, out_shape) != tuple(out_shape):
            return None
    except ValueError:
        return None
    full = np.moveaxis(np.broadcast_to(value, out_shape), channel_axis, 0).reshape(out_shape[channel_axis], -1)
    if not np.all(full == full[:, :1]):
        return None
    return full[:, 0].copy()


def _scale_rows(weight: np.ndarray, factor: np.ndarray) -> np.ndarray:
    return weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))


def _after_arithmetic(graph, node, pre, weight, bias, out_shape, channel_axis):
    """pre + c, pre - c, c - pre, pre * c, pre / c with c one constant per output channel."""
    if len(node.input) != 2 or node.input[0] == node.input[1]:
        return None
    other = node.input[1] if node.input[0] == pre else node.input[0]
    if other not in graph.constants:
        return None
    c = _per_channel(graph.constants[other], out_shape, channel_axis)
    if c is None:
        return None
    op, first = node.op_type, node.input[0] == pre
    if op == "Add":
        return weight, bias + c, f"Add {_short(graph.constants[other])}"
    if op == "Sub":
        return (weight, bias - c, "Sub") if first else (-weight, c - bias, "Sub (from a constant)")
    if op == "Mul":
        return _scale_rows(weight, c), bias * c, f"Mul {_short(graph.constants[other])}"
    if op == "Div" and first and np.all(c != 0):
        return _scale_rows(weight, 1.0 / c), bias / c, f"Div {_short(graph.constants[other])}"
    return None


def _after_batch_norm(graph, node, pre, weight, bias, out_shape, channel_axis):
    """Inference BatchNormalization: y = (pre - mean) / sqrt(var + eps) * scale + B, per channel."""
    attrs = node_attributes(node)
    if node.input[0] != pre or attrs.get("training_mode", 0) or any(node.output[1:]) or channel_axis % len(out_shape) != 1:
        return None
    if not all(name in graph.constants for name in node.input[1:5]):
        return None
    scale, b, mean, var = (np.ravel(graph.constants[n]).astype(np.float64) for n in node.input[1:5])
    if not all(v.size == out_shape[1] for v in (scale, b, mean, var)):
        return None
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    return _scale_rows(weight, factor), (bias - mean) * factor + b, "BatchNormalization"


AFTER_LINEAR_RULES: dict[str, AfterLinearRule] = {
    "Add": _after_arithmetic,
    "Sub": _after_arithmetic,
    "Mul": _after_arithmetic,
    "Div": _after_arithmetic,
    "BatchNormalization": _after_batch_norm,
}


def _fold_after_linear(graph, linear, weight, bias, out_shape, channel_axis):
    """Fold the per-channel affine ops that follow the linear op; the pre-activation is the last one's output."""
    pre, after = linear.output[0], []
    while (node := graph.sole_consumer(pre)) is not None and node.op_type in AFTER_LINEAR_RULES:
        folded = AFTER_LINEAR_RULES[node.op_type](graph, node, pre, weight, bias, tuple(out_shape), channel_axis)
        if folded is None:
            break
        weight, bias, label = folded
        after.append(f"{label} ({_node_label(node)})")
        pre = node.output[0]
    return weight, bias, pre, tuple(after)


# --------------------------------------------------------------------------------------------------
# The activation: one rule per op that reads the pre-activation.

ActivationRule = Callable[[_Graph, onnx.NodeProto], Activation]


def _clip_bounds(graph: _Graph, node: onnx.NodeProto) -> Activation:
    """Clip's min/max: attributes before opset 11, optional (possibly empty) inputs from opset 11."""
    if graph.opset < 11:
        attrs = node_attributes(node)
        low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        bounds = [graph.optional_constant(node, k, role) for k, role in ((1, "minimum"), (2, "maximum"))]
        for value, role in zip(bounds, ("minimum", "maximum")):
            if value is not None and np.size(value) != 1:
                raise UnsupportedModelError(f"Clip node {_node_label(node)!r} has a {role} of shape {list(np.shape(value))}; ONNX needs a scalar")
        low = -np.inf if bounds[0] is None else np.ravel(bounds[0])[0]
        high = np.inf if bounds[1] is None else np.ravel(bounds[1])[0]
    return Activation("Clip", (float(low), float(high)))


ACTIVATION_RULES: dict[str, ActivationRule] = {
    "Relu": lambda graph, node: Activation("Relu"),
    "LeakyRelu": lambda graph, node: Activation("LeakyRelu", (float(node_attributes(node).get("alpha", 0.01)),)),
    "Sigmoid": lambda graph, node: Activation("Sigmoid"),
    "Tanh": lambda graph, node: Activation("Tanh"),
    "Clip": _clip_bounds,
    "HardSigmoid": lambda graph, node: Activation(
        "HardSigmoid", (float(node_attributes(node).get("alpha", 0.2)), float(node_attributes(node).get("beta", 0.5)))
    ),
    "HardSwish": lambda graph, node: Activation("HardSwish"),
}


def _silu(graph: _Graph, pre: str) -> str | None:
    """The output of Mul(pre, Sigmoid(pre)) when pre feeds exactly that pattern (how torch exports SiLU)."""
    consumers = graph.consumers.get(pre, [])
    if len(consumers) != 2 or pre in graph.outputs:
        return None
    sigmoid = next((n for n in consumers if n.op_type == "Sigmoid"), None)
    mul = next((n for n in consumers if n.op_type == "Mul"), None)
    if sigmoid is None or mul is None or graph.sole_consumer(sigmoid.output[0]) is not mul:
        return None
    return mul.output[0] if sorted(mul.input) == sorted([pre, sigmoid.output[0]]) else None


def _activation_after(graph: _Graph, pre_name: str) -> tuple[Activation, str]:
    silu = _silu(graph, pre_name)
    if silu is not None:
        return Activation("SiLU"), silu
    node = graph.sole_consumer(pre_name)
    if node is not None and node.op_type in ACTIVATION_RULES:
        return ACTIVATION_RULES[node.op_type](graph, node), node.output[0]
    return Activation("none"), pre_name
