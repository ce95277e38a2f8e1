"""Minimal masks at ImageNet scale, and smugir's backends against the original formulation.

    .venv/bin/python benchmarks/bench_explain.py [--photos 3] [--model PATH] [--skip-imagenet] [--skip-mnist]

Part 1: EfficientNet-Lite0 (examples/imagenet/, else ../shared/data/imagenet/) on real ImageNet
photos (../shared/data/imagenet/images, preprocessing (RGB / 255 - 0.5) / 0.5), top-k 3000,
gamma 0.9 (the published form; at 0.5 its masks are empty), pixel units (50,176) and 4x4 windows
(3,136). Each explanation runs in a fresh process, which reports the wall time of every phase
(load, units, attribution, saliency, build, solve, verify, output: report and pictures), its CPU
time and its peak resident memory (getrusage). The machine is shared: compare medians, and CPU
time where wall time is noisy.
Part 2: the 15 real MNIST samples with mnist-net_256x2 (pixel units, top-k 32 by activation as in
the original code's dense setting, gamma 0.5): per input, the time and status of every backend and
of the original formulation.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smugir.explain import explain
from smugir.model import load_model
from smugir.solve import solve

DATA = Path(__file__).parent.parent / "tests" / "data"
BACKENDS = ("highs", "z3", "z3-optimize")


def mnist_part(original_timeout: float, slow_samples: int) -> None:
    """The z3 backends and the original formulation run on the first `slow_samples` inputs only."""
    sys.path.insert(0, str(Path(__file__).parent))
    from original_formulation import solve_original
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


ROOT = Path(__file__).parent.parent
IMAGENET = ROOT.parent / "shared" / "data" / "imagenet"
MODELS = (ROOT / "examples" / "imagenet" / "efficientnet_lite0.onnx", IMAGENET / "efficientnet_lite0.onnx")
UNIT_KINDS = {"pixels": None, "4x4 windows": 4}
PHASES = ("load", "units", "attribution", "saliency", "build", "solve", "verify", "output")


def explain_photo(model_path: str, photo: str, window: int | None, top_k: int, gamma: float) -> dict:
    """One explanation, phase by phase, in this process (run by `imagenet_part` in a child process)."""
    from smugir.exporters.report import write_explanation
    from smugir.explain import finish, prepare
    from smugir.inputs import load_input
    from smugir.units import input_layout

    clock = time.perf_counter()
    model = load_model(model_path)
    x = load_input(photo, model.input_shape, input_layout(model.input_shape), mean=(0.5,) * 3, std=(0.5,) * 3)
    loading = time.perf_counter() - clock
    cpu = {"start": time.process_time()}
    setup = prepare(model, x, top_k=top_k, gamma=gamma, window=window)
    cpu["prepare"] = time.process_time()
    peak_prepared = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    explanation = finish(setup)
    cpu["finish"] = time.process_time()
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_explanation(explanation, Path(folder) / "out")
    cpu["output"] = time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    problem = explanation.problem
    return {
        "timings": {**explanation.timings, "load": loading, "output": time.perf_counter() - clock},
        "cpu": usage.ru_utime + usage.ru_stime,
        "cpu_blocks": {block: cpu[block] - cpu[before] for before, block in zip(cpu, list(cpu)[1:])},
        "peak_mb": usage.ru_maxrss / 1024,
        "peak_prepared_mb": peak_prepared,
        "units": explanation.units.n_units,
        "nnz": problem.coefficients.nnz,
        "status": explanation.status,
        "kept": int(explanation.unit_mask.sum()),
        "verified": explanation.best.verified,
    }


def imagenet_part(model_path: Path, photos: int, top_k: int, gamma: float, timeout: float) -> None:
    images = sorted((IMAGENET / "images").glob("*.jpg"))
    chosen = [images[i] for i in np.linspace(0, len(images) - 1, photos).astype(int)]
    print(f"{model_path.name}, top-k {top_k}, gamma {gamma}, {photos} photos; seconds per phase (wall), CPU seconds, peak RSS")
    print(f"{'photo':<28} {'units':<12} " + " ".join(f"{p:>8}" for p in PHASES) + f" {'total':>7} {'cpu':>6} {'peak MB':>8}  result")
    for kind, window in UNIT_KINDS.items():
        rows = []
        for photo in chosen:
            command = [sys.executable, __file__, "--child", str(model_path), str(photo), str(window or 0), str(top_k), str(gamma)]
            clock = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            total = time.perf_counter() - clock
            if done.returncode != 0:
                print(f"{photo.name[:27]:<28} {kind:<12} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.splitlines()[-1])
            row["total"] = total
            rows.append(row)
            print(_imagenet_line(photo.name[:27], kind, row), flush=True)
        if rows:
            median = {
                "timings": {p: statistics.median(r["timings"].get(p, 0.0) for r in rows) for p in PHASES},
                **{key: statistics.median(r[key] for r in rows) for key in ("total", "cpu", "peak_mb")},
                "units": rows[0]["units"], "nnz": int(statistics.median(r["nnz"] for r in rows)),
                "status": "/".join(sorted({r["status"] for r in rows})), "kept": int(statistics.median(r["kept"] for r in rows)),
                "verified": all(r["verified"] for r in rows),
            }
            print(_imagenet_line("median", kind, median), flush=True)
            blocks = {b: statistics.median(r["cpu_blocks"][b] for r in rows) for b in rows[0]["cpu_blocks"]}
            print(f"{'':<28} {kind:<12} median CPU s: prepare (units, IG, saliency, build) {blocks['prepare']:.2f}, "
                  f"finish (solve, verify) {blocks['finish']:.2f}, output {blocks['output']:.2f}; peak RSS after "
                  f"prepare {statistics.median(r['peak_prepared_mb'] for r in rows):.0f} MB", flush=True)


def _imagenet_line(name: str, kind: str, row: dict) -> str:
    phases = " ".join(f"{row['timings'].get(p, 0.0):8.2f}" for p in PHASES)
    result = f"{row['status']} {row['kept']}/{row['units']} kept, {row['nnz']} non-zeros, verified {row['verified']}"
    return f"{name:<28} {kind:<12} {phases} {row['total']:7.2f} {row['cpu']:6.1f} {row['peak_mb']:8.0f}  {result}"


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    model_arg, photo_arg, window_arg, top_k_arg, gamma_arg = sys.argv[2:7]
    result = explain_photo(model_arg, photo_arg, int(window_arg) or None, int(top_k_arg), float(gamma_arg))
    print(json.dumps(result))
    sys.exit(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-timeout", type=float, default=10.0, help="timeout of the z3 backends and the original formulation")
    parser.add_argument("--slow-samples", type=int, default=3, help="inputs on which the z3 backends and the original run")
    parser.add_argument("--model", type=Path, default=next((m for m in MODELS if m.is_file()), MODELS[-1]), help="the ImageNet model")
    parser.add_argument("--photos", type=int, default=3, help="ImageNet photos, spread over the 500 shared ones")
    parser.add_argument("--top-k", type=int, default=3000)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--photo-timeout", type=float, default=600.0, help="seconds one ImageNet explanation may take")
    parser.add_argument("--skip-imagenet", action="store_true")
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()
    if not args.skip_imagenet:
        imagenet_part(args.model, args.photos, args.top_k, args.gamma, args.photo_timeout)
    if not args.skip_mnist:
        mnist_part(args.original_timeout, args.slow_samples)
