"""The README's and docs' pictures of explanations and evaluations, remade from real runs.

    .venv/bin/python examples/html_screenshots.py [--work DIR]

Runs `make demo`'s explanation (docs/demo_explanation.png), explains the hen with the README's
command (examples/imagenet/hen_explanation.png) and evaluates the photos of examples/imagenet/
with EfficientNet-Lite0 and every method at benchmarks/bench_imagenet_eval.py's settings
(docs/imagenet_maps.png; 15-30 minutes on 2 cores, resumed from --work). Then opens report.html and
index.html in the headless Chromium the tests use, as tests/test_browser.py does (failing on a
console error, a broken picture, a request outside the page's folder or a blank page), and writes
docs/report_html.png and docs/eval_index.png at a 1000-pixel-wide viewport, so that text stays
legible at README width.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from smugir.cli import main  # noqa: E402
from tests.browser import browser, visit  # noqa: E402

IMAGENET = ROOT / "examples" / "imagenet"
MODEL = IMAGENET / "efficientnet_lite0.onnx"
NORMALISE = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]
HEN = [*NORMALISE, "--top-k", "3000", "--gamma", "0.5", "--window", "4"]  # the README's command
EVAL = [*NORMALISE, "--top-k", "3000", "--gamma", "0", "--window", "4"]  # benchmarks/bench_imagenet_eval.py's
METHODS = "smug,smug_default,smug_base,ig,blur_ig,guided_ig,gradcam,smoothgrad,xrai,optbox"
WIDTH = 1000


def shoot(context, page_file: Path, picture: Path, parts: list[tuple[str, int]]) -> None:
    """Each part: (CSS selector, height): a clip of the page from that element's top, stacked into one picture."""
    seen = visit(context, page_file)
    problems = seen.problems()
    if problems:
        raise SystemExit(f"{page_file}: {problems[0]}")
    clips = []
    for selector, height in parts:
        top = seen.page.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().top + window.scrollY")
        shot = seen.page.screenshot(full_page=True, clip={"x": 0, "y": max(0, top - 8), "width": WIDTH, "height": height})
        clips.append(Image.open(io.BytesIO(shot)).convert("RGB"))
    canvas = Image.new("RGB", (WIDTH, sum(c.height for c in clips) + 6 * (len(clips) - 1)), (190, 190, 190))
    for number, clip in enumerate(clips):
        canvas.paste(clip, (0, sum(c.height + 6 for c in clips[:number])))
    canvas.save(picture, optimize=True)
    print(f"wrote {picture}")


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/smugir-screenshots"), help="outputs of explain and eval (eval resumes)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    demo, report, evaluation = args.work / "demo", args.work / "hen", args.work / "eval"
    if main(["explain", str(ROOT / "tests" / "data" / "mnist" / "mnist-net_256x2.onnx"), str(ROOT / "examples" / "data" / "mnist_test_2.png"),
             "--out", str(demo), "--force"]) != 0:
        return 1
    shutil.copyfile(demo / "explanation.png", ROOT / "docs" / "demo_explanation.png")
    if main(["explain", str(MODEL), str(IMAGENET / "0008_n01514859_hen.jpg"), *HEN, "--out", str(report), "--force"]) != 0:
        return 1
    shutil.copyfile(report / "explanation.png", IMAGENET / "hen_explanation.png")
    photos = [str(p) for p in sorted(IMAGENET.glob("*.jpg")) if p.stem[:4].isdigit()]
    folder = args.work / "photos"
    folder.mkdir(exist_ok=True)
    for photo in photos:  # the photos alone (examples/imagenet also holds the model and a figure)
        shutil.copyfile(photo, folder / Path(photo).name)
    code = main(["eval", str(MODEL), str(folder), "--label-from-name", "--correct-only", *EVAL,
                 "--methods", METHODS, "--figure-inputs", "4", "--out", str(evaluation), "--force"])
    if code != 0:
        return code
    shutil.copyfile(evaluation / "maps.png", ROOT / "docs" / "imagenet_maps.png")
    with browser({"width": WIDTH, "height": 900}) as context:
        shoot(context, report / "report.html", ROOT / "docs" / "report_html.png", [("h1", 900)])
        shoot(context, evaluation / "index.html", ROOT / "docs" / "eval_index.png", [("h1", 560), (".gallery", 760)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
