"""A harness for the gradient-rule property tests: small graphs of the op under test, their
gradient graph, and central finite differences in float64 to compare it with.

`Net` slices one input vector `x` into the op's float operands (so one gradient covers every
operand), and ends in a random linear head of everything the test outputs. `gradient_error`
runs the gradient graph in float64 on onnxruntime where its kernels exist (else in float32) and
returns its largest error relative to the finite differences' scale, with the tolerance that
precision calls for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from smugir.gradients import CLASS_INPUT, gradient_model
from smugir.model import make_session

STEP = 1e-6  # float64 central differences: truncation ~1e-12, rounding ~1e-10 on O(1) values
# where onnxruntime has no float64 kernel (Erf, Gelu) and onnx's reference evaluator rounds to
# float32 inside: a larger step, truncation ~1e-5 and rounding ~1e-5 of the scale
FLOAT32_STEP = 1e-2
TOLERANCE = {TensorProto.DOUBLE: 1e-5, TensorProto.FLOAT: 2e-3}


class Net:
    """Nodes on slices of one flat input x [1, n]; float constants are stored in float64."""

    def __init__(self, rng: np.random.Generator, opset: int = 17):
        self.rng = rng
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.size = 0
        self.count = 0

    def _name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, dtype=None) -> str:
        name = self._name("c")
        value = np.asarray(value, dtype=dtype)
        self.initializers.append(numpy_helper.from_array(value.astype(np.float64) if value.dtype.kind == "f" else value, name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64))

    def input(self, shape) -> str:
        """A float operand of `shape`: the next prod(shape) elements of x."""
        size = int(np.prod(shape))
        part = self.node("Slice", ["x", self.ints([self.size]), self.ints([self.size + size]), self.ints([1])])
        self.size += size
        return self.node("Reshape", [part, self.ints(list(shape))])

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs):
        names = [self._name(op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=self._name(op), **attrs))
        return names[0] if outputs == 1 else names

    def model(self, outputs: list[str] | str, dtype: int = TensorProto.DOUBLE) -> onnx.ModelProto:
        """x [1, n] -> the nodes -> every output flattened, concatenated -> random linear map -> logits [1, 3]."""
        outputs = [outputs] if isinstance(outputs, str) else outputs
        flat = [self.node("Reshape", [o, self.ints([1, -1])]) for o in outputs]
        joined = flat[0] if len(flat) == 1 else self.node("Concat", flat, axis=1)
        width = _width(self, joined)
        logits = self.node("MatMul", [joined, self.const(self.rng.normal(size=(width, 3)))])
        return typed_model(self, logits, dtype)


def typed_model(net: Net, logits: str, dtype: int) -> onnx.ModelProto:
    """The net up to `logits` as a model of float type `dtype` (constants cast to it)."""
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    initializers = [numpy_helper.from_array(numpy_helper.to_array(t).astype(np_dtype), t.name) if t.data_type == TensorProto.DOUBLE else t
                    for t in net.initializers]
    graph = helper.make_graph(net.nodes, "rule", [helper.make_tensor_value_info("x", dtype, [1, net.size])],
                              [helper.make_tensor_value_info(logits, dtype, [1, 3])], initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", net.opset)])
    proto.ir_version = 8 if net.opset <= 17 else 9
    onnx.checker.check_model(proto)
    return proto


def _width(net: Net, tensor: str) -> int:
    """The number of elements of `tensor` at batch 1 (one run of the graph so far)."""
    probe = typed_model(net, tensor, TensorProto.DOUBLE)
    probe.graph.output[0].type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True).graph.output[0].type.tensor_type.shape.dim
    if inferred and all(d.HasField("dim_value") for d in inferred):
        return int(np.prod([d.dim_value for d in inferred]))
    x = np.zeros((1, net.size))
    forward = _forward(probe)
    if forward is None:
        from onnx.reference import ReferenceEvaluator

        return int(np.asarray(ReferenceEvaluator(probe).run(None, {"x": x})[0]).size)
    return int(np.asarray(forward(x)).size)


def _forward(proto: onnx.ModelProto):
    """x -> the model's output on onnxruntime (None if it has no kernel for the model's type)."""
    try:
        session = make_session(proto)
        session.run(None, {"x": np.zeros((1, _input_size(proto)), helper.tensor_dtype_to_np_dtype(proto.graph.input[0].type.tensor_type.elem_type))})
    except Exception:  # noqa: BLE001 (a kernel onnxruntime lacks for float64)
        return None
    return lambda x: session.run(None, {"x": x})[0]


def _input_size(proto: onnx.ModelProto) -> int:
    return proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value


@dataclass
class Check:
    error: float  # largest |gradient graph - finite differences| over the scale of the differences
    tolerance: float
    dtype: str

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance


def gradient_error(net: Net, outputs, seed: int = 0, class_index: int = 1, point: np.ndarray | None = None) -> Check:
    """Compare the gradient graph with central differences (float64) at a random point."""
    proto64 = net.model(outputs, TensorProto.DOUBLE)
    x = np.random.default_rng(seed).normal(size=(1, net.size)) if point is None else point.reshape(1, -1)
    f, step, eps, precision = _forward(proto64), STEP, np.finfo(np.float64).eps, TOLERANCE[TensorProto.DOUBLE]
    if f is None:
        f32 = _forward(typed_model(net, proto64.graph.output[0].name, TensorProto.FLOAT))
        step, eps, precision = FLOAT32_STEP, np.finfo(np.float32).eps, TOLERANCE[TensorProto.FLOAT]
        f = lambda x: f32(x.astype(np.float32)).astype(np.float64)  # noqa: E731
    noise = 4 * eps * float(np.abs(f(x)).max()) / step  # the differences' own rounding error
    (reference, curved), (fine, curved_fine) = (_central_differences(f, x, h, class_index) for h in (step, step / 4))
    # Elements whose two differences disagree straddle a kink (ReLU-like ops, the float32 step):
    # no derivative to check there. A kink very near x leaves both first differences at the mean
    # of the two slopes; the second differences still tell it (times step/4: the whole jump at
    # step/4, a quarter of it at step; equal where the function is smooth). Most elements must be checkable.
    scale = max(float(np.abs(reference).max()), 1e-3)
    tolerance = 0.5 * precision * scale
    smooth = (np.abs(reference - fine) <= tolerance + 5 * noise) & (np.abs(curved_fine - curved) * step / 4 <= tolerance + 20 * noise)
    assert smooth.mean() >= 0.5, f"finite differences disagree on {np.mean(~smooth):.0%} of the elements"
    for dtype in (TensorProto.DOUBLE, TensorProto.FLOAT):
        proto = proto64 if dtype == TensorProto.DOUBLE else typed_model(net, proto64.graph.output[0].name, dtype)
        try:
            session = make_session(gradient_model(proto, "x", "logit"))
            _, grad = session.run(None, {"x": x.astype(helper.tensor_dtype_to_np_dtype(dtype)), CLASS_INPUT: np.array([class_index])})
        except Exception:  # noqa: BLE001 (no float64 kernel for an op of the gradient graph: try float32)
            if dtype == TensorProto.FLOAT:
                raise
            continue
        difference = np.abs(np.asarray(grad, dtype=np.float64).reshape(-1) - reference)[smooth]
        error = max(float(difference.max()) - noise, 0.0) / scale
        return Check(error, TOLERANCE[dtype], "float64" if dtype == TensorProto.DOUBLE else "float32")
    raise AssertionError("unreachable")


def _central_differences(f, x: np.ndarray, step: float, class_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Central first and second differences of the class output, per element of x."""
    centre = f(x)[0, class_index]
    first, second = np.empty(x.size), np.empty(x.size)
    for i in range(x.size):
        bump = np.zeros_like(x)
        bump[0, i] = step
        up, down = f(x + bump)[0, class_index], f(x - bump)[0, class_index]
        first[i], second[i] = (up - down) / (2 * step), (up - 2 * centre + down) / step**2
    return first, second
