"""The paper's comparison table on the bundled real models: LSC, Win %, sparsity, seconds per input.

    .venv/bin/python benchmarks/bench_evaluation.py [--markdown table.md] [--skip-resnet] [--timeout 30]

MNIST: mnist-net_256x2 on its 15 test samples (all classified correctly). CIFAR: cifar10_small
and resnet_2b (images normalised with the CIFAR mean/std, as the model was trained) on the
correctly classified samples of the 21 bundled ones. Rows: SMUG, SMUG_base, IG, Grad-CAM (CIFAR
only: the MNIST net has no convolution), SmoothGrad, XRAI, OptBox. SMUG runs with smugir's
defaults (top-k 32 neurons by IG, gamma 0.5, single-pixel units, zero baseline, HiGHS).
Text: the polarity CNN of examples/text on the correctly classified ones of its first
--sentences held-out test sentences, word scores and the text saliency metric.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smugir.datasets import read_dataset
from smugir.evaluation.baselines import setting_for
from smugir.evaluation.comparison import OPTBOX, compare, summarize
from smugir.evaluation.report import print_table, summary_markdown, summary_table
from smugir.evaluation.samples import black_and_white, load_samples
from smugir.evaluation.sentences import TEXT_METHODS, compare_sentences
from smugir.model import load_model
from smugir.text import Vocabulary
from smugir.units import input_layout

DATA = Path(__file__).parent.parent / "tests" / "data"
TEXT = Path(__file__).parent.parent / "examples" / "text"
CIFAR_SAMPLES = f"{DATA / 'cifar' / 'cifar10_test_samples.npz'}:images_nhwc"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
SMUG = {"top_k": 32, "gamma": 0.5, "window": None, "baseline": "zero", "solver": "highs"}
METHODS = ("smug", "smug_base", "ig", "gradcam", "smoothgrad", "xrai", OPTBOX)

# name, model, dataset, read the archive as pixels?, mean, std, only correctly classified
DATASETS = [
    ("MNIST", DATA / "mnist" / "mnist-net_256x2.onnx", str(DATA / "mnist" / "mnist_test_samples.npz"), False, (0.0,), (1.0,), True),
    ("CIFAR-10", DATA / "cifar" / "cifar10_small.onnx", CIFAR_SAMPLES, False, (0.0,), (1.0,), True),
    ("CIFAR-10", DATA / "cifar" / "resnet_2b.onnx", CIFAR_SAMPLES, True, CIFAR_MEAN, CIFAR_STD, True),
]


def measure(name: str, path: Path, dataset: str, pixels: bool, mean, std, only_correct: bool, timeout: float | None) -> str:
    model = load_model(path)
    layout = input_layout(model.input_shape)
    samples = load_samples(dataset, model, layout, pixels, 1.0, mean, std)
    low, high = black_and_white(mean, std, layout.channels)
    setting = setting_for(model, layout, low, high, smug={**SMUG, "timeout": timeout})
    methods = [m for m in METHODS if m != "gradcam" or name != "MNIST"]
    clock = time.perf_counter()
    result = compare(model, samples.inputs, samples.labels, methods, setting, samples.ids, only_correct)
    rows = summarize(result.records)
    title = f"{name}: {path.name}, {len(result.images)} of {len(samples.ids)} inputs (correctly classified)"
    print_table(summary_table(rows, title))
    for method, reason in result.unavailable.items():
        print(f"unavailable {method}: {reason}")
    print(f"{time.perf_counter() - clock:.1f} s\n")
    return f"**{title}**\n\n{summary_markdown(rows)}"


def measure_text(count: int, timeout: float | None) -> str:
    model = load_model(TEXT / "polarity_cnn.onnx")
    items = read_dataset(TEXT / "test_sentences.tsv", model.input_shape, None)[:count]
    clock = time.perf_counter()
    records, skipped = compare_sentences(model, Vocabulary.load(TEXT / "vocab.txt"), items, TEXT_METHODS,
                                         {"top_k": 32, "gamma": 0.5, "timeout": timeout}, only_correct=True)
    rows = summarize(records)
    title = f"Text: {model.path.name}, {len(items) - len(skipped)} of {len(items)} test sentences (correctly classified)"
    print_table(summary_table(rows, title))
    print(f"{time.perf_counter() - clock:.1f} s\n")
    return f"**{title}**\n\n{summary_markdown(rows)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", help="also write the tables as markdown to this file")
    parser.add_argument("--skip-resnet", action="store_true", help="leave out resnet_2b")
    parser.add_argument("--timeout", type=float, default=30.0, help="SMUG's solver timeout per input in seconds (default 30)")
    parser.add_argument("--sentences", type=int, default=200, help="test sentences of the text model (0: skip text)")
    args = parser.parse_args()
    clock = time.perf_counter()
    chosen = [d for d in DATASETS if not (args.skip_resnet and d[1].stem == "resnet_2b")]
    tables = [measure(*dataset, timeout=args.timeout) for dataset in chosen]
    if args.sentences:
        tables.append(measure_text(args.sentences, args.timeout))
    settings = (f"SMUG: top-k {SMUG['top_k']}, gamma {SMUG['gamma']}, single-pixel units, zero baseline, {SMUG['solver']}, "
                f"timeout {args.timeout:g} s per input; IG: 64 steps, black baseline; SmoothGrad: 25 samples, noise 15 %; "
                "XRAI: IG 64 steps, black+white baselines; LSC: <= 100 thresholds; OptBox: 10 x 10 grid (2,025 boxes).")
    total = time.perf_counter() - clock
    print(f"total {total:.0f} s\n{settings}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(tables) + f"\nSettings: {settings} Whole run: {total:.0f} s.\n")


if __name__ == "__main__":
    main()
