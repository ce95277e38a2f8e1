"""Integrated Gradients on the first layer: seconds per input for both gradient providers, and
the levers on IG's time at ImageNet scale, each with its accuracy against a fine reference.

    .venv/bin/python benchmarks/bench_attribution.py [--steps 200] [--inputs 5] [--fd-inputs 1]
    .venv/bin/python benchmarks/bench_attribution.py --levers [--model M.onnx] [--photos 1] [--reference 256]

Default: IG with a fixed step count (200, the original method's) on real samples of
mnist-net_256x2, cifar10_small and resnet_2b; the gradient graph on --inputs inputs, finite
differences (which costs two forward runs per first-layer neuron per step) on --fd-inputs of them.
Also the adaptive default: the steps it chose and its completeness error.

--levers: on a 224 x 224 classifier (default EfficientNet-Lite0, real weights) and ImageNet
photos of examples/imagenet/, wall and CPU seconds of: the gradient graph's build; one gradient
point at 1, 2 and 4 points per onnxruntime run; onnxruntime with 1 thread against its default;
onnxruntime's idle threads spinning against sleeping (smugir's setting); and IG itself, adaptive (the default rule) and at fixed 16 / 32 / 64 steps, each scored against
--reference uniform steps: relative L2 error of the 64 deciding scores and of all, and how many
of the reference's top-32 neurons it keeps. CPU seconds count every thread: on a shared machine
they are the figure to compare.
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


IMAGENET = Path(__file__).parent.parent / "examples" / "imagenet"
LITE0 = Path(__file__).parent.parent / "tests" / "data" / "imagenet" / "efficientnet_lite0_bn.onnx"


def timed(work):
    """(result, wall seconds, CPU seconds of every thread) of work()."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def levers(model_path: Path, photos: int, reference_steps: int) -> None:
    import onnxruntime as ort

    from smugir.attribution import _deciding, forget_providers, integrated_gradients
    from smugir.gradients.builder import CLASS_INPUT, gradient_model
    from smugir.model import suffix_model, with_batch_of_one
    from smugir.inputs import load_input
    from smugir.model import set_session_threads
    from smugir.units import input_layout

    model = load_model(model_path)
    layer = first_layer(model)
    gradient, wall, cpu = timed(lambda: provider_for(model, layer.post_name))
    print(f"{model_path.name}: first layer {layer.output_shape}, gradient graph built in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(batched {gradient.batched})")
    images = sorted(IMAGENET.glob("*.jpg"))[:photos]
    for photo in images:
        x = load_input(str(photo), model.input_shape, input_layout(model.input_shape), mean=(0.5,) * 3, std=(0.5,) * 3)
        label = int(np.argmax(model.run(x)[0]))
        h = layer.activations(x).reshape(layer.output_shape[1:])
        print(f"\n{photo.name} (label {label})")
        chunk = gradient.chunk
        for batch in (1, 2, 4):
            points = np.stack([h * a for a in np.linspace(0.25, 1.0, batch)])
            gradient.chunk = batch
            _, wall, cpu = timed(lambda: gradient(points, label))
            print(f"  {batch} point(s) per run: {wall / batch:.2f} s wall, {cpu / batch:.2f} s CPU per point")
        gradient.chunk = chunk
        for threads in (1, 0):
            set_session_threads(threads)
            forget_providers(model)
            single = provider_for(model, layer.post_name)
            _, wall, cpu = timed(lambda: single(h[None], label))
            print(f"  onnxruntime threads {threads or 'default'}: {wall:.2f} s wall, {cpu:.2f} s CPU per point")
        set_session_threads(0)
        forget_providers(model)
        gradient = provider_for(model, layer.post_name)
        graph = gradient_model(with_batch_of_one(suffix_model(model.proto, layer.post_name)), layer.post_name).SerializeToString()
        feed = {layer.post_name: h[None].astype(np.float32), CLASS_INPUT: np.array([label])}
        for spinning in ("1", "0"):
            options = ort.SessionOptions()
            options.log_severity_level = 4
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            session.run(None, feed)  # the first run allocates
            _, wall, cpu = timed(lambda: [session.run(None, feed) for _ in range(3)])
            print(f"  idle threads {'spinning' if spinning == '1' else 'sleeping'}: {wall / 3:.2f} s wall, {cpu / 3:.2f} s CPU per point")
        reference, wall, cpu = timed(lambda: integrated_gradients(gradient, h, label, steps=reference_steps))
        print(f"  reference {reference_steps} steps: {wall:.1f} s wall, {cpu:.1f} s CPU")
        deciding = _deciding(reference.scores, 32)
        best = set(np.argsort(-reference.scores)[:32].tolist())
        print(f"  {'IG':<22}{'steps':>6}{'wall s':>8}{'CPU s':>7}{'deciding err %':>16}{'all err %':>11}{'top-32 kept':>13}  stop")
        for name, steps in (("adaptive (default)", None), ("fixed 16", 16), ("fixed 32", 32), ("fixed 64", 64)):
            result, wall, cpu = timed(lambda: integrated_gradients(gradient, h, label, steps=steps, deciding=32))
            on = np.linalg.norm(result.scores[deciding] - reference.scores[deciding]) / np.linalg.norm(reference.scores[deciding])
            every = np.linalg.norm(result.scores - reference.scores) / np.linalg.norm(reference.scores)
            kept = len(best & set(np.argsort(-result.scores)[:32].tolist()))
            print(f"  {name:<22}{result.steps:>6}{wall:>8.1f}{cpu:>7.1f}{100 * on:>16.2f}{100 * every:>11.2f}{kept:>10}/32  {result.stop}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=5)
    parser.add_argument("--fd-inputs", type=int, default=1)
    parser.add_argument("--levers", action="store_true", help="the levers on IG's time at 224 x 224 (see above)")
    parser.add_argument("--model", type=Path, default=LITE0)
    parser.add_argument("--photos", type=int, default=1)
    parser.add_argument("--reference", type=int, default=256, help="uniform steps of the reference IG")
    args = parser.parse_args()
    if args.levers:
        levers(args.model, args.photos, args.reference)
        return
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
