"""The HTML pages in a real browser: Debian's headless Chromium, driven by playwright.

report.html (MNIST explain), index.html of an image and a text evaluation and of `smug sanity`
must load with no console error, no broken picture, no request outside their folder and not blank;
the gallery's sorting, filters and paging are clicked and the DOM read back; a 1,000-input gallery
renders fast and loads only its first page's pictures; and names built to inject markup show as
text with no script run. Screenshots for docs/ are made by examples/html_screenshots.py, not here.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from smugir.cli import main
from smugir.evaluation.gallery import winners
from smugir.evaluation.report import display_name
from smugir.exporters.html_eval import PAGE_SIZE
from tests import galleries
from tests.browser import browser, chromium, visit
from tests.galleries import HOSTILE, MNIST, MNIST_SAMPLES, TEXT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")]

CARD_TITLES = "Array.from(document.querySelectorAll('.card')).map(c => c.firstChild.textContent)"


@pytest.fixture(scope="module")
def context():
    with browser() as opened:
        yield opened


def _clean(context, path):
    seen = visit(context, path)
    assert seen.problems() == []
    return seen


def test_report_html_renders_clean(context, tmp_path):
    out = tmp_path / "explain"
    assert main(["explain", str(MNIST), f"{MNIST_SAMPLES}:images[4]", "--out", str(out), "--top-k", "16"]) == 0
    page = _clean(context, out / "report.html").page
    assert page.inner_text("h1").startswith("smugir explanation of mnist-net_256x2.onnx")
    assert page.evaluate("Array.from(document.images).map(i => i.naturalWidth >= 28)") == [True] * 3
    assert "verified in float32" in page.inner_text("body")


def test_eval_pages_of_an_image_and_a_text_model_render_clean(context, tmp_path):
    page = _clean(context, galleries.image_eval(tmp_path / "image")).page
    assert page.evaluate("document.querySelectorAll('.card').length") == 3
    per_card = page.evaluate("Array.from(document.querySelectorAll('.card')).map(c => [c.querySelectorAll('img').length, c.querySelectorAll('svg polyline').length])")
    assert per_card == [[4, 3]] * 3  # the input and 3 maps; SMUG's, IG's and OptBox's LSC curves
    assert page.inner_text(".page-status") == "3 inputs, page 1 of 1"

    page = _clean(context, galleries.text_eval(tmp_path / "text")).page
    cards = page.evaluate("document.querySelectorAll('.card').length")
    marked = page.evaluate("Array.from(document.querySelectorAll('.card .words')).map(p => p.querySelectorAll('mark').length)")
    assert cards == 3 and len(marked) == 2 * cards and all(count > 0 for count in marked)
    first = (TEXT / "test_sentences.tsv").read_text().splitlines()[0].split("\t", 1)[1]
    assert page.inner_text(".card .words").split() == first.split()  # every word shown, the kept ones highlighted


def test_sanity_page_renders_clean(context, tmp_path):
    page = _clean(context, galleries.sanity(tmp_path / "sanity")).page
    steps = page.evaluate("Array.from(document.querySelectorAll('tbody tr')).map(r => r.cells[0].textContent)")
    assert steps == [str(step) for step in range(6)]
    assert page.evaluate("document.images[0].naturalWidth") > 500  # the randomisation curves


@pytest.fixture(scope="module")
def thousand(tmp_path_factory):
    chosen = galleries.records(1000)
    return galleries.write(tmp_path_factory.mktemp("thousand"), chosen), chosen


def test_a_thousand_input_gallery_is_fast_and_loads_one_page_of_pictures(context, thousand):
    index, chosen = thousand
    start = time.perf_counter()
    seen = _clean(context, index)
    opened = time.perf_counter() - start
    page = seen.page
    ready = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")  # ms, the gallery rendered
    assert ready < 3000 and opened < 10, (ready, opened)  # measured 0.45-1.0 s to ready, on 2 cores at load 20
    pictures = 1 + len(galleries.METHODS)
    assert page.evaluate("document.images.length") == PAGE_SIZE * pictures
    assert len([url for url in seen.requests if "/gallery/" in url]) <= PAGE_SIZE * pictures  # the other 988 inputs' not fetched
    rendering = page.evaluate("(() => { const t = performance.now(); document.querySelector('.next').click(); return performance.now() - t; })()")
    assert page.inner_text(".page-status") == "1000 inputs, page 2 of 84" and rendering < 500, rendering  # ms; measured 5-30


def test_sorting_filters_and_paging_work_in_the_browser(context, thousand):
    index, chosen = thousand
    page = visit(context, index).page
    header = page.locator("table.sortable th", has_text="LSC median")
    column = page.evaluate("Array.from(document.querySelectorAll('table.sortable th')).findIndex(h => h.textContent.startsWith('LSC median'))")
    read = f"Array.from(document.querySelector('table.sortable').tBodies[0].rows).map(r => parseFloat(r.cells[{column}].getAttribute('data-value')))"
    header.click()
    up = page.evaluate(read)
    assert up == sorted(up) and len(up) == len(galleries.METHODS)
    header.click()
    assert page.evaluate(read) == sorted(up, reverse=True)
    page.locator("table.sortable th", has_text="method").first.click()
    names = page.evaluate("Array.from(document.querySelector('table.sortable').tBodies[0].rows).map(r => r.cells[0].textContent)")
    assert names == sorted(names, key=str.casefold) and names != sorted(names, key=str.casefold, reverse=True)

    assert page.evaluate(CARD_TITLES)[0].startswith("0000 - label 0") and page.inner_text(".page-status") == "1000 inputs, page 1 of 84"
    page.click(".next")
    assert page.evaluate(CARD_TITLES)[0].startswith("0012 - ")
    page.click(".previous")
    page.click(".previous")  # stays on the first page
    assert page.evaluate(CARD_TITLES)[0].startswith("0000 - ") and "page 1 of 84" in page.inner_text(".page-status")

    page.select_option(".by-label", "3")
    titles = page.evaluate(CARD_TITLES)
    assert len(titles) == PAGE_SIZE and all(" - label 3" in t for t in titles)
    assert page.inner_text(".page-status") == "100 inputs, page 1 of 9"
    for _ in range(10):  # past the last page: stays on it
        page.click(".next")
    assert len(page.evaluate(CARD_TITLES)) == 100 - 8 * PAGE_SIZE and page.inner_text(".page-status") == "100 inputs, page 9 of 9"

    won = winners(chosen)
    page.select_option(".by-winner", "ig")  # back to the first page of the new choice
    expected = [s for s in won if "ig" in won[s] and int(s) % 10 == 3]
    titles = page.evaluate(CARD_TITLES)
    assert [t.split(" - ")[0] for t in titles] == expected[:PAGE_SIZE] and all(display_name("ig") in t.split("best: ")[1] for t in titles)
    assert page.inner_text(".page-status").startswith(f"{len(expected)} inputs, page 1 of ")
    page.click(".next")
    page.select_option(".by-label", "")  # back to the first page
    everywhere = [s for s in won if "ig" in won[s]]
    assert page.inner_text(".page-status").startswith(f"{len(everywhere)} inputs, page 1 of ")
    assert len(everywhere) == pytest.approx(1000 / 3, rel=0.2)  # three map methods, one winner each


def _shown_as_text(seen, texts) -> None:
    body = seen.page.inner_text("body")
    assert all(text in body for text in texts)
    assert seen.dialogs == [] and seen.problems() == []


def test_hostile_names_show_as_text_and_run_no_script(context, tmp_path):
    hostile = galleries.records(len(HOSTILE), ids=HOSTILE)
    _shown_as_text(visit(context, galleries.write(tmp_path / "eval", hostile, title=" | ".join(HOSTILE))), HOSTILE)

    folder = tmp_path / "models"
    folder.mkdir()
    name = HOSTILE[0].replace("/", "_") + HOSTILE[2].replace("/", "_")
    model = shutil.copy(TEXT / "polarity_cnn.onnx", folder / f"{name}.onnx")
    sentences = folder / "hostile.tsv"
    sentences.write_text("".join(f"1\ta gorgeous {h} movie .\n" for h in HOSTILE), encoding="utf-8")
    seen = visit(context, galleries.text_eval(tmp_path / "text", model, sentences, limit=len(HOSTILE)))
    _shown_as_text(seen, [name, *(h for h in HOSTILE if " " not in h)])
    assert seen.page.title().startswith(name)

    (tmp_path / "sanity").mkdir()
    from smugir.evaluation.gallery import write_sanity_index

    _shown_as_text(visit(context, write_sanity_index(tmp_path / "sanity", galleries.sanity_records(HOSTILE), HOSTILE[1], None)), HOSTILE)

    image = folder / f"{name}.npy"
    np.save(image, np.load(MNIST_SAMPLES)["images"][4].astype(np.float32))
    mnist = shutil.copy(MNIST, folder / f"{name}-mnist.onnx")
    assert main(["explain", str(mnist), str(image), "--out", str(tmp_path / "explain"), "--top-k", "8"]) == 0
    _shown_as_text(visit(context, tmp_path / "explain" / "report.html"), [name])
