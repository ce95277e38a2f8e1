"""`smug eval` and `smug sanity` end to end on the real MNIST and CIFAR models."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA

from smugir.cli import main

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
MNIST_SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
CIFAR = DATA / "cifar" / "cifar10_small.onnx"
RESNET = DATA / "cifar" / "resnet_2b.onnx"
CIFAR_SAMPLES = f"{DATA / 'cifar' / 'cifar10_test_samples.npz'}:images_nhwc"
RESNET_NORMALISATION = ["--pixels", "--scale", "1", "--mean", "0.4914,0.4822,0.4465", "--std", "0.2471,0.2435,0.2616"]


def _rows(path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_eval_on_mnist_writes_the_table_csv_and_figures(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", str(MNIST), str(MNIST_SAMPLES), "--limit", "2", "--window", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "unavailable Grad-CAM" in printed and "mnist-net_256x2.onnx: 2 inputs" in printed
    for name in ("SMUG", "SMUG_base", "IG", "SmoothGrad", "XRAI", "OptBox"):
        assert f"│ {name} " in printed
    records = _rows(out / "records.csv")
    assert {r["method"] for r in records} == {"smug", "smug_base", "ig", "smoothgrad", "xrai", "optbox"}
    assert len(records) == 2 * 6 and all(np.isfinite(float(r["lsc"])) for r in records)
    summary = {r["method"]: r for r in _rows(out / "summary.csv")}
    assert summary["optbox"]["win"] == "" and 0 <= float(summary["smug"]["win"]) <= 1
    for picture in ("maps.png", "lsc.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_on_cifar_keeps_only_correctly_classified_inputs(tmp_path, capsys):
    code = main(["eval", str(CIFAR), CIFAR_SAMPLES, "--limit", "4", "--correct-only", "--methods", "smug,gradcam,ig,optbox",
                 "--out", str(tmp_path / "cifar")])
    printed = capsys.readouterr().out
    records = _rows(tmp_path / "cifar" / "records.csv")
    labels = np.load(DATA / "cifar" / "cifar10_test_samples.npz")["labels"][:4]
    scored = sorted({r["sample"] for r in records})
    assert code == 0 and 0 < len(scored) < 4 and "misclassified skipped" in printed and "Grad-CAM" in printed
    assert all(int(r["label"]) == labels[int(r["sample"])] for r in records)


def test_eval_normalises_pixel_archives_for_resnet(tmp_path, capsys):
    truth = tmp_path / "truth.npz"
    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[:, 8:24, 8:24] = True
    np.savez(truth, masks=masks)
    code = main(["eval", str(RESNET), CIFAR_SAMPLES, *RESNET_NORMALISATION, "--limit", "3", "--methods", "gradcam,optbox",
                 "--truth", f"{truth}:masks"])
    printed = capsys.readouterr().out
    assert code == 0 and "Grad-CAM" in printed and "AUC" in printed


def test_sanity_on_cifar_writes_the_curves(tmp_path, capsys):
    out = tmp_path / "sanity"
    code = main(["sanity", str(CIFAR), CIFAR_SAMPLES, "--limit", "1", "--methods", "gradient,edges", "--modes", "cascading,noise:0.1",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "Sobel edges (control)" in printed
    rows = _rows(out / "sanity.csv")
    assert {r["mode"] for r in rows} == {"cascading", "noise:0.1"} and len(rows) == 2 * 2 * 6  # modes x methods x (original + 5 layers)
    assert all(float(r["spearman_absolute"]) == pytest.approx(1.0) for r in rows if r["method"] == "edges")
    assert (out / "sanity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("extra, message", [
    (["--methods", "ig,lime"], "unknown saliency method(s) lime"),
    (["--method", "smug_base"], "list smug_base in --methods"),
    (["--pixels"], "--pixels reads an existing file.npz"),
])
def test_bad_eval_requests_fail_with_one_line(tmp_path, capsys, extra, message):
    dataset = str(tmp_path / "missing.npz") if extra == ["--pixels"] else str(MNIST_SAMPLES)
    assert main(["eval", str(MNIST), dataset, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_counts_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(MNIST), str(MNIST_SAMPLES), "--limit", "0"])
    assert exit_.value.code == 2 and "expected a whole number >= 1" in capsys.readouterr().err


def test_correct_only_needs_labels(tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, images=np.load(MNIST_SAMPLES)["images"][:2])
    assert main(["eval", str(MNIST), str(unlabelled), "--correct-only", "--methods", "ig"]) == 2
    assert "needs labels" in capsys.readouterr().err
    assert main(["eval", str(MNIST), str(unlabelled), "--methods", "ig"]) == 0  # explains the predicted classes


def test_outputs_are_checked_before_any_work_and_kept_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("keep me")
    assert main(["eval", str(MNIST), str(MNIST_SAMPLES), "--limit", "1", "--methods", "ig", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "summary.csv").read_text() == "keep me"
    assert not (out / "records.csv").exists()
    assert main(["eval", str(MNIST), str(MNIST_SAMPLES), "--limit", "1", "--methods", "ig", "--out", str(out), "--force"]) == 0
    assert (out / "summary.csv").read_text().startswith("method,")


def test_a_missing_optional_package_is_one_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "saliency" else real(name, *a))
    assert main(["sanity", str(CIFAR), CIFAR_SAMPLES]) == 2
    assert "needs the optional packages saliency: pip install 'smugir[eval]'" in capsys.readouterr().err


def test_sanity_refuses_unknown_modes_and_text_models(capsys):
    assert main(["sanity", str(CIFAR), CIFAR_SAMPLES, "--modes", "shuffle"]) == 2
    assert "unknown randomisation 'shuffle'" in capsys.readouterr().err
    text_model = DATA.parent.parent / "examples" / "text" / "polarity_cnn.onnx"
    assert main(["sanity", str(text_model), str(MNIST_SAMPLES), "--methods", "gradient"]) == 2
    assert "takes token ids" in capsys.readouterr().err
