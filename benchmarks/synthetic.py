"""ImageNet-shaped synthetic classifiers for benchmarks: 224x224x3 input, 7x7 stride-2 conv, 64 filters.

Random weights (seeded) make the first-layer problem as large as a real ImageNet network's
(112 x 112 x 64 = 802,816 first-layer neurons, 3,136 4x4 windows) without shipping a real model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def imagenet_shaped_model(seed: int = 0, classes: int = 1000) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.05, size=(64, 3, 7, 7)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, size=64).astype(np.float32)
    fc_w = rng.normal(0, 0.5, size=(classes, 64)).astype(np.float32)
    fc_b = np.zeros(classes, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["pre"], name="conv1", kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3]),
        helper.make_node("Relu", ["pre"], ["post"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["post"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "imagenet_shaped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(a, n) for a, n in ((conv_w, "conv_w"), (conv_b, "conv_b"), (fc_w, "fc_w"), (fc_b, "fc_b"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def imagenet_shaped_input(seed: int = 0) -> np.ndarray:
    """A smooth random 'image' (normalised values), so neighbouring windows are correlated as in photos."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed + 1)
    noise = rng.normal(size=(3, 224, 224))
    return (gaussian_filter(noise, sigma=(0, 6, 6)) * 8).astype(np.float32)[None]
