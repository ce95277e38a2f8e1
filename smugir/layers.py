"""The first-layer IR: raw model input x -> first linear layer's pre-activations, pre = L(x') + c.

x' is x after the elementwise roundings a float16 graph applies (`smugir.affine`; x' = x in float32).
A dense layer keeps its weight matrix with the preprocessing folded in; a convolution stays
structured (kernel + geometry over z = affine(x')), so a 224x224x3 input under a 7x7/2 conv with 64
filters costs a few MB, not a dense matrix. `smugir.reader` builds these from an ONNX graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smugir.activations import Activation
from smugir.affine import InputAffine, Rounding, apply_roundings
from smugir.errors import InputError


@dataclass(frozen=True)
class NeuronTerms:
    """pre_i(x) = coefficients @ x'.flat[field] + constant; `field` is sorted and every coefficient != 0.

    x' is `FirstLayer.effective_input(x)` (x itself unless the graph rounds the input to float16)."""

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
    input_roundings: tuple[Rounding, ...] = ()  # x -> x', elementwise (a float16 Cast of the input)

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

    def effective_input(self, x: np.ndarray) -> np.ndarray:
        """x' = the raw input after the graph's elementwise roundings (x itself in a float32 graph).

        The terms of `fields` are linear in x': a masking problem uses x' and the baseline's b'
        (each masked element is one of the two, so the rounding is exact)."""
        return apply_roundings(self.input_roundings, np.asarray(x, dtype=np.float64))

    def _flat(self, x: np.ndarray) -> np.ndarray:
        """x' flat: (n_inputs,), or (batch, n_inputs) for a batch of inputs."""
        x = np.asarray(x, dtype=np.float64)
        n = self.n_inputs
        if x.size == n:
            return self.effective_input(x.reshape(n))
        if x.ndim >= 1 and x.size % n == 0 and int(np.prod(x.shape[1:])) == n:
            return self.effective_input(x.reshape(x.shape[0], n))
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
            "input_rounding": [stage.dtype for stage in self.input_roundings],
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
    """An N-D (1-D or 2-D) convolution over z = affine(x'); padding is zero in z space, as in ONNX.

    Neurons are numbered as the pre-activation tensor lays them out (`output_shape`); when a layout
    op sits between the Conv and its bias or activation (NHWC exports), `neuron_order[p]` is the
    conv output (channel, *position) of tensor element p, in `grid` = (1, M, *out_spatial) order.
    """

    affine: InputAffine = field(default=None, repr=False)  # z = affine(x'), shape (1, C, *spatial)
    weight: np.ndarray = field(default=None, repr=False)  # (M, C/group, *kernel) float64
    bias: np.ndarray = field(default=None, repr=False)  # (M,) float64
    strides: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    pads_begin: tuple[int, ...] = ()
    pads_end: tuple[int, ...] = ()
    group: int = 1
    grid: tuple[int, ...] = ()  # the conv's own output shape (1, M, *out_spatial)
    neuron_order: np.ndarray | None = field(default=None, repr=False)  # (n_neurons,) int64, or None: grid order

    @property
    def kind(self) -> str:
        return f"conv{len(self.strides)}d"

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(self.grid[2:])

    def fields(self, neurons: np.ndarray) -> ReceptiveFields:
        """Every tap of every neuron at once: arrays of (neurons, channels per group, kernel taps)."""
        neurons = _check_neurons(self, neurons)
        if self.neuron_order is not None:
            neurons = self.neuron_order[neurons]
        m, *out_pos = np.unravel_index(neurons, self.grid[1:])
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
        pre = pre.reshape(batch + (self.n_neurons,))
        return pre if self.neuron_order is None else pre[..., self.neuron_order]

    def receptive_field_size(self) -> int:
        """Channels per group times the kernel taps of an interior neuron (or the largest seen)."""
        centre = tuple(s // 2 for s in self.out_spatial)
        centre_index = int(np.ravel_multi_index((0, *centre), self.grid[1:]))
        if self.neuron_order is not None:
            centre_index = int(np.flatnonzero(self.neuron_order == centre_index)[0])
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
