"""Gradient-graph build and evaluation time: EfficientNet-Lite0 (examples/imagenet) from its stem's
output, and full-size ViTs written as torch's TorchScript exporter writes them (patch-embedding
Conv, class token Concat, position embedding, LayerNorm, attention with MatMuls of two activations,
exact GELU through Erf, class-token Gather), random weights, from the patch embedding's output.

    python benchmarks/bench_gradients.py [--vit deit-tiny vit-b16] [--points 8]

Prints, per model: neurons differentiated, build seconds (graph + sessions + probe checks), the
provider, and seconds per gradient at a batch of `--points`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from smugir.gradients import GradientGraph
from smugir.model import load_model, suffix_model, with_batch_of_one

VITS = {"deit-tiny": (192, 3, 12), "vit-b16": (768, 12, 12)}  # width, heads, blocks; 224 x 224, 16 x 16 patches


def vit(width: int, heads: int, blocks: int, classes: int = 1000, seed: int = 0) -> tuple[onnx.ModelProto, str]:
    """A ViT at opset 17 as TorchScript writes it, and the name of its patch embedding's output."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(value):
        name = f"c{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(*shape):
        return const((rng.normal(size=shape) / np.sqrt(shape[0])).astype(np.float32))

    def node(op, inputs, **attrs):
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"/{op}_{len(nodes)}", **attrs))
        return out

    def layer_norm(x):
        return node("LayerNormalization", [x, const(np.ones(width, np.float32)), const(np.zeros(width, np.float32))], axis=-1, epsilon=1e-6)

    tokens, head = 197, width // heads
    patches = node("Conv", ["input", weight(width, 3, 16, 16), const(np.zeros(width, np.float32))], kernel_shape=[16, 16], strides=[16, 16])
    x = node("Transpose", [node("Reshape", [patches, const(np.array([1, width, 196], np.int64))])], perm=[0, 2, 1])
    x = node("Concat", [const(rng.normal(size=(1, 1, width)).astype(np.float32)), x], axis=1)
    x = node("Add", [x, const(rng.normal(size=(1, tokens, width)).astype(np.float32) * 0.02)])
    for _ in range(blocks):
        qkv = node("Reshape", [node("MatMul", [layer_norm(x), weight(width, 3 * width)]), const(np.array([1, tokens, 3, heads, head], np.int64))])
        qkv = node("Transpose", [qkv], perm=[2, 0, 3, 1, 4])
        q, k, v = (node("Gather", [qkv, const(np.int64(i))], axis=0) for i in range(3))
        scores = node("Softmax", [node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), const(np.float32(head ** -0.5))])], axis=-1)
        mixed = node("Reshape", [node("Transpose", [node("MatMul", [scores, v])], perm=[0, 2, 1, 3]), const(np.array([1, tokens, width], np.int64))])
        x = node("Add", [x, node("MatMul", [mixed, weight(width, width)])])
        hidden = node("MatMul", [layer_norm(x), weight(width, 4 * width)])
        gelu = node("Mul", [node("Mul", [hidden, node("Add", [node("Erf", [node("Div", [hidden, const(np.float32(np.sqrt(2)))])]), const(np.float32(1))])]),
                            const(np.float32(0.5))])
        x = node("Add", [x, node("MatMul", [gelu, weight(4 * width, width)])])
    cls = node("Gather", [layer_norm(x), const(np.int64(0))], axis=1)
    logits = node("Gemm", [cls, weight(width, classes), const(np.zeros(classes, np.float32))])
    graph = helper.make_graph(nodes, "vit", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model), patches


def measure(name: str, sub: onnx.ModelProto, tensor: str, points: int) -> None:
    start = time.perf_counter()
    provider = GradientGraph(sub, tensor)
    build = time.perf_counter() - start
    h = np.random.default_rng(0).normal(size=(points, *provider.shape[1:]))
    provider(h[:1], 0)  # first run: allocation
    start = time.perf_counter()
    provider(h, 0)
    per_point = (time.perf_counter() - start) / points
    print(f"{name:22s} {int(np.prod(provider.shape)):>9,d} neurons  build {build:6.2f} s  {provider.name} "
          f"(batched {provider.batched})  {per_point:6.3f} s per gradient", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vit", nargs="*", default=["deit-tiny"], choices=sorted(VITS))
    parser.add_argument("--points", type=int, default=8)
    args = parser.parse_args()
    path = Path(__file__).resolve().parents[1] / "examples" / "imagenet" / "efficientnet_lite0.onnx"
    if path.exists():
        from smugir.firstlayer import first_layer

        model = load_model(path)
        layer = first_layer(model)
        measure("efficientnet-lite0", with_batch_of_one(suffix_model(model.proto, layer.post_name)), layer.post_name, args.points)
    for name in args.vit:
        proto, patches = vit(*VITS[name])
        measure(name, with_batch_of_one(suffix_model(proto, patches)), patches, args.points)


if __name__ == "__main__":
    main()
