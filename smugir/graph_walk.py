"""Walks over an ONNX graph's producers and consumers, shared by every step that cuts a graph.

Cutting a model to one output, finding the input's shape reads in front of the first layer, the
suffix from the first layer to the output and the gradient graph's forward part all ask the same
question: which tensors is this one computed from. One walk answers it, including the outer
tensors a subgraph (If, Loop, Scan) reads, which its node's inputs do not list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import onnx


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """The node that writes each tensor."""
    return {out: node for node in graph.node for out in node.output}


def node_reads(node: onnx.NodeProto) -> list[str]:
    """The tensors a node reads: its inputs and whatever its subgraphs read (outer tensors included)."""
    reads = [t for t in node.input if t]
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            for sub in [attr.g, *attr.graphs]:
                reads.extend(t for inner in sub.node for t in node_reads(inner))
    return reads


def ancestors(graph: onnx.GraphProto, targets: Iterable[str], stop_at: Collection[str] = (),
              descend: Callable[[onnx.NodeProto], bool] | None = None) -> set[str]:
    """Every tensor the targets are computed from, targets included: one walk back, linear in the graph.

    A tensor in `stop_at` is reached but not walked past; a node for which `descend` returns False
    is reached (its outputs are in the set) but its reads are not followed."""
    writer = producers(graph)
    seen: set[str] = set()
    stack = list(targets)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = writer.get(name)
        if node is None or name in stop_at or (descend is not None and not descend(node)):
            continue
        stack.extend(t for t in node_reads(node) if t not in seen)
    return seen


def descendants(graph: onnx.GraphProto, tensor: str) -> set[str]:
    """`tensor` and every tensor computed from it (nodes are in topological order)."""
    reached = {tensor}
    for node in graph.node:
        if any(name in reached for name in node_reads(node)):
            reached.update(node.output)
    return reached
