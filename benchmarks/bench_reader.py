"""Reading real exports: load (with constant folding and its onnxruntime check), first layer, accuracy
of the first-layer pre-activations against onnxruntime, gradient-graph build and seconds per IG point.

    .venv/bin/python benchmarks/bench_reader.py [--repeats 3] [--points 4] [--identity 20000]

Models: both EfficientNet-Lite0 exports (examples/imagenet, tests/data/imagenet), and the text CNN
with --identity Identity nodes inserted in front of its embedding (issue 15: a graph walk that was
quadratic in the number of nodes made 20,000 of them take minutes). Timings are medians; the
machine is shared, so they are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from smugir.attribution import provider_for
from smugir.firstlayer import first_layer
from smugir.model import load_model
from smugir.text import text_model

ROOT = Path(__file__).parent.parent
EXPORTS = [ROOT / "examples" / "imagenet" / "efficientnet_lite0.onnx", ROOT / "tests" / "data" / "imagenet" / "efficientnet_lite0_bn.onnx"]


def _median_seconds(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def imagenet(repeats: int, points: int) -> None:
    print(f"{'model':<28}{'load s':>8}{'layer s':>9}{'max rel err':>13}{'grad build s':>14}{'s / IG point':>14}")
    for path in EXPORTS:
        load_s, model = _median_seconds(lambda: load_model(path), repeats)
        layer_s, layer = _median_seconds(lambda: first_layer(model), repeats)
        rng = np.random.default_rng(0)
        errors = []
        for _ in range(3):
            x = rng.uniform(-1, 1, size=model.input_shape).astype(np.float32)
            _, pre = model.run(x, (layer.pre_name,))
            errors.append(float(np.abs(layer.preactivations(x) - pre.reshape(-1)).max() / np.abs(pre).max()))
        start = time.perf_counter()
        provider = provider_for(model, layer.post_name)
        build_s = time.perf_counter() - start
        h = layer.activations(x).reshape(layer.output_shape[1:])
        alphas = np.linspace(0, 1, points)[:, None, None, None]
        step_s, _ = _median_seconds(lambda: provider(alphas * h[None], 0), repeats)
        print(f"{path.name:<28}{load_s:>8.2f}{layer_s:>9.3f}{max(errors):>13.2e}{build_s:>14.1f}{step_s / points:>14.3f}"
              f"   ({provider.name}, batched={getattr(provider, 'batched', None)})")


def identity_chain(count: int) -> None:
    proto = onnx.load(ROOT / "examples" / "text" / "polarity_cnn.onnx")
    graph = proto.graph
    gather = next(n for n in graph.node if n.op_type == "Gather")
    tensor = gather.input[1]
    chain = []
    for k in range(count):
        chain.append(helper.make_node("Identity", [tensor], [f"identity_{k}"], name=f"identity_{k}"))
        tensor = f"identity_{k}"
    gather.input[1] = tensor
    nodes = chain + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "identity_chain.onnx"
        onnx.save(proto, path)
        start = time.perf_counter()
        model = load_model(path)
        text = text_model(model)
        layer = first_layer(text.embedded)
        provider_for(text.embedded, layer.post_name)
        print(f"text CNN with {count} Identity nodes: load + reader + gradient graph {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=4, help="IG points per gradient-graph call")
    parser.add_argument("--identity", type=int, default=20000)
    args = parser.parse_args()
    imagenet(args.repeats, args.points)
    identity_chain(args.identity)


if __name__ == "__main__":
    main()
