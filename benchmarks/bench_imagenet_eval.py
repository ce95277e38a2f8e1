"""The paper's ImageNet table on EfficientNet-Lite0 and the shared photos: wall time and peak memory.

    .venv/bin/python benchmarks/bench_imagenet_eval.py [--limit N] [--workers 2] [--out DIR] [--markdown table.md]
    .venv/bin/python benchmarks/bench_imagenet_eval.py --out DIR --report-only --markdown table.md   # from the records

Runs `smug eval` on ../shared/data/imagenet (the raw export, the photos it classifies correctly,
in file order) with the original code's SMUG settings (top-k 3000, gamma 0, window 4), SMUG with
smugir's defaults, SMUG_base, IG (black), Blur IG, Guided IG, Grad-CAM, SmoothGrad, XRAI and
OptBox, then prints the table beside the paper's numbers (Inception v1, 3,304 images), the wall
time, the peak resident memory of the run (the largest of its processes), and the head-to-head
figures the documentation's claims rest on (how often one method's LSC beats another's, OptBox
against the best map, each method's seconds per photo: median, p95, max). The run is
resumable: rerun with the same --out to continue; --limit N runs the first N photos only.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGENET = ROOT.parent / "shared" / "data" / "imagenet"
METHODS = "smug,smug_default,smug_base,ig,blur_ig,guided_ig,gradcam,smoothgrad,xrai,optbox"
SMUG = ["--top-k", "3000", "--gamma", "0", "--window", "4"]
PREPROCESSING = ["--label-from-name", "--correct-only", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]
# The paper's Table (Inception v1, 3,304 correctly classified validation images): LSC median, Win %, sparsity %.
PAPER = {"smug": (-1.26, 40.9, 17.7), "smug_base": (-1.23, 33.5, 43.3), "ig": (-0.29, None, None),
         "gradcam": (-1.10, 37.8, None), "optbox": (-2.27, None, None)}


def command(args: argparse.Namespace) -> list[str]:
    smug = str(ROOT / ".venv" / "bin" / "smug")
    run = [smug, "eval", str(args.model), str(args.photos), *PREPROCESSING, *SMUG, *args.smug_options,
           "--methods", args.methods, "--figure-inputs", "4", "--workers", str(args.workers), "--out", str(args.out)]
    if args.limit:
        run += ["--limit", str(args.limit)]
    if args.report_only:
        run += ["--report-only"]
    return run


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(fraction: float | None, digits: int) -> str:
    return _cell(None if fraction is None else 100 * fraction, digits)


def markdown(summary_csv: Path) -> str:
    from smugir.evaluation.report import display_name

    with open(summary_csv, newline="") as stream:
        rows = list(csv.DictReader(stream))
    number = lambda text: float(text) if text not in ("", None) else None  # noqa: E731
    lines = ["| method | photos | LSC median [Q1, Q3] | paper LSC | Win % [95 % CI] | paper Win % | sparsity % | paper sparsity % "
             "| s / photo (map) | s / photo (LSC) | CPU s / photo | proven % | mean gap % |", "|---|" + "---:|" * 12]
    for row in rows:
        paper = PAPER.get(row["method"], (None, None, None))
        win = "-" if not row["win"] else f"{100 * float(row['win']):.1f} [{100 * float(row['win_low']):.1f}, {100 * float(row['win_high']):.1f}]"
        sparsity = number(row["sparsity"])
        lines.append(
            f"| {display_name(row['method'])} | {row['inputs']} | {float(row['lsc_median']):.2f} [{float(row['lsc_q1']):.2f}, "
            f"{float(row['lsc_q3']):.2f}] | {_cell(paper[0])} | {win} | {_cell(paper[1], 1)} | "
            f"{_percent(sparsity, 1)} | {_cell(paper[2], 1)} | {float(row['seconds']):.1f} | "
            f"{_cell(number(row.get('metric_seconds')), 1)} | {_cell(number(row.get('cpu_seconds')), 1)} | "
            f"{_percent(number(row.get('proven')), 0)} | {_percent(number(row.get('gap')), 2)} |"
        )
    return "\n".join(lines) + "\n"


# Head-to-head pairs behind docs/evaluation.md's reading: SMUG against the paper's rivals and its variants.
PAIRS = [("smug", "ig"), ("smug", "smug_base"), ("smug", "gradcam"), ("smug", "xrai"), ("smug", "smug_default")]


def head_to_head(records_jsonl: Path) -> str:
    """Per pair of methods, on the photos both scored: how often the first's LSC is lower, equal,
    higher, and the median of (second - first); OptBox against each photo's best map; quantiles
    of each method's wall seconds per photo (SMUG's include its first-layer IG and solve)."""
    from smugir.evaluation.run import record_from_line
    from smugir.exporters.results import ResultsFile

    lsc: dict[str, dict[str, float]] = {}
    seconds: dict[str, list[float]] = {}
    for line in ResultsFile(records_jsonl).records.values():
        if line.get("status") == "done" and line.get("lsc") is not None:
            record = record_from_line(line)
            lsc.setdefault(record.method, {})[record.sample] = record.lsc
            seconds.setdefault(record.method, []).append(record.seconds)
    lines = []
    for first, second in PAIRS:
        shared = sorted(set(lsc.get(first, {})) & set(lsc.get(second, {})))
        if shared:
            a, b = (np.array([lsc[m][s] for s in shared]) for m in (first, second))
            lines.append(f"{first} vs {second} on {len(shared)} photos: lower {np.mean(a < b):.0%}, equal {np.mean(a == b):.0%}, "
                         f"higher {np.mean(a > b):.0%}; median ({second} - {first}) {np.median(b - a):.2f}")
    maps = [m for m in lsc if m != "optbox"]
    boxed = [s for s in lsc.get("optbox", {}) if all(s in lsc[m] for m in maps)]
    if boxed and maps:
        below = sum(lsc["optbox"][s] < min(lsc[m][s] for m in maps) for s in boxed)
        lines.append(f"optbox below the best map's LSC on {below} of {len(boxed)} photos")
    for method, values in seconds.items():
        q = np.percentile(values, [50, 95, 100])
        lines.append(f"{method} seconds per photo (map; OptBox: its search): median {q[0]:.1f}, p95 {q[1]:.1f}, max {q[2]:.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=IMAGENET / "efficientnet_lite0.onnx")
    parser.add_argument("--photos", type=Path, default=IMAGENET / "images")
    parser.add_argument("--limit", type=int, help="only the first N photos (a bounded subset)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-imagenet-eval"), help="results folder (resumable)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from the records in --out")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown")
    parser.add_argument("smug_options", nargs="*", help="more smug eval options after --, e.g. -- --formulation relative")
    args = parser.parse_args()
    run = command(args)
    print(" ".join(run), flush=True)
    clock = time.perf_counter()
    code = subprocess.call(run)
    seconds = time.perf_counter() - clock
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"wall time {seconds:.0f} s, peak memory {peak:.0f} MB (largest process), exit {code}")
    summary = args.out / "summary.csv"
    if summary.exists():
        table = markdown(summary)
        print(table)
        if args.markdown:
            args.markdown.write_text(table)
        print(head_to_head(args.out / "records.jsonl"))
    return code


if __name__ == "__main__":
    sys.exit(main())
