"""Batch explanations: resumable results, crash isolation, process pool and Dask equal the serial run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from smugir.batch import BatchOptions, run_batch
from smugir.cli import main
from smugir.datasets import read_dataset
from smugir.errors import InputError, OutputError
from smugir.model import load_model
from smugir.units import input_layout

MNIST = DATA / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = DATA / "mnist" / "mnist_test_samples.npz"
TEXT = Path(__file__).parent.parent / "examples" / "text"
OPTIONS = BatchOptions(top_k=16, window=2)


def _items():
    model = load_model(MNIST)
    return read_dataset(SAMPLES, model.input_shape, input_layout(model.input_shape))


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def _essence(records: list[dict]) -> dict:
    """What must not depend on how the work was spread: status, optimum, the mask itself."""
    return {r["id"]: (r["status"], r["objective"], r["bound"], r["verified"]) for r in records}


def _masks(folder: Path) -> dict:
    return {r["id"]: np.load(folder / r["mask_file"]).tobytes() for r in _lines(folder)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "run"
    report = run_batch(MNIST, _items(), out, OPTIONS, workers=1)
    assert report.processed == 15 and report.statuses == {"optimal": 15} and report.verified == 15
    return out


def test_every_input_has_one_line_and_its_mask_files(serial):
    records = _lines(serial)
    assert [r["id"] for r in records] == [f"{i:02d}" for i in range(15)]
    labels = np.load(SAMPLES)["labels"]
    for record in records:
        mask = np.load(serial / record["mask_file"])
        assert mask.shape == load_model(MNIST).input_shape and mask.dtype == bool
        assert record["label"] == labels[int(record["id"])]
        assert record["verification"]["holds"] and record["timings"]["solve"] >= 0


def test_rerun_skips_finished_inputs_and_repairs_a_torn_last_line(serial, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(serial, out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # Three results lost, and a crash in the middle of writing a fourth.
    (out / "results.jsonl").write_text("".join(lines[:12]) + lines[12][:40])
    report = run_batch(MNIST, _items(), out, OPTIONS, workers=1)
    assert (report.skipped, report.processed) == (12, 3)
    assert _essence(_lines(out)) == _essence(_lines(serial))
    again = run_batch(MNIST, _items(), out, OPTIONS, workers=1)
    assert again.processed == 0 and len(_lines(out)) == 15


def test_interrupted_run_keeps_complete_lines_and_resumes(tmp_path):
    out = tmp_path / "run"

    def progress(total):
        def advance(n):
            if len(_lines(out)) == 4:
                raise KeyboardInterrupt

        return advance

    with pytest.raises(KeyboardInterrupt):
        run_batch(MNIST, _items(), out, OPTIONS, workers=1, progress=progress)
    assert len(_lines(out)) == 4
    assert run_batch(MNIST, _items(), out, OPTIONS, workers=1).processed == 11


def test_process_pool_equals_serial(serial, tmp_path):
    out = tmp_path / "pool"
    report = run_batch(MNIST, _items(), out, OPTIONS, workers=2)
    assert report.processed == 15
    assert _essence(_lines(out)) == _essence(_lines(serial))
    assert _masks(out) == _masks(serial)


@pytest.mark.slow
def test_dask_cluster_equals_serial(serial, tmp_path):
    from dask.distributed import LocalCluster

    out = tmp_path / "dask"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        report = run_batch(MNIST, _items(), out, OPTIONS, scheduler=cluster.scheduler_address)
    assert report.processed == 15
    assert _essence(_lines(out)) == _essence(_lines(serial))
    assert _masks(out) == _masks(serial)


def test_a_bad_input_is_an_error_line_and_the_batch_goes_on(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(Path(__file__).parent.parent / "examples" / "data" / "mnist_test_2.png", images / "good.png")
    (images / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    code = main(["batch", str(MNIST), str(images), "--out", str(out), "--workers", "1", "--window", "4"])
    assert code == 1  # not everything verified
    records = {r["id"]: r for r in _lines(out)}
    assert records["good"]["status"] == "optimal" and records["good"]["verified"]
    assert records["broken"]["status"] == "error" and "cannot read image" in records["broken"]["error"]
    assert "error" in capsys.readouterr().out
    # A rerun tries the failed input again (and only it).
    (images / "broken.png").unlink()
    shutil.copy(images / "good.png", images / "broken.png")
    assert main(["batch", str(MNIST), str(images), "--out", str(out), "--workers", "1", "--window", "4"]) == 0
    assert {r["id"]: r["status"] for r in _lines(out)}["broken"] == "optimal"


def test_sentences_batch_records_kept_words(tmp_path):
    sentences = tmp_path / "s.tsv"
    sentences.write_text("".join((TEXT / "test_sentences.tsv").read_text().splitlines(keepends=True)[:4]))
    out = tmp_path / "out"
    assert main(["batch", str(TEXT / "polarity_cnn.onnx"), str(sentences), "--vocab", str(TEXT / "vocab.txt"),
                 "--out", str(out), "--workers", "1"]) == 0
    for record in _lines(out):
        assert record["status"] == "optimal" and len(record["words"]) == len(record["kept"]) and any(record["kept"])
        assert record["label"] in (0, 1)


def test_bad_batch_requests(tmp_path, capsys):
    assert main(["batch", str(MNIST), str(SAMPLES), "--out", str(tmp_path / "a" / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["batch", str(MNIST), str(SAMPLES), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "workers must be >= 1" in capsys.readouterr().err
    assert main(["batch", str(MNIST), str(SAMPLES), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.jsonl").write_text("this is not json\n")
    assert main(["batch", str(MNIST), str(SAMPLES), "--out", str(tmp_path / "junk")]) == 2
    assert "has no settings.json beside it" in capsys.readouterr().err
    items = _items()
    with pytest.raises(InputError, match="appears twice"):
        run_batch(MNIST, [items[0], items[0]], tmp_path / "dup", OPTIONS, workers=1)


def test_a_dataset_of_the_wrong_kind_is_refused_before_any_work(tmp_path, capsys):
    sentences = TEXT / "test_sentences.tsv"
    assert main(["batch", str(MNIST), str(sentences), "--out", str(tmp_path / "a")]) == 2
    assert "holds sentences but the model takes images" in capsys.readouterr().err
    text_model = TEXT / "polarity_cnn.onnx"
    assert main(["batch", str(text_model), f"{SAMPLES}:images", "--vocab", str(TEXT / "vocab.txt"), "--out", str(tmp_path / "b")]) == 2
    assert "holds no sentences" in capsys.readouterr().err
    assert main(["batch", str(MNIST), str(SAMPLES), "--limit", "0", "--out", str(tmp_path / "c")]) == 2
    assert "limit must be >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_input_timeout_makes_an_error_line_and_the_rerun_finishes(tmp_path):
    out = tmp_path / "run"
    items = _items()[:3]
    report = run_batch(MNIST, items, out, BatchOptions(top_k=16, window=2, input_timeout=0.001), workers=1)
    assert report.statuses == {"error": 3}
    assert all(r["error_kind"] == "timeout" and "longer than 0.001 s" in r["error"] for r in _lines(out)), [r["error"] for r in _lines(out)]
    report = run_batch(MNIST, items, out, OPTIONS, workers=1)
    assert report.processed == 3 and report.statuses == {"optimal": 3}


def test_a_time_limit_firing_inside_onnxruntime_stays_a_timeout():
    """run_session names onnxruntime's failures, but smugir's own errors (the batch time limit's
    InputTimeout, raised by SIGALRM wherever the input is) pass through as they are."""
    from smugir.batch import InputTimeout
    from smugir.model import run_session

    class Interrupted:
        def run(self, names, feed):
            raise InputTimeout("the input took longer than 0.001 s")

    with pytest.raises(InputTimeout):
        run_session(Interrupted(), None, {})


def test_bad_datasets_are_named(tmp_path):
    model = load_model(MNIST)
    layout = input_layout(model.input_shape)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        read_dataset(tmp_path / "empty", model.input_shape, layout)
    bad_tsv = tmp_path / "s.tsv"
    bad_tsv.write_text("positive\ta fine film\n")
    with pytest.raises(InputError, match="line 1: expected 'label<TAB>sentence'"):
        read_dataset(bad_tsv, model.input_shape, None)
    images = np.zeros((2, 28, 28), np.float32)
    np.savez(tmp_path / "two.npz", a=images, b=images)
    with pytest.raises(InputError, match="cannot tell which array holds the inputs"):
        read_dataset(tmp_path / "two.npz", model.input_shape, layout)
    np.savez(tmp_path / "labels.npz", images=images, labels=np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="'labels' must be 2 integers"):
        read_dataset(f"{tmp_path / 'labels.npz'}:images", model.input_shape, layout)
    with pytest.raises(InputError, match="is not an .npz archive, a folder of images"):
        read_dataset(tmp_path / "data.csv", model.input_shape, layout)


def test_a_results_file_of_something_else_is_refused(tmp_path):
    from smugir.errors import OutputError
    from smugir.exporters.results import ResultsFile

    (tmp_path / "results.jsonl").write_text('{"status": "optimal"}\n')
    with pytest.raises(OutputError, match="line 1 has no id"):
        ResultsFile(tmp_path / "results.jsonl")


def test_scheduler_without_dask_says_which_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if the extra were missing
    assert main(["batch", str(MNIST), str(SAMPLES), "--limit", "1", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'smugir[dist]'" in capsys.readouterr().err


class _KillsItsWorker:
    """Unpickling it in a worker process ends that process, as a segfault in a native library would."""

    def __reduce__(self):
        import os

        return os._exit, (1,)


def test_a_dead_worker_costs_its_own_input_only(serial, tmp_path):
    from smugir.datasets import Item

    items = _items()
    doomed = Item("doomed", _KillsItsWorker(), None)
    out = tmp_path / "run"
    report = run_batch(MNIST, [*items[:5], doomed, *items[5:]], out, OPTIONS, workers=2)
    records = {r["id"]: r for r in _lines(out)}
    assert records["doomed"]["status"] == "error" and "worker process explaining this input died" in records["doomed"]["error"]
    assert report.statuses == {"error": 1, "optimal": 15}
    assert _essence([r for r in _lines(out) if r["id"] != "doomed"]) == _essence(_lines(serial))


def test_a_rerun_with_another_model_or_settings_is_refused_until_restart(serial, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(serial, out)
    with pytest.raises(OutputError, match=r"other settings \(gamma 0.5 then, 0.9 now; window 2 then, 4 now\).*--restart"):
        run_batch(MNIST, _items(), out, BatchOptions(top_k=16, window=4, gamma=0.9), workers=1)
    from test_explain import shifted_bias_model

    other = shifted_bias_model(tmp_path)  # other weights, another hash
    with pytest.raises(OutputError, match=r"other settings \(model .* \(sha256 3a5c9730d60b\) then"):
        run_batch(other, _items(), out, OPTIONS, workers=1)
    assert _essence(_lines(out)) == _essence(_lines(serial))  # untouched
    report = run_batch(MNIST, _items()[:2], out, BatchOptions(top_k=16, window=4), workers=1, restart=True)
    assert report.skipped == 0 and len(_lines(out)) == 2 and len(list((out / "masks").iterdir())) == 4
    assert json.loads((out / "settings.json").read_text())["options"]["window"] == 4
    assert main(["batch", str(MNIST), str(SAMPLES), "--limit", "2", "--out", str(out), "--window", "2"]) == 2
    assert "--restart" in capsys.readouterr().err


def test_a_second_live_run_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    import fcntl
    import os

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        assert main(["batch", str(MNIST), str(SAMPLES), "--limit", "1", "--workers", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "another smug batch (pid 4242) is writing to" in err and err.count("\n") == 1
        assert not (out / "results.jsonl").exists()
    # The holder is gone (the kernel dropped its lock): the file left behind does not block anyone.
    assert main(["batch", str(MNIST), str(SAMPLES), "--limit", "1", "--workers", "1", "--out", str(out)]) == 0
    assert (out / ".lock").read_text().strip() == str(os.getpid())


def test_bad_options_exit_2_before_any_input_is_read(tmp_path, monkeypatch, capsys):
    import smugir.batch_command

    def touched(*args, **kwargs):
        raise AssertionError("the dataset was read")

    monkeypatch.setattr(smugir.batch_command, "dataset_items", touched)
    for option in (["--gamma", "2"], ["--solver", "bogus"], ["--top-k", "0"], ["--margin", "nan"], ["--timeout", "nan"],
                   ["--input-timeout", "-1"], ["--window", "0"]):
        try:
            code = main(["batch", str(MNIST), str(SAMPLES), "--out", str(tmp_path / "o"), *option])
        except SystemExit as exc:  # refused by argparse (an option's type)
            code = exc.code
        assert code == 2, option
        assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_inputs_with_no_meaningful_explanation_are_counted_and_exit_3(tmp_path, capsys):
    from test_explain import shifted_bias_model

    model = shifted_bias_model(tmp_path)
    out = tmp_path / "run"
    assert main(["batch", str(model), str(SAMPLES), "--limit", "3", "--workers", "1", "--out", str(out), "--formulation", "published"]) == 3
    assert "no meaningful explanation 3" in " ".join(capsys.readouterr().out.split())
    records = _lines(out)
    assert {r["status"] for r in records} == {"baseline_suffices"} and not any(r["verified"] for r in records)
    assert all(r["reason"].startswith("the baseline alone") for r in records)


def test_bad_files_in_an_image_folder_are_one_error_line_each(tmp_path):
    import os

    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    image = np.asarray(_items()[0].x).reshape(28, 28)
    Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8)).save(folder / "good.png")
    os.mkfifo(folder / "fifo.png")  # opening it would hang the batch
    (folder / "folder.png").mkdir()
    (folder / "empty.png").write_bytes(b"")
    _bomb(folder / "bomb.png")
    model = load_model(MNIST)
    items = {i.id: i for i in read_dataset(folder, model.input_shape, input_layout(model.input_shape))}
    assert items["good"].error is None
    assert "not a regular file" in items["fifo"].error and "not a regular file" in items["folder"].error
    assert items["empty"].error and items["bomb"].error
    report = run_batch(MNIST, list(items.values()), tmp_path / "run", OPTIONS, workers=1)
    assert report.statuses == {"error": 4, "optimal": 1}


def _bomb(path: Path) -> None:
    """A PNG whose header declares 100000 x 100000 pixels: Pillow refuses it as a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_a_results_line_that_cannot_be_written_is_cut_back(tmp_path, monkeypatch):
    import errno
    import os

    import smugir.exporters.results as results_module
    from smugir.exporters.results import ResultsFile

    results = ResultsFile(tmp_path / "results.jsonl")
    results.append({"id": "a", "status": "optimal"})
    before = (tmp_path / "results.jsonl").read_bytes()

    def half(handle, data):  # a disk that fills up in the middle of the line
        written = real_write(handle, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, f"No space left on device after {written} bytes")

    real_write = os.write
    monkeypatch.setattr(results_module.os, "write", half)
    with pytest.raises(OutputError, match="no space left on the device"):
        results.append({"id": "b", "status": "optimal"})
    monkeypatch.undo()
    assert (tmp_path / "results.jsonl").read_bytes() == before and set(results.records) == {"a"}
