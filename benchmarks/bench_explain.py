"""Minimal masks: smugir's backends against the original formulation, and an ImageNet-sized problem.

    .venv/bin/python benchmarks/bench_explain.py [--original-timeout 20] [--skip-imagenet]

Part 1: the 15 real MNIST samples with mnist-net_256x2 (pixel units, top-k 32 by activation as in
the original code's dense setting, gamma 0.5): per input, the time and status of every backend and
of the original formulation. Part 2: an ImageNet-shaped synthetic conv net (224x224x3 input, 7x7
stride-2 conv, 64 filters; 4x4 windows, top-k 1000): the whole explain pipeline, its phases and the
peak memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from original_formulation import solve_original  # noqa: E402
from synthetic import imagenet_shaped_input, imagenet_shaped_model  # noqa: E402

from smugir.explain import explain  # noqa: E402
from smugir.model import load_model  # noqa: E402

# The z3 backends and the original formulation run on the first --slow-samples inputs only.
from smugir.solve import solve  # noqa: E402

DATA = Path(__file__).parent.parent / "tests" / "data"
BACKENDS = ("highs", "z3", "z3-optimize")


def mnist_part(original_timeout: float, slow_samples: int) -> None:
    model = load_model(DATA / "mnist" / "mnist-net_256x2.onnx")
    images = np.load(DATA / "mnist" / "mnist_test_samples.npz")["images"]
    times: dict[str, list[float]] = {name: [] for name in (*BACKENDS, "original")}
    print(f"{'input':>5} " + " ".join(f"{name:>20}" for name in times))
    for index, image in enumerate(images):
        problem = explain(model, image, top_k=32, gamma=0.5, rank="activation").problem
        cells = []
        objective = None
        for name in BACKENDS:
            if name != "highs" and index >= slow_samples:
                cells.append("-")
                continue
            start = time.perf_counter()
            (solution,) = solve(problem, name, timeout=original_timeout)
            seconds = time.perf_counter() - start
            times[name].append(seconds)
            objective = objective if objective is not None else solution.objective
            if solution.status == "optimal":
                assert solution.objective == objective, f"backends disagree on input {index}"
            value = "-" if solution.objective is None else f"{solution.objective:.0f}"
            cells.append(f"{solution.status[:4]} {value:>4} {seconds:7.3f}s")
        if index < slow_samples:
            status, value, seconds = solve_original(problem, original_timeout)
            times["original"].append(seconds)
            cells.append(f"{status[:4]} {value if value is not None else '-':>4} {seconds:7.3f}s")
        print(f"{index:>5} " + " ".join(f"{c:>20}" for c in cells), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items() if values}
    print("median " + " ".join(f"{name} {value:.3f}s" for name, value in medians.items()))
    if "original" in medians:
        print(f"speed-up of the default (highs) over the original formulation: {medians['original'] / medians['highs']:.0f}x (median)")


def imagenet_part() -> None:
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "imagenet_shaped.onnx"
        onnx.save(imagenet_shaped_model(), path)
        model = load_model(path)
    x = imagenet_shaped_input()
    start = time.perf_counter()
    result = explain(model, x, top_k=1000, gamma=0.5, window=4, ig_steps=None)
    total = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ImageNet-shaped: {result.units.n_units} window units, {len(result.neurons)} neurons, status {result.status}, "
          f"objective {result.objective}, verified {result.best.verified}")
    print("phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()) + f"; total {total:.2f}s; peak memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-timeout", type=float, default=10.0, help="timeout of the z3 backends and the original formulation")
    parser.add_argument("--slow-samples", type=int, default=3, help="inputs on which the z3 backends and the original run")
    parser.add_argument("--skip-imagenet", action="store_true")
    args = parser.parse_args()
    if not args.skip_imagenet:
        imagenet_part()  # first, so the process's peak memory is this problem's
    mnist_part(args.original_timeout, args.slow_samples)
