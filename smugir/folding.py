"""Constant subgraphs evaluated at load time, so every later step sees the graph the data flows through.

Exporters compute shapes and pads with small graphs of Constant, ConstantOfShape, Concat, Slice,
Shape, Gather, ... in front of the real ops. Everything computable without the data input's values
is evaluated here, one node at a time with `onnx.reference.ReferenceEvaluator` (the ONNX reference
semantics, no op written by hand), and replaced by initializers. Before a node runs, ONNX shape
inference (given the values of its small inputs) tells the size of what it would produce, and a node
whose output exceeds `MAX_FOLDED_BYTES`, or the memory budget (`smugir.budget`, `--max-memory`), is
refused by name: a 100-byte ConstantOfShape must not allocate gigabytes. The rewritten model is
then run beside the original with onnxruntime on a random input; the outputs must agree to
float32 precision, or loading stops with a named error.

A symbolic batch dimension is handled by evaluating in several "worlds" (batch 1, 2 and 5): a
tensor that is the same in all of them does not depend on the batch and is folded; one that
differs (e.g. `Shape(x)[0]` in `x.view(x.size(0), -1)`) keeps the nodes that compute it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import onnx.defs
import onnx.shape_inference
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from smugir.budget import require
from smugir.errors import UnsupportedModelError
from smugir.sessions import declared_bytes
from smugir import weights

MAX_FOLDED_BYTES = 1 << 28  # 256 MiB for all folded tensors together (real exports fold kilobytes), and never over the budget
BATCH_WORLDS = (1, 2, 5)  # batch sizes a symbolic leading dim is evaluated at
SHAPE_OPS = ("Shape", "Size")  # read only the data input's shape, never its values
NOT_FOLDED = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli")
SMALL_INPUT_ELEMENTS = 4096  # inputs up to this size are given to shape inference as values (shapes, pads)


_FREED = np.zeros(0)  # a folded value whose every reader has been visited and which no kept node reads


class ConstantFoldingError(UnsupportedModelError):
    """A constant subgraph is too large to evaluate, or its evaluation disagrees with onnxruntime."""


@dataclass(frozen=True)
class FoldingReport:
    """What `fold_constants` did: how many nodes it replaced by initializers."""

    folded_nodes: int
    constant_nodes: int
    checked: bool


SessionFactory = Callable[[onnx.ModelProto], object]


def fold_constants(
    proto: onnx.ModelProto,
    data_input: str,
    make_session: SessionFactory | None = None,
    max_bytes: int = MAX_FOLDED_BYTES,
) -> tuple[onnx.ModelProto, FoldingReport]:
    """The model with every data-independent node replaced by an initializer (checked with `make_session`)."""
    folder = _Folder(proto, data_input, max_bytes)
    folder.run()
    if not folder.removed:
        return proto, FoldingReport(0, 0, False)
    folded = folder.rewritten()
    constants = sum(1 for n in proto.graph.node if n.op_type == "Constant" and n.output[0] in folder.removed_outputs)
    computed = len(folder.removed) - constants
    if computed and make_session is not None:
        check_against_onnxruntime(proto, folded, data_input, make_session, folder.batch_dynamic, max_bytes)
    return folded, FoldingReport(computed, constants, bool(computed and make_session))


class _Folder:
    def __init__(self, proto: onnx.ModelProto, data_input: str, max_bytes: int):
        self.proto = proto
        self.data_input = data_input
        self.max_bytes = int(max_bytes)
        self.used_bytes = 0
        self.opsets = {o.domain or "": o.version for o in proto.opset_import}
        self.opsets.setdefault("", self.opsets.pop("ai.onnx", 1))
        dims = next(v for v in proto.graph.input if v.name == data_input).type.tensor_type.shape.dim
        self.batch_dynamic = bool(dims) and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0)
        self.worlds = BATCH_WORLDS if self.batch_dynamic else (None,)
        self.n_worlds = len(self.worlds)
        self._shapes: list[dict[str, tuple[int, ...]]] | None = None
        self.initializers = {t.name: t for t in proto.graph.initializer}
        self.fixed: dict[str, np.ndarray | None] = dict.fromkeys(self.initializers)  # converted when first read
        self.varying: dict[str, list[np.ndarray]] = {}
        self.removed: list[int] = []  # indices of nodes whose outputs are all folded
        self.removed_outputs: set[str] = set()
        self.graph_outputs = {o.name for o in proto.graph.output}
        self.evaluators: dict[bytes, ReferenceEvaluator] = {}

    def run(self) -> None:
        reads = [_names_read([node]) for node in self.proto.graph.node]
        pending: dict[str, int] = {}  # readers not yet visited, so a value can be freed after its last one
        for names in reads:
            for name in names:
                pending[name] = pending.get(name, 0) + 1
        needed: set[str] = set()  # folded values a kept node reads: they become initializers
        for index, node in enumerate(self.proto.graph.node):
            outputs = self._evaluate(node)
            for name, per_world in zip(node.output, outputs or []):
                if all(_same(per_world[0], other) for other in per_world[1:]):
                    self.fixed[name] = per_world[0]
                else:
                    self.varying[name] = per_world
                self.used_bytes += sum(v.nbytes for v in per_world[:1 if name in self.fixed else None])
            folded = outputs is not None and all(name in self.fixed for name in node.output if name)
            if folded:
                self.removed.append(index)
                self.removed_outputs.update(node.output)
            for name in reads[index]:
                if not folded:
                    needed.add(name)
                pending[name] -= 1
                if not pending[name] and name not in needed and name in self.removed_outputs:
                    self.used_bytes -= self.fixed[name].nbytes
                    self.fixed[name] = _FREED

    def value_of(self, name: str, world: int) -> np.ndarray:
        if name in self.varying:
            return self.varying[name][world]
        cached = self.fixed[name]
        if cached is None:
            cached = self.fixed[name] = weights.array(self.initializers[name])
        return cached

    @property
    def shapes(self) -> list[dict[str, tuple[int, ...]]]:
        """Per world, the statically inferred shape of every tensor (inferred only if a Shape op needs it)."""
        if self._shapes is None:
            self._shapes = [_static_shapes(self.proto, self.data_input, batch) for batch in self.worlds]
        return self._shapes

    def _known(self, name: str) -> bool:
        return not name or name in self.fixed or name in self.varying

    def _evaluate(self, node: onnx.NodeProto) -> list[list[np.ndarray]] | None:
        """Per output, its value in every world; None when the node depends on the data (or is not folded)."""
        if node.op_type in NOT_FOLDED or node.domain not in ("", "ai.onnx") or any(o in self.graph_outputs for o in node.output):
            return None
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return None
        if node.op_type == "Constant" and _attribute(node, "value") is not None:
            return [[numpy_helper.to_array(_attribute(node, "value").t)]]
        if node.op_type in SHAPE_OPS and not self._known(node.input[0]):
            if not all(node.input[0] in shapes for shapes in self.shapes):
                return None  # a dim that is not static: computed at run time
            return [[self._shape_op(node, shapes[node.input[0]]) for shapes in self.shapes]]
        if not all(self._known(name) for name in node.input):
            return None
        worlds = range(self.n_worlds) if any(name in self.varying for name in node.input) else range(1)
        results: list[list[np.ndarray]] = [[] for _ in node.output]
        for world in worlds:
            feeds = {name: self.value_of(name, world) for name in node.input if name}
            if not self._sized(node, feeds):
                return None
            outputs = self._reference_run(node, feeds)
            for k, out in enumerate(outputs):
                results[k].append(np.asarray(out))
        return results

    def _shape_op(self, node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
        if node.op_type == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        start = _attribute_value(node, "start", 0)
        end = _attribute_value(node, "end", None)
        return np.array(shape[start:end], dtype=np.int64)

    def _sized(self, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> bool:
        """Whether shape inference knows the size of every output; refuse outputs beyond the budget.

        A node whose output size is not known before it runs (NonZero, a sequence) is left to
        onnxruntime, like any other node of the graph: it is not evaluated here.
        """
        types = {name: helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for name, v in feeds.items()}
        data = {name: numpy_helper.from_array(v, name) for name, v in feeds.items() if v.size <= SMALL_INPUT_ELEMENTS}
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opsets.get("", 1), node.domain or "")
            inferred = onnx.shape_inference.infer_node_outputs(
                schema, node, types, data, opset_imports=[helper.make_opsetid(d, v) for d, v in self.opsets.items()]
            )
        except (onnx.shape_inference.InferenceError, onnx.defs.SchemaError, RuntimeError) as exc:
            raise ConstantFoldingError(f"node {_label(node)!r} ({node.op_type}) on constant inputs is invalid: {_first_line(exc)}") from None
        needed = 0
        for name in filter(None, node.output):
            value_type = inferred.get(name)
            tensor = value_type.tensor_type if value_type is not None and value_type.HasField("tensor_type") else None
            if tensor is None or not tensor.HasField("shape") or not all(d.HasField("dim_value") for d in tensor.shape.dim):
                return False
            shape = [d.dim_value for d in tensor.shape.dim]
            itemsize = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize if tensor.elem_type else 8
            needed += int(np.prod(shape, dtype=object)) * itemsize
            if self.used_bytes + needed > self.max_bytes:
                raise ConstantFoldingError(
                    f"node {_label(node)!r} ({node.op_type}) would compute the constant {name!r} of shape {shape} "
                    f"({_bytes(needed)}); folded constants may take at most {_bytes(self.max_bytes)}"
                )
            require(f"folding node {_label(node)!r} ({node.op_type}) into the constant {name!r} of shape {shape}", self.used_bytes + needed)
        return True

    def _reference_run(self, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> list:
        """Run one node on the reference evaluator; nodes that differ only in tensor names share one."""
        canonical = onnx.NodeProto()
        canonical.CopyFrom(node)
        canonical.name = ""
        inputs = [f"in{k}" if name else "" for k, name in enumerate(node.input)]
        canonical.input[:] = inputs
        canonical.output[:] = [f"out{k}" if name else "" for k, name in enumerate(node.output)]
        key = canonical.SerializeToString()
        try:
            if key not in self.evaluators:  # a one-node graph: a bare NodeProto would run at the newest opset
                graph = helper.make_graph([canonical], "fold", [onnx.ValueInfoProto(name=n) for n in inputs if n],
                                          [onnx.ValueInfoProto(name=n) for n in canonical.output if n])
                self.evaluators[key] = ReferenceEvaluator(graph, opsets=self.opsets)
            return self.evaluators[key].run(None, {alias: feeds[name] for alias, name in zip(inputs, node.input) if name})
        except Exception as exc:  # the reference implementation raises whatever numpy raises
            raise ConstantFoldingError(f"node {_label(node)!r} ({node.op_type}) cannot be evaluated on its constant inputs: {_first_line(exc)}") from None

    def rewritten(self) -> onnx.ModelProto:
        graph = self.proto.graph
        removed = set(self.removed)
        kept = _live([node for k, node in enumerate(graph.node) if k not in removed], self.graph_outputs)
        used = _names_read(kept) | self.graph_outputs
        new_initializers = [t for t in graph.initializer if t.name in used]
        for name in sorted(used & self.removed_outputs):
            new_initializers.append(numpy_helper.from_array(np.asarray(self.fixed[name]), name))
        out = onnx.ModelProto()
        out.CopyFrom(self.proto)
        del out.graph.node[:]
        out.graph.node.extend(kept)
        del out.graph.initializer[:]
        out.graph.initializer.extend(new_initializers)
        initializer_names = {t.name for t in new_initializers}
        if out.ir_version < 4:  # initializers had to be graph inputs before IR 4
            for tensor in new_initializers:
                if tensor.name not in {v.name for v in out.graph.input}:
                    out.graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        dropped = {t.name for t in graph.initializer} - initializer_names
        kept_inputs = [v for v in out.graph.input if v.name not in dropped]
        del out.graph.input[:]
        out.graph.input.extend(kept_inputs)
        del out.graph.value_info[:]
        return onnx.shape_inference.infer_shapes(out, strict_mode=False)


def _static_shapes(proto: onnx.ModelProto, data_input: str, batch: int | None) -> dict[str, tuple[int, ...]]:
    """Every tensor whose shape inference knows all dims, with the data input's batch set to `batch`."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.graph.value_info[:]
    if batch is not None:
        value = next(v for v in model.graph.input if v.name == data_input)
        value.type.tensor_type.shape.dim[0].dim_value = batch
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError):
        inferred = model
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = tuple(d.dim_value for d in tensor.shape.dim)
    return shapes


def check_against_onnxruntime(original: onnx.ModelProto, folded: onnx.ModelProto, data_input: str,
                              make_session: SessionFactory, batch_dynamic: bool, max_bytes: int = MAX_FOLDED_BYTES) -> None:
    """The folded model must give the original's outputs (float32 precision) on a random input."""
    value = next(v for v in original.graph.input if v.name == data_input)
    tensor_type = value.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim]
    if any(d is None for d in dims[1:]):
        return  # the reader refuses such inputs with its own message
    needed = 2 * int(np.prod(dims[1:], dtype=object)) * max(4, np.dtype(dtype).itemsize)
    if needed > max_bytes:
        raise ConstantFoldingError(
            f"the data input {data_input!r} of shape {dims} needs {_bytes(needed)} to check the folded model against "
            f"onnxruntime; the limit is {_bytes(max_bytes)}"
        )
    require(f"checking the folded model on random inputs of shape {dims}", needed)
    batches = (1, 2) if batch_dynamic else (dims[0] if dims else None,)
    # both sessions run every tensor the graph declares (batch 2 at most): known before onnxruntime allocates
    require(f"checking the folded model on onnxruntime (every tensor it declares, batch {max(b or 1 for b in batches)})",
            2 * max(b or 1 for b in batches) * declared_bytes(folded))
    rng = np.random.default_rng(0)
    sessions = make_session(original), make_session(folded)
    for batch in batches:
        shape = tuple([batch, *dims[1:]]) if dims else ()
        x = rng.normal(size=shape).astype(dtype) if np.issubdtype(dtype, np.floating) else np.zeros(shape, dtype)
        try:
            want = _run(sessions[0], {data_input: x}, "the original model")
        except UnsupportedModelError:
            if batch == 1 or not batch_dynamic:
                raise
            continue  # declared dynamic but fixed inside (a Reshape to [1, -1]): batch 1 is what is used
        got = _run(sessions[1], {data_input: x}, "the model with its constant subgraphs folded")
        for name, a, b in zip((o.name for o in original.graph.output), want, got):
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            scale = max(1.0, float(np.nanmax(np.abs(a)))) if a.size and not np.all(np.isnan(a)) else 1.0
            if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=1e-6 * scale, equal_nan=True):
                worst = float(np.nanmax(np.abs(a - b))) if a.shape == b.shape else float("nan")
                raise ConstantFoldingError(
                    f"folding the constant subgraphs changed the output {name!r} (batch {batch}: largest difference "
                    f"{worst:.3g}, shapes {list(a.shape)} vs {list(b.shape)}); the rewritten model is not trusted"
                )


def _run(session, feed: dict, what: str) -> list:
    options = ort.RunOptions()
    options.log_severity_level = 4  # the failure becomes our one-line error, not also an onnxruntime log line
    try:
        return session.run(None, feed, options)
    except Exception as exc:  # onnxruntime raises its own pybind classes
        raise UnsupportedModelError(f"onnxruntime cannot run {what}: {_first_line(exc)}") from None


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes the graph outputs depend on (e.g. a Shape whose every reader was folded is dropped)."""
    live, kept = set(outputs), []
    for node in reversed(nodes):
        if any(name in live for name in node.output):
            kept.append(node)
            live |= _names_read([node])
    return kept[::-1]


def _names_read(nodes) -> set[str]:
    """Every tensor name the nodes read, inside their subgraphs too (outer-scope references)."""
    names: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        names.update(node.input)
        for attr in node.attribute:
            for graph in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                stack.extend(graph.node)
    names.discard("")
    return names


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.floating)))


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _attribute_value(node: onnx.NodeProto, name: str, default):
    attr = _attribute(node, name)
    return default if attr is None else helper.get_attribute_value(attr)


def _label(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}->{node.output[0]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
