"""The two SMUG formulations on a real ImageNet photo and through every command that records them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smugir.cli import main
from smugir.constraints import DEFAULT_FORMULATION
from smugir.explain import explain, prepare
from smugir.inputs import load_input
from smugir.model import load_model
from smugir.units import input_layout

ROOT = Path(__file__).parent.parent
IMAGENET = ROOT / "examples" / "imagenet"
PHOTO = IMAGENET / "0000_n01440764_tench.jpg"  # class 0, tench
MNIST = ROOT / "tests" / "data" / "mnist" / "mnist-net_256x2.onnx"
MNIST_IMAGE = ROOT / "examples" / "data" / "mnist_test_2.png"


@pytest.fixture(scope="module")
def efficientnet():
    model = load_model(IMAGENET / "efficientnet_lite0.onnx")
    x = load_input(str(PHOTO), model.input_shape, input_layout(model.input_shape), 1 / 255, (0.5,) * 3, (0.5,) * 3)
    return model, x


@pytest.mark.slow
def test_a_photo_explained_with_the_defaults_is_verified_and_not_empty(efficientnet):
    model, x = efficientnet
    result = explain(model, x)
    assert result.label == result.predicted == 0
    assert result.settings["formulation"] == DEFAULT_FORMULATION == "baseline-relative"
    assert result.attribution["completeness_error"] <= 0.01
    assert result.status in ("optimal", "feasible") and result.best.verified
    assert result.verification.holds and result.verification.min_slack > 0  # float32, onnxruntime
    assert 0 < result.unit_mask.sum() < result.units.n_units


def test_on_efficientnet_the_baseline_alone_satisfies_the_published_form_but_not_the_relative_one(efficientnet):
    """The original code's ImageNet settings (top-k 3000, 4x4 windows, gamma 0); a coarse IG is
    enough to pick neurons for this check."""
    model, x = efficientnet
    empty = np.zeros(56 * 56)
    for formulation, empty_holds in (("published", True), ("baseline-relative", False)):
        setup = prepare(model, x, top_k=3000, gamma=0.0, window=4, ig_steps=2, formulation=formulation)
        assert setup.problem.metadata["formulation"] == formulation
        assert setup.problem.is_satisfied(empty) == empty_holds
        assert setup.problem.is_satisfied(np.ones(56 * 56))


@pytest.mark.parametrize("formulation", ["published", "baseline-relative"])
def test_the_formulation_is_recorded_by_explain_batch_and_export(formulation, tmp_path):
    common = [str(MNIST), "--window", "4", "--top-k", "8", "--formulation", formulation]
    assert main(["explain", *common, str(MNIST_IMAGE), "--out", str(tmp_path / "one")]) == 0
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    assert report["settings"]["formulation"] == formulation
    smt2 = tmp_path / "p.smt2"
    assert main(["export", *common, str(MNIST_IMAGE), "--objective", "omt", "--out", str(smt2)]) == 0
    assert f"\nformulation: {formulation}\n" in smt2.read_text()
    dataset = f"{ROOT / 'tests' / 'data' / 'mnist' / 'mnist_test_samples.npz'}"
    assert main(["batch", *common, dataset, "--limit", "2", "--workers", "1", "--out", str(tmp_path / "batch")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "batch" / "results.jsonl").read_text().splitlines()]
    assert [line["formulation"] for line in lines] == [formulation] * 2


def test_an_unknown_formulation_is_one_clear_error(capsys):
    from smugir.errors import InputError

    with pytest.raises(InputError, match="unknown formulation 'relative'"):
        explain(str(MNIST), np.zeros((1, 784, 1), dtype=np.float32), formulation="relative")
    with pytest.raises(SystemExit) as stop:
        main(["explain", str(MNIST), str(MNIST_IMAGE), "--formulation", "relative"])
    assert stop.value.code == 2
