"""Command-line option declarations shared by several `smug` commands.

`smugir.cli` and `smugir.evaluation.commands` both declare the options that define a masking
problem; they live here so that neither imports the other (nothing imports `smugir.cli`).
"""

from __future__ import annotations

import argparse

EXIT_CODES = (
    "exit codes: 0 success (every mask verified); 1 a mask that did not verify in float32, or a batch with error lines; "
    "2 bad input, unsupported model or an output that cannot be written (one line on stderr, nothing written); "
    "3 no meaningful explanation (status no_units, non_finite, no_neurons or baseline_suffices, with the reason); "
    "130 interrupted (Ctrl-C); 143 terminated (SIGTERM)"
)


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def image_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 28x28, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected a positive HEIGHTxWIDTH, got {text!r}")
    return height, width


def add_problem_options(command: argparse.ArgumentParser) -> None:
    """What defines a masking problem: shared by explain, export, export-benchmarks, batch, eval and sanity."""
    from smugir.constraints import DEFAULT_FORMULATION, FORMULATIONS
    from smugir.explain import METHODS, RANKINGS
    from smugir.units import LAYOUTS

    command.add_argument("model", help="path to an .onnx classifier")
    command.add_argument("--vocab", help="text models: the vocabulary file (one token per line, line number = id)")
    command.add_argument("--top-k", type=int, default=32, help="first-layer neurons to keep active (default 32)")
    command.add_argument("--rank", choices=RANKINGS, default="ig", help="choose neurons by Integrated Gradients (default) or by raw activation")
    command.add_argument("--gamma", type=float, default=0.5, help="keep each neuron above gamma x its value, 0 <= gamma < 1 (default 0.5)")
    command.add_argument("--formulation", choices=FORMULATIONS, default=DEFAULT_FORMULATION,
                         help="baseline-relative: pre(masked) - pre(baseline) > gamma (pre(x) - pre(baseline)) on neurons the input moved "
                         f"(never satisfied by the baseline alone); published: pre(masked) > gamma pre(x) (default {DEFAULT_FORMULATION})")
    command.add_argument("--window", type=int, help="mask unit: WxW windows of pixels (default: single pixels)")
    command.add_argument("--segments", help="mask unit: segments from an integer label map (.npy, HxW) or slic:N superpixels")
    command.add_argument("--baseline", default="zero", help="what masked units become: zero, mean, blur[:SIGMA] or a number; text: zero or pad (default zero)")
    command.add_argument("--method", choices=METHODS, default="smug", help="smug (minimal mask), smug_base (no minimisation), network (whole ReLU MLP)")
    command.add_argument("--margin", type=float, default=0.0, help="network method: the label's logit must beat the others by this much")
    command.add_argument("--ig-steps", type=int, help="fixed Integrated Gradients steps (default: adaptive until 1%% completeness error)")
    command.add_argument("--scale", type=float, default=1 / 255, help="image files and pixel archives: multiply pixel values by this (default 1/255)")
    command.add_argument("--mean", type=floats, default=(0.0,), help="image files and pixel archives: subtract per-channel mean after scaling, e.g. 0.4914,0.4822,0.4465")
    command.add_argument("--std", type=floats, default=(1.0,), help="image files and pixel archives: divide by per-channel std after the mean")
    command.add_argument("--layout", choices=LAYOUTS, default="auto", help="how the model input holds the image (default auto)")
    command.add_argument("--image-shape", type=image_shape, help="HxW of a flat input (default: square)")
    command.add_argument("--force", action="store_true", help="replace files that already exist")
