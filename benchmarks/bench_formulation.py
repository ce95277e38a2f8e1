"""The published SMUG constraint against the baseline-relative one on real ImageNet photos.

    .venv/bin/python benchmarks/bench_formulation.py [--photos 100] [--time-limit S] [--records FILE]

EfficientNet-Lite0 (examples/imagenet) on the shared photos it classifies correctly, in file order,
preprocessed as its README says (RGB / 255, mean 0.5, std 0.5). The original code's ImageNet
settings: top-k 3000, 4x4 windows, zero baseline, gamma 0, and also gamma 0.5. One IG run per photo
is shared by the four problems (two formulations x two gammas). Per setting it prints how often the
minimal mask is empty, the sparsity (kept windows / 3,136), the LSC of the SMUG map (lower is
better; an empty map is scored as the whole photo), how many masks passed the float32 check, and
seconds per problem. Records go to --records as they finish (JSON lines), so a rerun continues
and `--table-only` prints the table of what is there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from smugir.attribution import first_layer_attribution
from smugir.constraints import FORMULATIONS
from smugir.evaluation.classifier import ImageClassifier
from smugir.evaluation.metrics import saliency_metric
from smugir.explain import finish, prepare_units
from smugir.firstlayer import first_layer
from smugir.inputs import load_input
from smugir.model import load_model
from smugir.units import input_layout, window_units

ROOT = Path(__file__).parent.parent
MODEL = ROOT / "examples/imagenet/efficientnet_lite0.onnx"
PHOTOS = ROOT.parent / "shared/data/imagenet/images"
GAMMAS = (0.0, 0.5)
TOP_K, WINDOW = 3000, 4
MEAN = STD = (0.5, 0.5, 0.5)


def explain_photo(model, layer, grid, units, classify, path: Path, timeout: float, thresholds: int) -> list[dict] | None:
    """The four records of one photo, or None when the model gets the photo wrong."""
    label = int(path.name[:4])
    x = load_input(str(path), model.input_shape, grid, 1 / 255, MEAN, STD)
    if int(np.argmax(model.run(x)[0])) != label:
        return None
    clock = time.perf_counter()
    ig = first_layer_attribution(model, layer, x, label)
    ig_seconds = time.perf_counter() - clock
    base = np.zeros_like(x)
    image = classify.to_image(x)
    records = []
    for formulation in FORMULATIONS:
        for gamma in GAMMAS:
            clock = time.perf_counter()
            setup = prepare_units(model, x, units, grid, base, label=label, top_k=TOP_K, gamma=gamma,
                                  formulation=formulation, attribution=ig)
            result = finish(setup, timeout=timeout)
            seconds = time.perf_counter() - clock
            kept = int(result.unit_mask.sum())
            saliency = classify.to_image(result.saliency)
            lsc = saliency_metric(classify, image, saliency, label, thresholds)
            records.append({
                "photo": path.name, "formulation": formulation, "gamma": gamma, "status": result.status,
                "kept": kept, "units": units.n_units, "neurons": len(result.neurons), "verified": result.best.verified,
                "lsc": lsc.score, "lsc_area": lsc.area, "seconds": seconds, "ig_seconds": ig_seconds, "ig_steps": ig.steps,
            })
    return records


def table(records: list[dict]) -> str:
    photos = len({r["photo"] for r in records})
    lines = [f"{photos} photos (EfficientNet-Lite0, correctly classified, file order), top-k {TOP_K}, {WINDOW}x{WINDOW} windows, zero baseline",
             "| formulation | gamma | empty masks | sparsity % median (quartiles) | LSC median (quartiles) | optimal | verified | s / problem |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for formulation in FORMULATIONS:
        for gamma in GAMMAS:
            rows = [r for r in records if r["formulation"] == formulation and r["gamma"] == gamma]
            if not rows:
                continue
            sparsity = np.percentile([100 * r["kept"] / r["units"] for r in rows], [25, 50, 75])
            lsc = np.percentile([r["lsc"] for r in rows], [25, 50, 75])
            empty = sum(r["kept"] == 0 for r in rows)
            lines.append(
                f"| {formulation} | {gamma:g} | {empty}/{len(rows)} | {sparsity[1]:.1f} ({sparsity[0]:.1f}-{sparsity[2]:.1f}) | "
                f"{lsc[1]:.2f} ({lsc[0]:.2f} to {lsc[2]:.2f}) | {sum(r['status'] == 'optimal' for r in rows)} | "
                f"{sum(bool(r['verified']) for r in rows)} | {statistics.median(r['seconds'] for r in rows):.1f} |")
    ig = {r["photo"]: (r["ig_seconds"], r["ig_steps"]) for r in records}
    if ig:
        lines.append(f"IG per photo (shared by the four problems): median {statistics.median(s for s, _ in ig.values()):.1f} s, "
                     f"median {statistics.median(n for _, n in ig.values()):g} intervals")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100, help="correctly classified photos to explain (default 100)")
    parser.add_argument("--time-limit", type=float, default=None, help="stop starting new photos after S seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="solver seconds per problem (default 30)")
    parser.add_argument("--thresholds", type=int, default=100, help="LSC thresholds per map (default 100, as smug eval)")
    parser.add_argument("--images", default=str(PHOTOS), help=f"the shared photos (default {PHOTOS})")
    parser.add_argument("--records", default="/tmp/bench_formulation/records.jsonl")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    records_path = Path(args.records)
    records_path.parent.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()] if records_path.exists() else []
    if not args.table_only:
        model = load_model(MODEL)
        layer = first_layer(model)
        grid = input_layout(model.input_shape)
        units = window_units(grid, WINDOW)
        classify = ImageClassifier(model, grid)
        done = {r["photo"] for r in records}
        skipped_wrong = 0
        start = time.perf_counter()
        for path in sorted(Path(args.images).glob("*.jpg")):
            if len({r["photo"] for r in records}) >= args.photos:
                break
            if args.time_limit and time.perf_counter() - start > args.time_limit:
                print(f"time limit reached after {time.perf_counter() - start:.0f} s")
                break
            if path.name in done:
                continue
            found = explain_photo(model, layer, grid, units, classify, path, args.timeout, args.thresholds)
            if found is None:
                skipped_wrong += 1
                continue
            with records_path.open("a") as stream:
                stream.write("".join(json.dumps(r) + "\n" for r in found))
            records += found
            print(f"{len({r['photo'] for r in records}):4d} {path.name}: " + ", ".join(
                f"{r['formulation'][:4]} g{r['gamma']:g} {r['kept']} kept LSC {r['lsc']:.2f}" for r in found)
                + f"; IG {found[0]['ig_seconds']:.1f} s", flush=True)
        print(f"misclassified photos skipped this run: {skipped_wrong}")
    print(table(records))


if __name__ == "__main__":
    main()
