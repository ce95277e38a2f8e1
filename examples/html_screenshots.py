"""Screenshots of report.html and index.html for docs/, in the headless Chromium the tests use.

    .venv/bin/python examples/html_screenshots.py [--work DIR]

Explains the hen and evaluates the five photos of examples/imagenet/ with EfficientNet-Lite0
(several minutes on 2 cores; the evaluation resumes from --work), opens both pages as
tests/test_browser.py does (failing on a console error, a broken picture, a request outside the
page's folder or a blank page), and writes docs/report_html.png and docs/eval_index.png at a
1000-pixel-wide viewport, so that text stays legible at README width.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smugir.cli import main  # noqa: E402
from tests.browser import browser, visit  # noqa: E402

IMAGENET = ROOT / "examples" / "imagenet"
MODEL = IMAGENET / "efficientnet_lite0.onnx"
PREPROCESSING = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--top-k", "3000", "--gamma", "0.5", "--window", "4"]
METHODS = "smug,smug_default,ig,gradcam,xrai,optbox"
WIDTH = 1000


def shoot(context, page_file: Path, picture: Path, height: int, ready: str = "") -> None:
    seen = visit(context, page_file)
    problems = seen.problems()
    if problems:
        raise SystemExit(f"{page_file}: {problems[0]}")
    if ready:
        seen.page.evaluate(ready)
    seen.page.evaluate("window.scrollTo(0, 0)")
    seen.page.screenshot(path=str(picture), clip={"x": 0, "y": 0, "width": WIDTH, "height": height})
    print(f"wrote {picture}")


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/smugir-screenshots"), help="outputs of explain and eval (eval resumes)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report, evaluation = args.work / "hen", args.work / "eval"
    if main(["explain", str(MODEL), str(IMAGENET / "0008_n01514859_hen.jpg"), *PREPROCESSING, "--out", str(report), "--force"]) != 0:
        return 1
    photos = [str(p) for p in sorted(IMAGENET.glob("*.jpg")) if p.stem[:4].isdigit()]
    folder = args.work / "photos"
    folder.mkdir(exist_ok=True)
    for photo in photos:  # the photos alone (examples/imagenet also holds the model and a figure)
        shutil.copyfile(photo, folder / Path(photo).name)
    code = main(["eval", str(MODEL), str(folder), "--label-from-name", "--correct-only", *PREPROCESSING,
                 "--methods", METHODS, "--out", str(evaluation), "--force"])
    if code != 0:
        return code
    with browser({"width": WIDTH, "height": 900}) as context:
        shoot(context, report / "report.html", ROOT / "docs" / "report_html.png", 900)
        shoot(context, evaluation / "index.html", ROOT / "docs" / "eval_index.png", 1250)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
