"""report.html, the explanation pictures and Jupyter's view of an explanation."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from smugir.cli import main
from smugir.exporters.html_page import json_script
from smugir.exporters.pictures import OUTLINE, explanation_figure, overlay_picture, saliency_picture, spread_sparse
from smugir.explain import explain
from smugir.model import load_model
from smugir.units import input_layout
from tests.conftest import DATA

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def explanation():
    images = np.load(SAMPLES)["images"].astype(np.float32)
    return explain(load_model(MNIST), images[4], top_k=16)


def _self_contained(page: str) -> None:
    """No fetch of anything: every picture a data: URI, no external script, style or font."""
    assert not re.search(r"https?://", page)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert not re.search(r"<script[^>]+src=|<link", page)


def test_report_html_is_written_by_default_and_self_contained(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", str(MNIST), f"{SAMPLES}:images[4]", "--out", str(out), "--top-k", "16"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    report = capsys.readouterr().out
    kept = re.search(r"optimal: (\d+) of 784", report).group(1)
    assert f"<b>{kept} of 784</b>" in page and "verified in float32" in page
    assert page.count("<img") == 3 and "lower bound" in page and "min slack" in page
    assert "smug explain" in page and "--top-k 16" in page  # the command that made it
    assert main(["explain", str(MNIST), f"{SAMPLES}:images[4]", "--out", str(tmp_path / "plain"), "--no-html"]) == 0
    assert not (tmp_path / "plain" / "report.html").exists() and (tmp_path / "plain" / "report.json").exists()


def test_a_hostile_model_or_input_name_never_becomes_markup(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / f"{HOSTILE.replace('/', '_')}.onnx"
    shutil.copy(MNIST, model)
    image = folder / f"{HOSTILE.replace('/', '_')}.npy"
    np.save(image, np.load(SAMPLES)["images"][4].astype(np.float32))
    out = tmp_path / "out"
    assert main(["explain", str(model), str(image), "--out", str(out), "--top-k", "8"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    _self_contained(page)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert all(tag.startswith('<img src="data:') for tag in re.findall(r"<img[^>]*>", page))
    assert "&lt;script&gt;alert(1)&lt;_script&gt;" in page  # shown as text, in the title and the command
    assert page.count("<script") == 1  # the page's own table sorting, nothing a name brought


def test_script_data_cannot_close_its_element():
    element = json_script("data", {"name": HOSTILE, "more": "</script><script>alert(3)</script>"})
    assert element.count("</script>") == 1 and element.endswith("</script>") and "<script>alert" not in element


def test_repr_html_shows_the_report_view(explanation):
    view = explanation._repr_html_()
    assert view.startswith('<div class="smugir">') and view.count("<img") == 3
    assert "min slack" in view and "<html" not in view


def test_sparse_masks_and_maps_stay_visible_on_large_inputs():
    layout = input_layout((1, 3, 224, 224), "auto", None)
    mask = np.zeros((1, 3, 224, 224), bool)
    mask[0, :, 100, 50] = True  # one kept pixel of 50,176
    x = np.random.default_rng(0).random((1, 3, 224, 224)).astype(np.float32)
    overlay = np.asarray(overlay_picture(layout, x, mask))
    assert (overlay == OUTLINE).all(axis=2).sum() >= 8  # a ring around it, not a lone pixel
    saliency = np.where(mask, 0.3, 0.0)
    spread, was_spread = spread_sparse(saliency[0, 0])
    assert was_spread and np.count_nonzero(spread) >= 16
    heat = np.asarray(saliency_picture(layout, saliency))
    assert (heat.std(axis=2) > 20).sum() >= 16  # coloured (not grey) pixels: the kept one, spread
    dense = np.random.default_rng(1).random((224, 224))
    assert spread_sparse(dense)[1] is False


def test_explanation_figure_has_three_titled_panels(explanation):
    picture = explanation_figure(explanation)
    assert picture.width >= 3 * 224 and picture.height > 224 + 40
    top = np.asarray(picture.convert("L"))[10:28]
    assert (top < 128).sum() > 200  # title text above the panels
    assert isinstance(picture, Image.Image)
