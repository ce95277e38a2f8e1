"""The first-layer IR: raw model input x -> first linear layer's pre-activations, pre = L(x) + c.

The walk from the data input to the first linear operator tracks, for every element of the current
tensor, which raw input element it comes from and the affine map applied to it (`InputAffine`).
Layout ops (Reshape, Transpose, ...) move those arrays around with numpy; elementwise ops with
constants update the scale and shift. The linear op then sees z = scale * x[index] + shift, which
is folded into the layer exactly (in float64). Convolutions stay structured (kernel + geometry), so
a 224x224x3 input under a 7x7/2 conv with 64 filters costs a few MB, not a dense matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from smugir.budget import elements, require
from smugir.convolution import conv_window, node_attributes
from smugir.errors import InputError, UnsupportedModelError, UnsupportedOpError
from smugir.model import Model

ActivationKind = Literal["Relu", "LeakyRelu", "Sigmoid", "Tanh", "none"]

LAYOUT_OPS = ("Identity", "Cast", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")
AFFINE_OPS = ("Sub", "Add", "Mul", "Div")
LINEAR_OPS = ("Gemm", "MatMul", "Conv")
ACTIVATION_OPS = ("Relu", "LeakyRelu", "Sigmoid", "Tanh")
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


@dataclass(frozen=True)
class InputAffine:
    """z = scale * x.flat[index] + shift, elementwise; all three arrays have z's shape."""

    index: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    def apply(self, x_flat: np.ndarray) -> np.ndarray:
        """z for raw inputs of shape (..., n_inputs): leading axes are a batch."""
        return self.scale * x_flat[..., self.index] + self.shift

    def layout(self, fn: Callable[[np.ndarray], np.ndarray]) -> InputAffine:
        return InputAffine(fn(self.index), fn(self.scale), fn(self.shift))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.index.shape)


@dataclass(frozen=True)
class Activation:
    kind: ActivationKind
    alpha: float = 0.01  # LeakyRelu slope

    def __call__(self, pre: np.ndarray) -> np.ndarray:
        if self.kind == "Relu":
            return np.maximum(pre, 0.0)
        if self.kind == "LeakyRelu":
            return np.where(pre >= 0, pre, self.alpha * pre)
        if self.kind == "Sigmoid":
            return 1.0 / (1.0 + np.exp(-pre))
        if self.kind == "Tanh":
            return np.tanh(pre)
        return pre


@dataclass(frozen=True)
class NeuronTerms:
    """pre_i(x) = coefficients @ x.flat[field] + constant; `field` is sorted and every coefficient != 0."""

    field: np.ndarray
    coefficients: np.ndarray
    constant: float


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
            "activation": self.activation.kind if self.activation.kind != "LeakyRelu" else f"LeakyRelu(alpha={self.activation.alpha:g})",
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

    def neuron(self, i: int) -> NeuronTerms:
        row = self.weight[_check_neuron(self, i)]
        support = np.flatnonzero(row)
        return NeuronTerms(support, row[support], float(self.bias[i]))

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

    def _taps(self, out_pos: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Input positions (per spatial axis, broadcastable over the kernel) and their in-bounds mask."""
        in_spatial = self.affine.shape[2:]
        grids = np.meshgrid(*[np.arange(k) for k in self.kernel], indexing="ij")
        positions = [o * s - p + g * d for o, s, p, g, d in zip(out_pos, self.strides, self.pads_begin, grids, self.dilations)]
        inside = np.ones(self.kernel, dtype=bool)
        for pos, size in zip(positions, in_spatial):
            inside &= (pos >= 0) & (pos < size)
        return np.stack(positions), inside

    def neuron(self, i: int) -> NeuronTerms:
        m, *out_pos = np.unravel_index(_check_neuron(self, i), self.output_shape[1:])
        c_per_group = self.weight.shape[1]
        channels = (m // (self.weight.shape[0] // self.group)) * c_per_group + np.arange(c_per_group)
        positions, inside = self._taps(tuple(out_pos))
        spatial = tuple(pos[inside] for pos in positions)  # each (n_taps,)
        taps_w = self.weight[m][:, inside]  # (C/g, n_taps)
        z_index = (0, channels[:, None], *[s[None, :] for s in spatial])
        raw_index = self.affine.index[z_index].ravel()
        coefficients = (taps_w * self.affine.scale[z_index]).ravel()
        constant = float(self.bias[m] + np.sum(taps_w * self.affine.shift[z_index]))
        field_, inverse = np.unique(raw_index, return_inverse=True)
        merged = np.zeros(field_.shape, dtype=np.float64)
        np.add.at(merged, inverse, coefficients)
        keep = merged != 0
        return NeuronTerms(field_[keep], merged[keep], constant)

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


# --------------------------------------------------------------------------------------------------
# Reading the graph


class _Graph:
    """Constant lookup and consumer lists for the walk from the data input."""

    def __init__(self, model: Model):
        self.model = model
        graph = model.proto.graph
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
            f"node {node.name!r} ({node.op_type}) takes its {role} from {name!r}, which is computed at run "
            "time; smugir needs it to be a constant (initializer or Constant node)"
        )

    def only_consumer(self, tensor: str, what: str) -> onnx.NodeProto:
        consumers = self.consumers.get(tensor, [])
        if tensor in self.outputs or len(consumers) != 1:
            if not consumers or tensor in self.outputs:
                raise UnsupportedModelError(f"{what} {tensor!r} reaches the model output before any linear layer ({', '.join(LINEAR_OPS)})")
            names = ", ".join(f"{n.name!r} ({n.op_type})" for n in consumers)
            raise UnsupportedModelError(
                f"{what} {tensor!r} is read by {len(consumers)} nodes ({names}); smugir needs a single chain "
                "from the data input to the first linear layer"
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


AFFINE_BYTES = 24  # per input element: the int64 index, float64 scale and shift of `InputAffine`


def first_layer(model: Model) -> FirstLayer:
    """Follow the data input through the supported preprocessing to the first linear layer."""
    shape = model.input_shape
    require(f"the first layer's map of the input {model.input_name!r} {list(shape)}", AFFINE_BYTES * elements(shape))
    graph = _Graph(model)
    affine = InputAffine(
        np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape),
        np.ones(shape),
        np.zeros(shape),
    )
    described: list[str] = []
    tensor = model.input_name
    while True:
        node = graph.only_consumer(tensor, "tensor")
        op = node.op_type
        if op in LINEAR_OPS:
            return _read_linear(model, graph, node, tensor, affine, tuple(described))
        if op in LAYOUT_OPS:
            affine = _apply_layout(node, graph, affine, model.opset)
        elif op in AFFINE_OPS:
            affine, constant = _apply_elementwise(node, graph, tensor, affine)
            op = f"{op} {_short(constant)}"
        else:
            first = tensor == model.input_name
            where = "right after the data input" if first else "between the data input and the first linear layer"
            raise UnsupportedOpError(_node_label(node), op, where, LAYOUT_OPS + AFFINE_OPS + LINEAR_OPS)
        described.append(f"{op} ({_node_label(node)}) -> {list(affine.shape)}")
        tensor = node.output[0]


def _apply_layout(node: onnx.NodeProto, graph: _Graph, affine: InputAffine, opset: int) -> InputAffine:
    op, attrs, shape = node.op_type, node_attributes(node), affine.shape
    if op == "Identity":
        return affine
    if op == "Cast":
        if attrs.get("to") not in FLOAT_TYPES:
            raise UnsupportedModelError(
                f"node {_node_label(node)!r} casts the input to a non-float type ({attrs.get('to')}); "
                "smugir folds only casts between float types"
            )
        return affine
    if op == "Flatten":
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        outer = int(np.prod(shape[:axis]))
        return affine.layout(lambda a: a.reshape(outer, -1))
    if op == "Reshape":
        target = [int(v) for v in graph.constant(node.input[1], node, "target shape")]
        if not attrs.get("allowzero", 0):
            target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
        try:
            return affine.layout(lambda a: a.reshape(target))
        except ValueError:
            raise UnsupportedModelError(f"Reshape node {_node_label(node)!r} cannot reshape {list(shape)} to {target}") from None
    if op in ("Squeeze", "Unsqueeze"):
        if opset >= 13 and len(node.input) > 1:
            axes = [int(v) for v in graph.constant(node.input[1], node, "axes")]
        else:
            axes = list(attrs.get("axes", []))
        if op == "Squeeze":
            axes = axes or [i for i, s in enumerate(shape) if s == 1]
            return affine.layout(lambda a: np.squeeze(a, axis=tuple(ax % len(shape) for ax in axes)))
        rank = len(shape) + len(axes)
        return affine.layout(lambda a: np.expand_dims(a, tuple(ax % rank for ax in axes)))
    perm = attrs.get("perm") or list(range(len(shape)))[::-1]
    return affine.layout(lambda a: np.ascontiguousarray(np.transpose(a, perm)))


def _apply_elementwise(node: onnx.NodeProto, graph: _Graph, tensor: str, affine: InputAffine) -> tuple[InputAffine, np.ndarray]:
    """The affine map after `z op c` (or `c op z`), and the constant c."""
    op = node.op_type
    position = list(node.input).index(tensor)
    if node.input[0] == node.input[1]:
        raise UnsupportedModelError(f"node {_node_label(node)!r} ({op}) combines the input with itself; not affine")
    const = graph.constant(node.input[1 - position], node, "second operand").astype(np.float64)
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
            raise UnsupportedModelError(f"Div node {_node_label(node)!r} divides by a constant that contains 0")
        scale, shift = scale / const, shift / const
    else:
        raise UnsupportedModelError(
            f"Div node {_node_label(node)!r} divides a constant by the input, which is not affine; "
            "smugir folds only division of the input by a constant"
        )
    folded = InputAffine(np.ascontiguousarray(index), np.ascontiguousarray(scale), np.ascontiguousarray(shift))
    return folded, graph.constants[node.input[1 - position]]


def _short(constant: np.ndarray) -> str:
    """A constant as `smug inspect` shows it: its values when there are few, else its shape."""
    values = np.asarray(constant, dtype=np.float64)
    if values.size == 1:
        return f"{values.item():.6g}"
    if values.size <= 4:
        return "[" + ", ".join(f"{v:.6g}" for v in values.ravel()) + "]"
    return f"<constant of shape {list(values.shape)}>"


def _read_linear(model, graph, node, tensor, affine, described) -> FirstLayer:
    if node.op_type == "Conv":
        weight, bias, geometry, pre_node = _conv_params(node, graph, affine)
    else:
        weight, bias, pre_node = _dense_params(node, graph, tensor, affine)
        geometry = None
    pre_name = pre_node.output[0]
    activation, post_name = _activation_after(graph, pre_name)
    common = dict(
        input_shape=model.input_shape,
        activation=activation,
        pre_name=pre_name,
        post_name=post_name,
        linear_node=_node_label(node),
        preprocessing=described,
    )
    if geometry is None:
        dense_w, dense_b = _fold_dense(weight, bias, affine, int(np.prod(model.input_shape)))
        out_shape = (1, weight.shape[0]) if node.op_type == "Gemm" else affine.shape[:-1] + (weight.shape[0],)
        return DenseLayer(output_shape=out_shape, weight=dense_w, bias=dense_b, **common)
    return ConvLayer(affine=affine, weight=weight, bias=bias, **geometry, **common)


def _dense_params(node, graph, tensor, affine):
    """(W (N, K), b (N,), node producing the pre-activation) for Gemm or MatMul(+Add)."""
    shape = affine.shape
    if node.op_type == "Gemm":
        attrs = node_attributes(node)
        if node.input[0] != tensor:
            raise UnsupportedModelError(f"Gemm node {_node_label(node)!r} takes the input as its B operand; smugir needs it as A")
        b_mat = graph.constant(node.input[1], node, "weight B").astype(np.float64)
        b_mat = b_mat.T if attrs.get("transB", 0) else b_mat  # (K, N)
        rows = shape[1] if attrs.get("transA", 0) else shape[0]
        if len(shape) != 2 or rows != 1:
            raise UnsupportedModelError(f"Gemm node {_node_label(node)!r} gets an input of shape {list(shape)}; smugir needs one sample (one row)")
        _check_features(node, b_mat.shape[0], shape)
        weight = attrs.get("alpha", 1.0) * b_mat.T
        bias = np.zeros(weight.shape[0])
        if len(node.input) > 2 and node.input[2]:
            c = graph.constant(node.input[2], node, "bias C").astype(np.float64)
            bias = attrs.get("beta", 1.0) * np.broadcast_to(c, (1, weight.shape[0]))[0]
        return weight, bias, node
    if node.input[0] != tensor:
        raise UnsupportedModelError(f"MatMul node {_node_label(node)!r} takes the input as its right operand; smugir needs it on the left")
    b_mat = graph.constant(node.input[1], node, "weight").astype(np.float64)
    if b_mat.ndim != 2 or int(np.prod(shape[:-1])) != 1:
        raise UnsupportedModelError(
            f"MatMul node {_node_label(node)!r} multiplies {list(shape)} by {list(b_mat.shape)}; smugir needs one row times a 2-D weight"
        )
    _check_features(node, b_mat.shape[0], shape)
    weight, bias, pre_node = b_mat.T, np.zeros(b_mat.shape[1]), node
    consumers = graph.consumers.get(node.output[0], [])
    if len(consumers) == 1 and consumers[0].op_type == "Add" and node.output[0] not in graph.outputs:
        add = consumers[0]
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if other in graph.constants:
            bias = np.broadcast_to(graph.constants[other].astype(np.float64), (1, weight.shape[0]))[0].copy()
            pre_node = add
    return weight, bias, pre_node


def _check_features(node: onnx.NodeProto, k: int, shape: tuple[int, ...]) -> None:
    if k != int(np.prod(shape)):
        raise UnsupportedModelError(
            f"{node.op_type} node {_node_label(node)!r} has a weight for {k} input features but receives {list(shape)}"
        )


def _fold_dense(weight: np.ndarray, bias: np.ndarray, affine: InputAffine, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """W_raw[:, index[k]] += W[:, k] * scale[k]; b_raw = b + W @ shift."""
    index, scale, shift = (a.reshape(-1) for a in (affine.index, affine.scale, affine.shift))
    require(f"the folded first-layer weight ({weight.shape[0]} x {n_inputs}, float64)", 16 * weight.shape[0] * n_inputs)
    folded = np.zeros((weight.shape[0], n_inputs))
    if np.array_equal(index, np.arange(index.size)):
        folded[:, : index.size] = weight * scale
    else:
        np.add.at(folded.T, index, (weight * scale).T)
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
    in_spatial = shape[2:]
    window = conv_window(node, weight.shape, in_spatial)
    out_spatial = window.output_spatial(in_spatial)
    if min(out_spatial) < 1:
        raise UnsupportedModelError(f"Conv node {_node_label(node)!r} produces an empty output from {list(in_spatial)}")
    bias = np.zeros(weight.shape[0])
    if len(node.input) > 2 and node.input[2]:
        bias = graph.constant(node.input[2], node, "bias").astype(np.float64)
    geometry = dict(
        output_shape=(1, weight.shape[0], *out_spatial),
        strides=tuple(window.strides),
        dilations=tuple(window.dilations),
        pads_begin=tuple(window.pads_begin),
        pads_end=tuple(window.pads_end),
        group=group,
    )
    return weight, bias, geometry, node


def _activation_after(graph: _Graph, pre_name: str) -> tuple[Activation, str]:
    consumers = graph.consumers.get(pre_name, [])
    if len(consumers) == 1 and consumers[0].op_type in ACTIVATION_OPS and pre_name not in graph.outputs:
        node = consumers[0]
        alpha = float(node_attributes(node).get("alpha", 0.01))
        return Activation(node.op_type, alpha), node.output[0]
    return Activation("none"), pre_name
