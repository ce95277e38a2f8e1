"""What `smug inspect` shows: the model's interface and the first layer smugir reads from it."""

from __future__ import annotations

import os
from itertools import groupby

from smugir.errors import printable
from smugir.firstlayer import first_layer
from smugir.model import load_model


def inspect_model(path: str | os.PathLike, output: str | None = None) -> dict:
    """A JSON-ready summary: inputs, outputs, opset, op sequence, folded preprocessing, first layer."""
    model = load_model(path, output)
    layer = first_layer(model)
    initializers = {t.name for t in model.proto.graph.initializer}
    return {
        "model": str(model.path),
        "sha256": model.sha256,
        "opset": model.opset,
        "inputs": [model.data_input.to_json()],
        "initializer_inputs": sum(1 for v in model.proto.graph.input if v.name in initializers),
        "outputs": [{**model.output.to_json(), **({"chosen": model.output_note} if model.output_note else {})}],
        "ops": [node.op_type for node in model.proto.graph.node],
        "constant_subgraphs": _folding_json(model),
        "preprocessing": list(layer.preprocessing),
        "first_layer": layer.describe(),
    }


def _folding_json(model) -> dict:
    report = model.folding
    if report is None:
        return {"folded_nodes": 0, "constant_nodes": 0, "checked_against_onnxruntime": False}
    return {"folded_nodes": report.folded_nodes, "constant_nodes": report.constant_nodes, "checked_against_onnxruntime": report.checked}


def format_summary(summary: dict) -> str:
    """The human-readable form of `inspect_model`'s result."""
    ops = []
    for op, group in groupby(summary["ops"]):
        count = len(list(group))
        ops.append(op if count == 1 else f"{op} x{count}")
    if len(ops) > 16:  # a real network: its start and end say enough (--json lists every op)
        ops = [*ops[:9], f"... {len(ops) - 12} more ...", *ops[-3:]]
    layer = summary["first_layer"]
    lines = [
        f"model       {summary['model']}  (sha256 {summary['sha256'][:16]}..., opset {summary['opset']})",
        *(f"input       {i['name']!r} {i['shape']} {i['dtype']}" for i in summary["inputs"]),
        *(f"output      {o['name']!r} {o['shape']} {o['dtype']}" + (f"  ({o['chosen']})" if o.get("chosen") else "") for o in summary["outputs"]),
        f"ops         {' -> '.join(ops)}  ({len(summary['ops'])} nodes)",
        f"constants   {_constants_line(summary['constant_subgraphs'])}",
        f"folded      {'; '.join(summary['preprocessing']) or 'nothing (the linear layer reads the input directly)'}",
        f"first layer {layer['kind']} node {layer['node']!r}: {layer['neurons']} neurons, output {layer['output_shape']}",
        *([f"            folded into it: {'; '.join(layer['folded_into_layer'])}"] if layer["folded_into_layer"] else []),
        f"            receptive field {layer['receptive_field_size']} input elements, activation {layer['activation']}",
        f"            tensors: pre {layer['pre_activation_tensor']!r}, post {layer['post_activation_tensor']!r}",
        "            geometry " + ", ".join(f"{k}={v}" for k, v in layer["geometry"].items()),
    ]
    return "\n".join(printable(line) for line in lines)  # node and tensor names come from the file


def _constants_line(folding: dict) -> str:
    if not folding["folded_nodes"] and not folding["constant_nodes"]:
        return "none to fold"
    checked = ", checked against onnxruntime" if folding["checked_against_onnxruntime"] else ""
    return (f"{folding['folded_nodes']} nodes computed from constants and {folding['constant_nodes']} Constant nodes "
            f"became initializers at load time{checked}")
