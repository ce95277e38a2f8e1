"""onnxruntime sessions as a verifier needs them: plain graphs, failures as one named line, batching checked."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from smugir.budget import elements
from smugir.errors import SmugError, UnsupportedModelError
from smugir import weights
from smugir.weightless import set_aside


def declared_bytes(proto: onnx.ModelProto) -> int:
    """Every tensor the graph declares (inputs, shape-inference results, outputs), at batch 1: an
    upper bound on one run's memory, known before onnxruntime allocates any of it."""
    graph = proto.graph
    total = 0
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim]
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).itemsize if tensor_type.elem_type else 4
        except (KeyError, TypeError, ValueError):  # a sequence, map or unknown type: counted as float32
            itemsize = 4
        total += elements(dims) * itemsize
    return total


_session_threads = 0  # onnxruntime's default: one thread per physical core


def set_session_threads(threads: int) -> None:
    """Threads of every session made from now on; parallel workers use 1 so they do not oversubscribe."""
    global _session_threads
    _session_threads = int(threads)


class Session:
    """An onnxruntime session; for a model with more than FEED_BYTES of float weights, a plain
    session takes its large weights as graph inputs, fed on every run from the one copy that all
    sessions of the same weights share (`smugir.weights`).

    Otherwise each session holds its own copy: on VGG-11 (531 MB of weights) the sessions of one
    explanation held 6 copies. Fed, a plain VGG-11 session runs as fast (148 vs 149 ms); onnxruntime
    then multiplies by weights it has not pre-packed, so the float32 sums are ordered differently
    (about 1e-7 of the output) from a session that holds them, which is why smaller models keep
    theirs. Optimised sessions always hold them: onnxruntime's rewrites (Conv with
    BatchNormalization, NCHWc layouts) need constant weights (ResNet-50: 58 ms vs 77 ms fed).
    """

    def __init__(self, inner: ort.InferenceSession, fed: dict[str, np.ndarray]):
        self.inner, self.fed = inner, fed

    def run(self, names: list[str] | None, feed: dict, options: ort.RunOptions | None = None) -> list:
        return self.inner.run(names, {**feed, **self.fed}, options)

    def get_inputs(self) -> list:
        return [i for i in self.inner.get_inputs() if i.name not in self.fed]

    def get_outputs(self) -> list:
        return self.inner.get_outputs()

    def get_session_options(self) -> ort.SessionOptions:
        return self.inner.get_session_options()


FEED_BYTES = 128 << 20


def _weight_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The initializers a fed session takes as inputs: placeholders and large float weights."""
    return [t for t in proto.graph.initializer if weights.is_placeholder(t) or weights.is_heavy(t)]


def feeds_weights(proto: onnx.ModelProto) -> bool:
    """Whether a plain session of `proto` is fed its weights: they hold more than FEED_BYTES."""
    tensors = _weight_tensors(proto)
    return sum(elements(t.dims) * np.dtype(weights.TYPES[t.data_type]).itemsize for t in tensors) > FEED_BYTES


def _fed(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """(a copy of `proto` whose large float weights and placeholders are graph inputs, their arrays),
    or (`proto`, {}) when they hold FEED_BYTES or less."""
    if not feeds_weights(proto):
        return proto, {}
    fed = {t.name: weights.array(t) if weights.is_placeholder(t) else weights.share(t)[1] for t in _weight_tensors(proto)}
    return set_aside(proto, list(fed))[0], fed


def _with_placeholders_given(proto: onnx.ModelProto, options: ort.SessionOptions) -> None:
    """Hand the placeholders' arrays to onnxruntime as external initializers (it copies them in)."""
    given = weights.placeholders(proto)
    if given:
        options.add_external_initializers([t.name for t in given], [ort.OrtValue.ortvalue_from_numpy(weights.array(t)) for t in given])


def make_session(proto: onnx.ModelProto, optimize: bool = False) -> Session:
    """A CPU session, by default with graph optimisations off: they are not always exact.

    Measured with onnxruntime 1.31.1: a Pad (zeros) followed by MaxPool is fused at the basic level
    into a MaxPool whose padding is -inf, which changes the model's output. A verifier must run the
    graph as ONNX defines it; `optimize=True` is for callers that check the optimised session
    against the plain one (`batched_session`).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: smugir reports a failed run or load itself (`run_session`)
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = _session_threads
    # Idle threads sleep instead of spinning: on a shared 2-core machine spinning doubled the CPU
    # seconds of a gradient point (EfficientNet-Lite0, 0.20 -> 0.12 s; benchmarks/bench_attribution.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No buffer-reuse planning: onnxruntime's planner is superlinear in the graph's nodes; a
    # TorchScript Swin-T gradient graph (5951 nodes) took 10-13 s to plan and 0.7 s without,
    # with the same peak memory and run time (tensors are still freed after their last reader).
    options.enable_mem_reuse = False
    try:
        light, fed = (proto, {}) if optimize else _fed(proto)
        if fed:  # buffers computed from fed weights (their Transpose) go back to the system after each run:
            options.enable_cpu_mem_arena = False  # in the arena MLP-Mixer's grew by 250 MB per gradient point
        _with_placeholders_given(light, options)
        return Session(ort.InferenceSession(light.SerializeToString(), options, providers=["CPUExecutionProvider"]), fed)
    except SmugError:  # smugir's own, e.g. a batch input's time limit firing inside onnxruntime's call
        raise
    except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidGraph, ...)
        message = str(exc).splitlines()[0]
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} cannot run the model: {message}") from None


def run_session(session: Session, names: list[str] | None, feed: dict) -> list:
    """`session.run`, with onnxruntime's failures (a run-time shape error, an allocation it cannot
    make) turned into one named line instead of onnxruntime's own exception types."""
    try:
        return session.run(names, feed)
    except SmugError:  # smugir's own, e.g. a batch input's time limit firing inside onnxruntime's call
        raise
    except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, RuntimeException, ...)
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedModelError(f"onnxruntime {ort.__version__} failed running the model: {message}") from None


def with_dynamic_batch(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with a symbolic leading dim and Reshape targets that copy it (0 for a leading 1)."""
    batched = onnx.ModelProto()
    batched.CopyFrom(proto)
    graph = batched.graph
    initializers = {t.name for t in graph.initializer}
    data_inputs = [v for v in graph.input if v.name not in initializers]
    for value in data_inputs[:1] + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    reshape_targets = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    for tensor in graph.initializer:
        if tensor.name in reshape_targets:
            target = numpy_helper.to_array(tensor).copy()
            if target.size >= 2 and target[0] == 1:
                target[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(target.astype(np.int64), tensor.name))
    del graph.value_info[:]
    return batched


REORDERING_TOLERANCE = 1e-4  # of an output's largest magnitude: what reordered float32 sums change


def equal_to_rounding(fast: np.ndarray, slow: np.ndarray, tolerance: float = REORDERING_TOLERANCE) -> bool:
    """Whether `fast` gives `slow`'s values to `tolerance` of slow's largest magnitude.

    Fused, batched or blocked kernels add float32 terms in another order, which moves every value
    by about 1e-7 of the largest one (EfficientNet-Lite0's logits: 3e-7); a wrong rewrite (the
    Pad-into-MaxPool fusion of `make_session`) moves them by far more. A per-value relative test
    would refuse the first on any value near zero.
    """
    fast, slow = np.asarray(fast, dtype=np.float64), np.asarray(slow, dtype=np.float64)
    if fast.shape != slow.shape:
        return False
    if not (np.all(np.isfinite(fast)) and np.all(np.isfinite(slow))):
        return bool(np.array_equal(fast, slow, equal_nan=True))
    return bool(np.abs(fast - slow).max(initial=0.0) <= tolerance * np.abs(slow).max(initial=0.0))


def batched_session(proto: onnx.ModelProto, input_name: str, shape: tuple[int, ...], extra: dict | None = None,
                    optimize: bool = False) -> tuple[Session, bool]:
    """A session that takes many points at once when the graph allows it, and whether it does.

    The batched (and, with `optimize`, graph-optimised) session is used only if it gives the plain
    session's outputs on two random points (`equal_to_rounding`); otherwise the plain one is. On
    EfficientNet-Lite0 the optimised session classifies an image in 11 ms, the plain one in 27 ms.
    """
    extra = extra or {}
    single = make_session(proto)
    probe = np.random.default_rng(0).normal(size=(2, *shape[1:])).astype(np.float32)
    apart = [single.run(None, {input_name: p[None], **extra}) for p in probe]
    for optimized in dict.fromkeys((optimize, False)):
        try:
            candidate = make_session(with_dynamic_batch(proto), optimized)
            together = candidate.run(None, {input_name: probe, **extra})
        except Exception:  # noqa: BLE001 (onnxruntime refuses the batched graph, e.g. a Reshape to a fixed size)
            continue
        if all(np.asarray(out).shape[:1] == (2,) for out in together) and all(
                equal_to_rounding(np.asarray(together[k])[i], np.asarray(apart[i][k])[0])
                for k in range(len(together)) for i in range(2)):
            return candidate, True
    return single, False
