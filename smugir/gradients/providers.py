"""Gradient providers: what attribution asks for the class output's value and gradient at many points.

`GradientGraph` runs the reverse-mode graph of `smugir.gradients.builder` on onnxruntime, many
points per call. `FiniteDifferences` needs nothing but onnxruntime: batched central differences,
the bounded fallback for models whose gradient graph cannot be built (its name then says which
op and node needed it) and a cross-check. Both differentiate a class's softmax probability (or
its logit) per batch row.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import onnx

from smugir.errors import UnsupportedModelError, UnsupportedOpError
from smugir.gradients.builder import CLASS_INPUT, TARGETS, _logits_and_probability, gradient_model
from smugir.model import equal_to_rounding, make_session, run_session, with_dynamic_batch
from smugir.sessions import feeds_weights

# Points per onnxruntime call times their size. Measured on EfficientNet-Lite0 (224 x 224): 1 to 8
# points per call are as fast per point as 100, and a call of 111 points held about 4 GB.
BATCH_ELEMENTS = 1 << 20
# How far an optimised session's gradient may be from the plain one's (relative L2 norm, per point).
# EfficientNet-Lite0's plain gradient itself moves by 0.3 % when its input moves by one float32 ulp
# (rounding flips ReLU6 kinks), the optimised one is within 0.9 %; a wrong rewrite is off by O(1).
GRADIENT_TOLERANCE = 2e-2


class GradientProvider(Protocol):
    name: str

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(values (B,) float64, gradients (B, *point_shape), float32 or float64) of the target at each point."""


def _input_shape(model: onnx.ModelProto, name: str) -> tuple[int, ...]:
    value = next((v for v in model.graph.input if v.name == name), None)
    dims = value.type.tensor_type.shape.dim if value is not None else []
    if value is None or not all(d.HasField("dim_value") for d in dims):
        raise UnsupportedModelError(f"the shape of {name!r} is not known statically")
    return tuple(d.dim_value for d in dims)


def _agrees(session, reference: list, input_name: str, probe: np.ndarray, batched: bool) -> bool:
    """Whether `session` gives the plain session's outputs on the probe points: values to float32
    rounding (`equal_to_rounding`), each point's gradient to GRADIENT_TOLERANCE in relative L2
    norm (a gradient through ReLU-like kinks moves wherever rounding puts a value on the other
    side of a kink, elementwise by a lot)."""
    cls = {CLASS_INPUT: np.array([0])}
    try:
        if batched:
            values, grads = session.run(None, {input_name: probe, **cls})
        else:
            outputs = [session.run(None, {input_name: p[None], **cls}) for p in probe]
            values, grads = (np.concatenate([np.asarray(o[k]).reshape(1, -1) for o in outputs]) for k in (0, 1))
    except Exception:  # noqa: BLE001 (onnxruntime refuses the batched graph, e.g. a Reshape to a fixed size)
        return False
    values, grads = np.asarray(values), np.asarray(grads)
    if values.shape[:1] != (len(probe),) or grads.shape[:1] != (len(probe),):
        return False
    return all(equal_to_rounding(values[i], np.asarray(reference[i][0])[0]) for i in range(len(probe))) and \
        _gradients_agree(grads, np.concatenate([np.asarray(r[1]) for r in reference]))


def _runs_batched(forward: onnx.ModelProto, input_name: str, probe: np.ndarray) -> bool:
    """Whether the forward graph with a dynamic batch runs on the probe points. The gradient graph
    holds it, so where it does not (Swin's window attention reshapes to a fixed window count) no
    batched gradient session is tried: on a TorchScript Swin-T two of them took 24 s to fail."""
    try:
        make_session(with_dynamic_batch(forward)).run(None, {input_name: probe})
    except Exception:  # noqa: BLE001 (onnxruntime refuses the batched graph: which way does not matter here)
        return False
    return True


def _gradient_session(proto: onnx.ModelProto, forward: onnx.ModelProto, input_name: str, shape: tuple[int, ...]):
    """The fastest session of gradient graph `proto` (of `forward`) that gives the plain one's
    outputs: batched and optimised if it can, then batched, then optimised, else the plain one
    (optimisations are not always exact: `smugir.model.make_session`). Two sessions and three runs
    in the common case; on EfficientNet-Lite0 the optimised session is 30 % faster, its gradients
    agree to 0.9 %."""
    plain = make_session(proto)
    probe = np.random.default_rng(1).normal(size=(2, *shape[1:])).astype(np.float32)
    reference = [plain.run(None, {input_name: p[None], CLASS_INPUT: np.array([0])}) for p in probe]
    batched = with_dynamic_batch(proto)
    candidates = [(batched, True, True), (batched, False, True), (proto, True, False)]
    if feeds_weights(proto):  # an optimised session's own copies cost more than it saves (VGG-11: 1.1 GB)
        candidates = [(batched, False, True)]
    if not _runs_batched(forward, input_name, probe):
        candidates = [c for c in candidates if not c[2]]
    for candidate, optimize, together in candidates:
        try:
            session = make_session(candidate, optimize)
        except UnsupportedModelError:
            continue
        if _agrees(session, reference, input_name, probe, together):
            return session, together
    return plain, False


def _gradients_agree(fast: np.ndarray, slow: np.ndarray) -> bool:
    """Each point's gradient within GRADIENT_TOLERANCE of the plain one, in relative L2 norm."""
    fast, slow = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (fast, slow))
    if fast.shape != slow.shape or not np.all(np.isfinite(fast)):
        return False
    error, size = np.linalg.norm(fast - slow, axis=1), np.linalg.norm(slow, axis=1)
    return bool(np.all(error <= GRADIENT_TOLERANCE * size))


def fallback_reason(exc: Exception) -> str:
    """What stopped the gradient graph, in a few words for the report: the op and node if a rule."""
    if isinstance(exc, UnsupportedOpError):
        return f"{exc.op_type} node {exc.node_name!r}"
    return str(exc).split(";")[0]


class GradientGraph:
    """Gradients by the appended reverse-mode graph; one onnxruntime call per chunk of points."""

    name = "gradient-graph"

    def __init__(self, model: onnx.ModelProto, wrt: str, target: str = "probability", max_batch_elements: int = BATCH_ELEMENTS):
        self.wrt = wrt
        self.shape = _input_shape(model, wrt)
        self.session, self.batched = _gradient_session(gradient_model(model, wrt, target), model, wrt, self.shape)
        self.chunk = max(1, max_batch_elements // max(1, int(np.prod(self.shape)))) if self.batched else 1

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points, dtype=np.float32).reshape((-1, *self.shape[1:]))
        cls = np.array([class_index], dtype=np.int64)
        values, grads = [], []
        for start in range(0, len(points), self.chunk):
            value, grad = run_session(self.session, None, {self.wrt: points[start : start + self.chunk], CLASS_INPUT: cls})
            values.append(np.asarray(value).reshape(-1))
            grads.append(np.asarray(grad).reshape((-1, *self.shape[1:])))
        # the gradients stay in the graph's float type: on VGG-11 (3.2M first-layer values) a float64
        # copy of each batch cost more than the onnxruntime runs that made it
        return np.concatenate(values).astype(np.float64), grads[0] if len(grads) == 1 else np.concatenate(grads)


class FiniteDifferences:
    """Central differences on onnxruntime, the perturbations of a point run in batches.

    The step is relative, h = eps^(1/3) * max(1, |x|) with float32's eps, balancing truncation
    against rounding; the difference actually taken (after rounding to float32) is divided by.
    As the fallback for a gradient graph that could not be built, `fallback` says why (the op and
    node, `fallback_reason`) and the name carries it into the report.
    """

    name = "finite-differences"

    def __init__(self, model: onnx.ModelProto, target: str = "probability", max_batch_elements: int = BATCH_ELEMENTS,
                 fallback: str | None = None):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; accepted: {', '.join(TARGETS)}")
        from smugir.model import batched_session, expose_outputs

        graph = model.graph
        initializers = {t.name for t in graph.initializer}
        self.input = next(v.name for v in graph.input if v.name not in initializers)
        self.shape = _input_shape(model, self.input)
        self.fallback = fallback
        if fallback:
            self.name = f"finite-differences (no gradient graph: {fallback})"
        self.logits, _ = _logits_and_probability(graph, graph.output[0].name)
        exposed = expose_outputs(model, [self.logits])
        del exposed.graph.output[:-1]  # keep only the logits
        self.session, batched = batched_session(exposed, self.input, self.shape, {})
        self.chunk = max(1, max_batch_elements // max(1, int(np.prod(self.shape)))) if batched else 1
        self.max_batch_elements = max_batch_elements
        self.target = target

    def _values(self, inputs: np.ndarray, class_index: int) -> np.ndarray:
        rows = []
        for start in range(0, len(inputs), self.chunk):
            (logits,) = run_session(self.session, None, {self.input: inputs[start : start + self.chunk].astype(np.float32)})
            rows.append(np.asarray(logits, dtype=np.float64).reshape(-1, np.asarray(logits).shape[-1]))
        logits = np.concatenate(rows)
        if self.target == "logit":
            return logits[:, class_index]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p[:, class_index] / p.sum(axis=1)

    def __call__(self, points: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points, dtype=np.float64).reshape((-1, *self.shape[1:]))
        eps = float(np.finfo(np.float32).eps) ** (1 / 3)
        grads = []
        for point in points:
            flat = point.reshape(-1)
            steps = eps * np.maximum(1.0, np.abs(flat))
            grad = np.empty(flat.size)
            rows = max(1, self.max_batch_elements // max(1, flat.size))  # perturbed copies held at once
            for start in range(0, flat.size, rows):  # never all n x n perturbations at once
                idx = np.arange(start, min(start + rows, flat.size))
                plus = np.repeat(flat[None], idx.size, axis=0)
                minus = plus.copy()
                plus[np.arange(idx.size), idx] += steps[idx]
                minus[np.arange(idx.size), idx] -= steps[idx]
                plus, minus = plus.astype(np.float32), minus.astype(np.float32)
                taken = plus[np.arange(idx.size), idx].astype(np.float64) - minus[np.arange(idx.size), idx].astype(np.float64)
                f_plus = self._values(plus.reshape((-1, *point.shape)), class_index)
                f_minus = self._values(minus.reshape((-1, *point.shape)), class_index)
                grad[idx] = (f_plus - f_minus) / taken
            grads.append(grad.reshape(point.shape))
        return self._values(points, class_index), np.stack(grads)
