"""`smug eval` and `smug sanity` end to end on the real MNIST and CIFAR models."""

from __future__ import annotations

import csv

import json

import numpy as np
import pytest
from conftest import CIFAR_MEAN, CIFAR_STD, DATA, cifar_samples

from smugir.cli import main
from smugir.errors import InputError, OutputError
from smugir.evaluation.baselines import setting_for
from smugir.evaluation.run import RECORDS, Plan, Reading, run_evaluation
from smugir.evaluation.samples import black_and_white, load_photos
from smugir.model import load_model

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
    (["--path-steps", "1", "--methods", "ig"], "path steps must be in [2, 4096], got 1"),
    (["--path-steps", "5000", "--methods", "ig"], "path steps must be in [2, 4096], got 5000"),
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


# --- a run that scales: streamed records, resume, workers, progress, bounded memory ------------------
RUN_METHODS = ("ig", "xrai", "gradcam", "smoothgrad", "smug", "smug_base", "optbox")


def _resnet_run(limit: int = 3, figure_inputs: int = 1):
    model = load_model(RESNET)
    low, high = black_and_white(tuple(CIFAR_MEAN), tuple(CIFAR_STD), 3)
    setting = setting_for(model, low=low, high=high, smug={"top_k": 8, "gamma": 0.5, "window": 4, "solver": "highs"})
    photos = load_photos(CIFAR_SAMPLES, model, setting.layout, True, 1.0, tuple(CIFAR_MEAN), tuple(CIFAR_STD), limit=limit,
                         figure_inputs=figure_inputs)
    return Plan(str(RESNET), setting, Reading(), only_correct=True, max_thresholds=20), photos


def _lines(out) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()]
    return {line["id"]: {k: v for k, v in line.items() if k not in ("seconds", "metric_seconds", "cpu_seconds", "map_file")} for line in lines}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    plan, photos = _resnet_run()
    out = tmp_path_factory.mktemp("clean") / "run"
    report = run_evaluation(plan, photos, RUN_METHODS, out)
    return plan, photos, out, report


def test_a_run_streams_one_line_per_input_and_method_and_keeps_only_the_figure_maps(clean_run):
    plan, photos, out, report = clean_run
    lines = _lines(out)
    scored = {r.sample for r in report.records}
    assert len(lines) == len(scored) * len(RUN_METHODS) + len(report.misclassified) and not report.errors
    assert scored and all(lines[f"{s}/{m}"]["status"] == "done" for s in scored for m in RUN_METHODS)
    kept = sorted(p.name for p in (out / "maps").iterdir())
    figure = [p.id for p in photos if p.figure]
    assert figure == [photos[0].id] and all(name.startswith(figure[0]) for name in kept)


def test_an_interrupted_run_resumed_equals_a_clean_run(clean_run, tmp_path):
    plan, photos, clean_out, _ = clean_run
    out = tmp_path / "resumed"
    seen = []

    def progress(total_photos, runs):
        def advance(what, count, photo_done):
            seen.append(what)
            if len(seen) == 5:
                raise KeyboardInterrupt
        return advance

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(plan, photos, RUN_METHODS, out, progress=progress)
    assert 0 < len(_lines(out)) < len(_lines(clean_out))
    resumed = run_evaluation(plan, photos, RUN_METHODS, out)
    assert resumed.reused == 5 - sum(1 for w in seen if w.endswith("misclassified")) and resumed.computed > 0
    assert _lines(out) == _lines(clean_out)


def test_a_rerun_with_other_settings_is_refused(clean_run, tmp_path):
    plan, photos, _, _ = clean_run
    out = tmp_path / "run"
    run_evaluation(plan, photos[:1], ("gradcam",), out, identity={"gamma": 0.5})
    with pytest.raises(InputError, match="gamma differ"):
        run_evaluation(plan, photos[:1], ("gradcam",), out, identity={"gamma": 0.9})
    again = run_evaluation(plan, photos[:1], ("gradcam",), out, identity={"gamma": 0.9}, replace_other=True)
    assert again.reused == 0 and (again.computed == 1 or again.misclassified)


def test_a_second_live_run_on_one_folder_is_refused(clean_run, tmp_path):
    import fcntl

    plan, photos, _, _ = clean_run
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputError, match=r"another smug eval \(pid [^)]+\) is writing to"):
            run_evaluation(plan, photos[:1], ("gradcam",), out)
    run_evaluation(plan, photos[:1], ("gradcam",), out)  # released: taken over


@pytest.mark.slow
def test_workers_equal_the_serial_run(clean_run, tmp_path):
    plan, photos, clean_out, _ = clean_run
    run_evaluation(plan, photos, RUN_METHODS, tmp_path / "pool", workers=2)
    assert _lines(tmp_path / "pool") == _lines(clean_out)


@pytest.mark.slow
def test_a_dask_cluster_equals_the_serial_run(clean_run, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    plan, photos, clean_out, _ = clean_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_evaluation(plan, photos, RUN_METHODS, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert _lines(tmp_path / "dask") == _lines(clean_out)


def test_eval_shows_progress_and_a_rerun_continues(tmp_path, capsys):
    out = tmp_path / "eval"
    command = ["eval", str(RESNET), CIFAR_SAMPLES, *RESNET_NORMALISATION, "--limit", "2", "--methods", "gradcam,optbox", "--out", str(out)]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert "method runs" in first and "inputs" in first and "ETA" in first
    assert main(command + ["--methods", "gradcam,ig,optbox"]) == 0  # one more method: only it is computed
    again = capsys.readouterr().out
    assert "4 method runs recorded by an earlier run" in again and "IG" in again
    assert main(command + ["--gamma", "0.9"]) == 0  # no SMUG method: gamma does not define these results
    capsys.readouterr()
    assert main(command + ["--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "made with other settings (seed differ)" in err and err.count("\n") == 1
    assert main(command + ["--seed", "1", "--force"]) == 0
    capsys.readouterr()
    assert main(command + ["--seed", "1", "--methods", "gradcam,optbox,smoothgrad", "--report-only"]) == 0
    report = capsys.readouterr().out
    assert "4 method runs recorded by an earlier run" in report and "0 computed now" in report
    assert "no input has a record of every method yet (2 have some)" in report  # smoothgrad was never run
    assert main(["eval", str(RESNET), CIFAR_SAMPLES, "--report-only", "--out", str(tmp_path / "none")]) == 2


def test_image_folders_are_read_by_the_workers_with_labels_from_file_names(tmp_path, capsys):
    from PIL import Image

    images, labels = cifar_samples()
    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(2):
        Image.fromarray((images[number] * 255).round().astype(np.uint8)).save(folder / f"{labels[number]:04d}_{number}.png")
    (folder / "0001_broken.png").write_bytes(b"not a png")
    code = main(["eval", str(RESNET), str(folder), "--label-from-name", "--correct-only", "--methods", "gradcam",
                 "--mean", "0.4914,0.4822,0.4465", "--std", "0.2471,0.2435,0.2616", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 1 and "error 0001_broken Grad-CAM" in printed  # one error line, the other inputs scored
    assert "Grad-CAM" in printed
