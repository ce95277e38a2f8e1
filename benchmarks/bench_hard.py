"""Hard masking problems: how often each backend proves the optimum within 1, 10 and 60 s.

    .venv/bin/python benchmarks/bench_hard.py [--models mnist-net_256x4,...] [--top-k 32,64]
        [--limit N] [--gamma G] [--backends highs,cpsat,portfolio,scip,exact] [--timeout 60]
        [--cache DIR] [--per-problem]

The family: the bundled real samples (15 MNIST, 21 CIFAR) on mnist-net_256x4, mnist_relu_9_200,
cifar10_small and resnet_2b; pixel units, IG ranking, top-k 32 and 64, gamma 0.5 (`--gamma`).
`--models efficientnet_lite0` adds the five photos of examples/imagenet on its EfficientNet-Lite0
(50,176 pixel units; use --top-k 3000; IG over the stem takes ~25 CPU s and ~3 GB per photo). Problems are
built once and cached as .npz in --cache (default /tmp/smugir-bench-hard), and so is every
(backend, problem) run, so a bounded subset can be run now and more later. One run per backend and
problem, with the largest checkpoint as its time limit; the progress trace (SolveProgress) gives
the gap each backend had left at every checkpoint. Every optimum two backends proved must agree
(the script says so, or fails). CPU is shared: use --limit and --models for a bounded subset.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests" / "data"
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465])
CIFAR_STD = np.array([0.2471, 0.2435, 0.2616])
MODELS = {
    "mnist-net_256x4": DATA / "mnist" / "mnist-net_256x4.onnx",
    "mnist_relu_9_200": DATA / "mnist" / "mnist_relu_9_200.onnx",
    "cifar10_small": DATA / "cifar" / "cifar10_small.onnx",
    "resnet_2b": DATA / "cifar" / "resnet_2b.onnx",
    "efficientnet_lite0": ROOT / "examples" / "imagenet" / "efficientnet_lite0.onnx",
}
PHOTOS = sorted((ROOT / "examples" / "imagenet").glob("*.jpg"))


def samples(name: str, model=None) -> list[np.ndarray]:
    if name == "efficientnet_lite0":  # (RGB / 255 - 0.5) / 0.5, as examples/imagenet/README.md says
        from smugir.inputs import load_input
        from smugir.units import input_layout

        layout = input_layout(model.input_shape)
        return [load_input(str(p), model.input_shape, layout, mean=(0.5,) * 3, std=(0.5,) * 3) for p in PHOTOS]
    if name.startswith("mnist"):
        return np.load(DATA / "mnist" / "mnist_test_samples.npz")["images"].astype(np.float32)
    images = np.load(DATA / "cifar" / "cifar10_test_samples.npz")["images_nhwc"].astype(np.float32)
    if name == "resnet_2b":  # normalised outside the model, NCHW (tests/data/README.md)
        return ((images - CIFAR_MEAN) / CIFAR_STD).transpose(0, 3, 1, 2).astype(np.float32)
    return images


def problems(names: list[str], top_ks: list[int], limit: int | None, cache: Path, gamma: float):
    """(key, MaskProblem) for the chosen part of the family, built once and cached (sparse)."""
    import scipy.sparse

    from smugir.problem import MaskProblem

    for name in names:
        model = None
        if name == "efficientnet_lite0":
            from smugir.model import load_model

            model = load_model(MODELS[name])
        images = samples(name, model)[:limit]
        for top_k in top_ks:
            for index, image in enumerate(images):
                key = f"{name}_k{top_k}" + ("" if gamma == 0.5 else f"_g{gamma:g}") + f"_{index}"
                path = cache / f"{key}.npz"
                if not path.exists():
                    from smugir.explain import prepare
                    from smugir.model import load_model

                    model = model or load_model(MODELS[name])
                    problem = prepare(model, image, top_k=top_k, gamma=gamma).problem
                    rows = scipy.sparse.csr_array(problem.coefficients)
                    np.savez_compressed(path, data=rows.data, indices=rows.indices, indptr=rows.indptr, shape=rows.shape,
                                        bounds=problem.bounds, weights=problem.weights)
                data = np.load(path)
                if "coefficients" in data:  # a problem cached densely by an earlier version
                    coefficients = data["coefficients"]
                else:
                    coefficients = scipy.sparse.csr_array((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
                yield key, MaskProblem(coefficients, data["bounds"], data["weights"], {})


def run(problem, backend: str, timeout: float) -> dict:
    from smugir.solve import solve

    trace: list[tuple[float, float | None, float | None]] = []
    clock = time.monotonic()
    (solution,) = solve(problem, backend, timeout=timeout,
                        on_progress=lambda p: trace.append((time.monotonic() - clock, p.incumbent, p.bound)))
    seconds = time.monotonic() - clock
    proven = solution.status in ("optimal", "infeasible")
    return {"status": solution.status, "objective": solution.objective, "bound": solution.bound, "seconds": seconds,
            "proven": proven, "trace": trace, "presolve": solution.details.get("presolve")}


def gap_at(result: dict, checkpoint: float) -> float | None:
    """Absolute gap (incumbent - bound, in units) the run had left at `checkpoint` seconds."""
    if result["proven"] and result["seconds"] <= checkpoint:
        return 0.0
    incumbent = bound = None
    for seconds, value, lower in result["trace"]:
        if seconds > checkpoint:
            break
        incumbent = value if value is not None else incumbent
        bound = lower if lower is not None else bound
    if incumbent is None:
        return None
    return incumbent - (bound if bound is not None else 0.0)


def time_to_best(result: dict) -> float | None:
    """Seconds until the run's final mask value was first reported (None: no mask)."""
    if result["objective"] is None:
        return None
    for seconds, value, _ in result["trace"]:
        if value is not None and value <= result["objective"]:
            return seconds
    return result["seconds"]


def per_problem(results: dict[str, dict[str, dict]], backends: list[str]) -> None:
    print("| problem | backend | best | time to best (s) | proven? (s) | gap (objective - bound) |")
    print("|---|---|---|---|---|---|")
    for key, by_backend in results.items():
        for backend in backends:
            r = by_backend[backend]
            best = time_to_best(r)
            proof = f"yes ({r['seconds']:.2f})" if r["proven"] else "no"
            gap = "-" if r["objective"] is None or r["bound"] is None else f"{r['objective'] - r['bound']:g}"
            print(f"| {key} | {backend} | {r['objective']} | {'-' if best is None else f'{best:.2f}'} | {proof} | {gap} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mnist-net_256x4,mnist_relu_9_200,cifar10_small,resnet_2b")
    parser.add_argument("--per-problem", action="store_true", help="also a table per problem: time to best, proven?, gap")
    parser.add_argument("--top-k", default="32,64")
    parser.add_argument("--limit", type=int, help="first N samples of each model")
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--backends", default="highs,cpsat,portfolio")
    parser.add_argument("--checkpoints", default="1,10,60")
    parser.add_argument("--timeout", type=float, help="time limit per run (default: the largest checkpoint)")
    parser.add_argument("--cache", default="/tmp/smugir-bench-hard")
    args = parser.parse_args()
    checkpoints = [float(c) for c in args.checkpoints.split(",")]
    timeout = args.timeout or max(checkpoints)
    checkpoints = [c for c in checkpoints if c <= timeout]
    backends = args.backends.split(",")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    runs_file = cache / "runs.jsonl"
    done = {}
    if runs_file.exists():
        for line in runs_file.read_text().splitlines():
            record = json.loads(line)
            done[(record["key"], record["backend"], record["timeout"])] = record
    results: dict[str, dict[str, dict]] = {}
    for key, problem in problems(args.models.split(","), [int(k) for k in args.top_k.split(",")], args.limit, cache, args.gamma):
        results[key] = {}
        for backend in backends:
            record = done.get((key, backend, timeout))
            if record is None:
                record = {"key": key, "backend": backend, "timeout": timeout, **run(problem, backend, timeout)}
                with runs_file.open("a") as stream:
                    stream.write(json.dumps(record) + "\n")
            results[key][backend] = record
            print(f"{key:28} {backend:10} {record['status']:9} {record['objective']} bound {record['bound']} {record['seconds']:.2f} s", file=sys.stderr, flush=True)
    agreed, disagreements = 0, []
    for key, by_backend in results.items():
        optima = {b: r["objective"] for b, r in by_backend.items() if r["status"] == "optimal"}
        if len(set(optima.values())) > 1:
            disagreements.append((key, optima))
        elif len(optima) >= 2:
            agreed += 1
    print(f"\n{len(results)} problems; timeout {timeout:g} s per run; {agreed} optima proven by two or more backends, all agreeing"
          if not disagreements else f"\nDISAGREEMENTS: {disagreements}")
    families = sorted({key.rsplit("_", 1)[0] for key in results})
    header = "| family | backend | " + " | ".join(f"proven <= {c:g} s" for c in checkpoints) + " | median s to proof | " + " | ".join(f"mean gap @ {c:g} s" for c in checkpoints) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for family in families:
        keys = [k for k in results if k.rsplit("_", 1)[0] == family]
        for backend in backends:
            rows = [results[k][backend] for k in keys]
            proven = [sum(r["proven"] and r["seconds"] <= c for r in rows) for c in checkpoints]
            seconds = [r["seconds"] if r["proven"] else float("inf") for r in rows]
            median = statistics.median(seconds)
            gaps = []
            for c in checkpoints:
                values = [gap_at(r, c) for r in rows]
                known = [v for v in values if v is not None]
                gaps.append(f"{np.mean(known):.2f}" + ("" if len(known) == len(values) else f" ({len(values) - len(known)} no mask)") if known else "-")
            cells = [f"{p}/{len(rows)}" for p in proven] + ["> limit" if median == float("inf") else f"{median:.2f}"] + gaps
            print(f"| {family} | {backend} | " + " | ".join(cells) + " |")
    if args.per_problem:
        per_problem(results, backends)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
