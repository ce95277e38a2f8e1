"""What `index.html` of `smug eval` / `smug sanity` holds: every input, light pages, escaped names.

The pages are also opened in headless Chromium by tests/test_browser.py; these checks read the
files and run everywhere.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from smugir.evaluation.comparison import Comparison
from smugir.evaluation.plots import PANEL_PIXELS, map_grid, randomisation_curves
from smugir.evaluation.gallery import write_sanity_index, write_text_index
from smugir.exporters.html_eval import PAGE_SIZE
from smugir.exporters.html_page import esc
from tests import galleries
from tests.galleries import HOSTILE, TEXT

MARKUP = [h for h in HOSTILE if re.search(r"[<>&]", h)]  # what could open an element or an entity


def gallery_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', page, re.S).group(1))


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def thousand(tmp_path_factory):
    """A 1,000-input gallery (4 methods) with every thumbnail file written."""
    out = tmp_path_factory.mktemp("thousand")
    return galleries.write(out, galleries.records(1000))


def test_every_input_and_every_map_of_a_run_is_in_the_gallery(tmp_path):
    out = tmp_path / "eval"
    page = galleries.image_eval(out).read_text(encoding="utf-8")
    data, records = gallery_data(page), rows(out / "records.csv")
    assert [entry["id"] for entry in data["inputs"]] == list(dict.fromkeys(r["sample"] for r in records))
    for entry in data["inputs"]:
        mine = [r for r in records if r["sample"] == entry["id"]]
        assert entry["label"] == int(mine[0]["label"])
        assert [m["method"] for m in entry["maps"]] == [r["method"] for r in mine]
        for name in [entry["image"], *(m["src"] for m in entry["maps"])]:
            assert re.fullmatch(r"gallery/[0-9a-f]{20}(_[a-z_]+)?\.jpg", name) and (out / name).read_bytes()[:3] == b"\xff\xd8\xff"
        assert all(m["curve"] and m["best"] in m["curve"] for m in entry["maps"] if m["method"] != "optbox")
    assert "data:image" not in page  # pictures are files beside the page, never inlined
    summary = re.search(r"<h2>Summary</h2>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    assert summary.count("<tr>") == len({r["method"] for r in records})


def test_a_thousand_input_gallery_stays_light(thousand):
    page = thousand.read_text(encoding="utf-8")
    data = gallery_data(page)
    assert len(data["inputs"]) == 1000 and data["page_size"] == PAGE_SIZE
    assert all((thousand.parent / m["src"]).is_file() for entry in data["inputs"] for m in entry["maps"])
    # no picture is in the page itself: the script makes one page's <img loading=lazy> at a time
    assert "data:image" not in page and "<img" not in page
    assert len(page.encode()) < 2.5e6  # measured 2.0 MB (1.6 MB of it the 4,000 LSC curves)


def test_text_gallery_highlights_each_methods_words(tmp_path):
    out = tmp_path / "text"
    data = gallery_data(galleries.text_eval(out).read_text(encoding="utf-8"))
    sentences = [line.split("\t", 1)[1].split() for line in (TEXT / "test_sentences.tsv").read_text().splitlines()]
    assert len(data["inputs"]) == len({r["sample"] for r in rows(out / "records.csv")}) > 0
    for entry in data["inputs"]:
        assert {m["method"] for m in entry["maps"]} == {"smug", "occlusion"}
        for shown in entry["maps"]:
            words = [word for word, _ in shown["words"]]
            assert words == sentences[int(entry["id"])][: len(words)] and len(words) > 1
            shades = [shade for _, shade in shown["words"]]
            assert any(shade > 0 for shade in shades) and all(shade == 0 or 0.25 <= shade <= 1 for shade in shades)


def test_sanity_index_shows_every_randomisation_step(tmp_path):
    out = tmp_path / "sanity"
    page = galleries.sanity(out).read_text(encoding="utf-8")
    steps = {(int(r["step"]), r["layer"]) for r in rows(out / "sanity.csv")}
    assert len(steps) == 6  # the original and one step per randomised layer
    for step, layer in steps:
        assert f"<td>{step}</td><td>{esc(layer or '(original)')}</td>" in page
    assert '<img src="sanity.png"' in page and (out / "sanity.png").read_bytes()[:4] == b"\x89PNG"


def _no_markup_from(page: str, scripts: int) -> None:
    for text in MARKUP:
        assert text not in page
    assert "<script>alert" not in page and "<img src=x" not in page and "</textarea>" not in page
    assert page.count("<script") == scripts  # the page's own scripts, none a name brought


def test_hostile_ids_titles_words_and_layers_never_become_markup(tmp_path):
    chosen = galleries.records(len(HOSTILE), ids=HOSTILE)
    page = galleries.write(tmp_path / "eval", chosen, title=" ".join(HOSTILE)).read_text(encoding="utf-8")
    _no_markup_from(page, 3)  # the gallery's data and script, the table sorting
    data = gallery_data(page)
    assert [entry["id"] for entry in data["inputs"]] == list(HOSTILE)  # ids survive, byte for byte
    assert all(re.fullmatch(r"gallery/[0-9a-f]{20}(_[a-z]+)?\.jpg", m["src"]) for e in data["inputs"] for m in e["maps"])

    (tmp_path / "text").mkdir()
    words = {(sample, method): ([*HOSTILE, "plain"], [1.0] * (len(HOSTILE) + 1)) for sample in HOSTILE for method in ("smug", "ig")}
    text = write_text_index(tmp_path / "text", galleries.records(len(HOSTILE), HOSTILE, ("smug", "ig")), words, HOSTILE[2])
    page = text.read_text(encoding="utf-8")
    _no_markup_from(page, 3)
    assert gallery_data(page)["inputs"][0]["maps"][0]["words"][2][0] == HOSTILE[2]

    (tmp_path / "sanity").mkdir()
    page = write_sanity_index(tmp_path / "sanity", galleries.sanity_records(HOSTILE), HOSTILE[1]).read_text(encoding="utf-8")
    _no_markup_from(page, 0)
    assert esc(HOSTILE[0]) in page


def test_evaluation_figures_stay_readable_at_readme_width(tmp_path):
    """README and docs show figures about 900 pixels wide: the map grid grows downwards with the
    methods (inputs are its columns), and the randomisation curves label steps, not layer names."""
    methods = ("smug", "smug_base", "ig", "blur_ig", "guided_ig", "gradcam", "smoothgrad", "xrai", "optbox", "smug_default")
    chosen = galleries.records(4, methods=methods)
    image = np.random.default_rng(0).random((3, 56, 56))
    maps = {(r.sample, r.method): np.random.default_rng(1).random((56, 56)) for r in chosen if r.method != "optbox"}
    comparison = Comparison(chosen, maps, {r.sample: image for r in chosen}, [])
    grid = Image.open(map_grid(comparison, tmp_path / "maps.png"))
    assert 850 <= grid.width <= 1100 and grid.height > 10 * PANEL_PIXELS
    curves = Image.open(randomisation_curves(galleries.sanity_records([f"/block.{i}/a_long_layer_name/Conv" for i in range(5)]),
                                             tmp_path / "sanity.png"))
    assert curves.width <= 1100 and curves.height < 450
