"""Integrated Gradients on the first layer: seconds per input for both gradient providers.

    .venv/bin/python benchmarks/bench_attribution.py [--steps 200] [--inputs 5] [--fd-inputs 1]

IG with a fixed step count (200, the original method's) on real samples of mnist-net_256x2,
cifar10_small and resnet_2b; the gradient graph on --inputs inputs, finite differences (which costs
two forward runs per first-layer neuron per step) on --fd-inputs of them. Also the adaptive default:
the steps it chose and its completeness error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from conftest import REAL_MODELS  # noqa: E402

from smugir.attribution import first_layer_attribution, provider_for  # noqa: E402
from smugir.firstlayer import first_layer  # noqa: E402
from smugir.model import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=5)
    parser.add_argument("--fd-inputs", type=int, default=1)
    args = parser.parse_args()
    print(f"{'model':<18}{'neurons':>8}{'graph s/input':>15}{'FD s/input':>12}{'adaptive steps':>16}{'adaptive error %':>18}")
    for name in ("mnist-net_256x2", "cifar10_small", "resnet_2b"):
        path, samples = REAL_MODELS[name]
        model = load_model(path)
        layer = first_layer(model)
        xs = samples()[: args.inputs]
        labels = [int(np.argmax(model.run(x)[0])) for x in xs]
        provider_for(model, layer.post_name, kind="gradient-graph")  # build once, outside the timing
        graph = []
        for x, label in zip(xs, labels):
            start = time.perf_counter()
            first_layer_attribution(model, layer, x, label, steps=args.steps, provider="gradient-graph")
            graph.append(time.perf_counter() - start)
        provider_for(model, layer.post_name, kind="finite-differences")
        fd = []
        for x, label in list(zip(xs, labels))[: args.fd_inputs]:
            start = time.perf_counter()
            first_layer_attribution(model, layer, x, label, steps=args.steps, provider="finite-differences")
            fd.append(time.perf_counter() - start)
        adaptive = [first_layer_attribution(model, layer, x, label) for x, label in zip(xs, labels)]
        steps = statistics.median(r.steps for r in adaptive)
        error = 100 * max(r.completeness_error for r in adaptive)
        fd_text = f"{statistics.median(fd):.2f}" if fd else "-"
        print(f"{name:<18}{layer.n_neurons:>8}{statistics.median(graph):>15.4f}{fd_text:>12}{steps:>16.0f}{error:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
